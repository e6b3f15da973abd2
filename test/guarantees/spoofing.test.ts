/**
 * Issue 8 item 5, spoofing, through the real adapter servers (all eight) on
 * loopback: 10,000 random X-Forwarded-For / Forwarded values (commas, ports,
 * brackets, quotes, garbage, 8 KB) from one untrusted socket all land in one
 * bucket and never fail a request; behind trusted proxies the key is always
 * the hop a reference model (node's own BlockList) picks, never one written
 * by an untrusted hop; one IPv6 /64 is one key; IPv4-mapped IPv6 (dotted and
 * hex) is the IPv4 key; distinct IPv4 clients never share a key.
 */

import { BlockList, isIP } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addressKey } from "../../src/http/ip.js";
import { keys, type RequestReader } from "../../src/http/keys.js";
import { allHarnesses } from "../adapters/harnesses/all.js";
import { nodeHarness } from "../adapters/harnesses/node.js";
import { get } from "../helpers/http-client.js";
import { keyServers, roomy } from "../helpers/key-servers.js";

const harnesses = allHarnesses;

const { serve } = keyServers();

/** Header text a client can send: printable ASCII and tabs (what an HTTP parser lets through). */
const text = (max: number) =>
  fc.string({
    unit: fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      fc.constantFrom(",", ",", ";", "=", '"', "[", "]", ":", " ", "\t", "\\"),
    ),
    maxLength: max,
  });

const hop = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4().map((a) => `${a}:${a.length * 97}`),
  fc.ipV6().map((a) => `[${a}]:443`),
  fc.ipV6().map((a) => `[${a}]`),
  fc.ipV4().map((a) => `::ffff:${a}`),
  fc.constantFrom("unknown", "_hidden", "", " ", "localhost", "127.0.0.1", "::1", "[::1]"),
  text(40),
);

/** A spoofed value: a list of hops, Forwarded syntax, garbage, or 8 KB of any of them. */
const spoof = fc.oneof(
  { weight: 4, arbitrary: fc.array(hop, { maxLength: 8 }).map((h) => h.join(", ")) },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.tuple(hop, fc.boolean()), { maxLength: 6 })
      .map((h) => h.map(([a, q]) => (q ? `for="${a}"` : `for=${a};proto=http`)).join(", ")),
  },
  { weight: 2, arbitrary: text(200) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(hop, fc.integer({ min: 7000, max: 8192 }))
      .map(([h, n]) => `${h}, `.repeat(Math.ceil(n / (h.length + 2))).slice(0, n)),
  },
);

/** pool runs `task` for 0..n-1 with `width` in flight. */
async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

describe("guarantee: spoofed proxy headers from an untrusted socket change nothing", () => {
  it("10,000 random X-Forwarded-For / Forwarded values (up to 8 KB) through all eight adapters: one key, no failure", async () => {
    const N = 10_000;
    const values = fc.sample(fc.tuple(spoof, spoof, fc.nat(3)), { numRuns: N, seed: 8 });
    const big = values.filter(([x, f]) => x.length >= 7000 || f.length >= 7000).length;
    const statuses = new Map<number, number>();
    const perHarness = Math.ceil(N / harnesses.length);
    const seen = new Set<string>();
    for (const [h, harness] of harnesses.entries()) {
      const { port, store } = await serve(harness, undefined);
      const slice = values.slice(h * perHarness, (h + 1) * perHarness);
      await pool(slice.length, 8, async (i) => {
        const [x, f, which] = slice[i] as [string, string, number];
        const headers: Record<string, string> = {};
        if (which !== 1) headers["x-forwarded-for"] = x;
        if (which !== 0) headers.forwarded = f;
        const reply = await get(port, "/", headers);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      });
      expect(new Set(store.keys), harness.name).toEqual(new Set(["127.0.0.1"]));
      expect(store.keys).toHaveLength(slice.length);
      // One bucket spent once per request: nothing was keyed elsewhere.
      expect((await get(port, "/")).headers["x-ratelimit-remaining"]).toBe(
        String(roomy.capacity - slice.length - 1),
      );
      for (const k of store.keys) seen.add(k);
    }
    expect([...statuses.keys()]).toEqual([200]);
    console.log(
      `guarantee: spoofing, untrusted socket: ${N} random X-Forwarded-For/Forwarded values (${big} of 7-8 KB) through 8 adapter servers -> ${seen.size} key (${[...seen].join()}), ${statuses.get(200)} x 200, 0 errors`,
    );
  });
});

// The reference model, built on node's own parser and BlockList: from the
// socket leftwards, believe a hop only while the hop that wrote it is trusted.
const TRUSTED = ["127.0.0.0/8", "10.0.0.0/8", "fd00::/8"];
const blocks = new BlockList();
blocks.addSubnet("127.0.0.0", 8, "ipv4");
blocks.addSubnet("10.0.0.0", 8, "ipv4");
blocks.addSubnet("fd00::", 8, "ipv6");

function bare(entry: string): string {
  let a = entry.trim();
  const bracket = /^\[([^\]]*)\](?::\d{1,5})?$/.exec(a);
  if (bracket) a = bracket[1] as string;
  else if (/^[\d.]+:\d{1,5}$/.test(a)) a = a.slice(0, a.lastIndexOf(":"));
  return a;
}

function trusted(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocks.check(mapped[1] as string, "ipv4");
  return blocks.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** model returns the key the model picks and whether every hop right of it was trusted. */
function model(socket: string, chain: string[]): string {
  let current = socket;
  for (let i = chain.length - 1; i >= 0 && trusted(current); i--) {
    const next = bare(chain[i] as string);
    if (isIP(next) === 0) break;
    current = next;
  }
  return addressKey(current, 64);
}

describe("guarantee: behind trusted proxies the key is never a hop an untrusted hop wrote", () => {
  it("random chains of trusted, untrusted and garbage hops, through all eight adapters", async () => {
    const trustedHop = fc.oneof(
      fc
        .integer({ min: 0, max: 0xffffff })
        .map((n) => `10.${n >>> 16}.${(n >>> 8) & 255}.${n & 255}`),
      fc.integer({ min: 1, max: 0xffff }).map((n) => `fd00::${n.toString(16)}`),
      fc.constantFrom("127.0.0.1", "::ffff:10.1.2.3"),
    );
    const chainHop = fc.oneof(
      { weight: 3, arbitrary: trustedHop },
      { weight: 3, arbitrary: fc.oneof(fc.ipV4(), fc.ipV6()) },
      { weight: 1, arbitrary: fc.constantFrom("unknown", "", "junk", "1.2.3", "[::1") },
    );
    const chains = fc.sample(
      fc.tuple(fc.array(chainHop, { minLength: 1, maxLength: 7 }), fc.nat(2)),
      { numRuns: 2000, seed: 5 },
    );
    const per = Math.ceil(chains.length / harnesses.length);
    let untrustedPicked = 0;
    let fromHeader = 0;
    // Form 0: the proxies write X-Forwarded-For; 1: Forwarded; 2: X-Forwarded-For, and
    // the same chain in a Forwarded the key must ignore.
    const viaXff = keys.ip({ trustProxy: TRUSTED });
    const viaForwarded = keys.ip({ trustProxy: TRUSTED, proxyHeader: "forwarded" });
    const key = <Req>(request: Req, reader: RequestReader<Req>) =>
      (reader.header(request, "x-case") === "1" ? viaForwarded : viaXff)(request, reader);
    for (const [h, harness] of harnesses.entries()) {
      const { port, store } = await serve(harness, key);
      for (const [chain, form] of chains.slice(h * per, (h + 1) * per)) {
        const forwarded = chain.map((a) => `for="${isIP(a) === 6 ? `[${a}]` : a}"`).join(", ");
        const headers: Record<string, string> = { "x-case": String(form) };
        if (form !== 1) headers["x-forwarded-for"] = chain.join(", ");
        if (form !== 0) headers.forwarded = forwarded;
        const reply = await get(port, "/", headers);
        expect(reply.status).toBe(200);
        const got = store.keys[store.keys.length - 1] as string;
        const want = model("127.0.0.1", chain);
        expect(got, `${harness.name} ${JSON.stringify(headers)}`).toBe(want);
        // The pick is the socket or a hop of the chain, and every hop right of it is trusted.
        let at = chain.length - 1;
        while (at >= 0 && addressKey(bare(chain[at] as string), 64) !== got) at--;
        if (got !== "127.0.0.1") {
          fromHeader++;
          const right = chain.slice(at + 1).map(bare);
          if (!right.every(trusted)) untrustedPicked++;
        }
      }
    }
    expect(untrustedPicked).toBe(0);
    console.log(
      `guarantee: spoofing, trusted proxies: ${chains.length} random chains through 8 adapter servers: ${chains.length} keys equal the reference model, ${fromHeader} taken from a header, ${untrustedPicked} written by an untrusted hop`,
    );
  });
});

/** Where the proxies of the chain tests live: what trustProxy lists. */
const PROXY_RANGES = ["127.0.0.0/8", "10.0.0.0/8", "fd00::/8"];

/** A proxy's address: in PROXY_RANGES. */
const proxyAddress = fc.oneof(
  fc.integer({ min: 0, max: 0xffffff }).map((n) => `10.${n >>> 16}.${(n >>> 8) & 255}.${n & 255}`),
  fc.integer({ min: 1, max: 0xffff }).map((n) => `fd00::${n.toString(16)}`),
  fc.integer({ min: 1, max: 254 }).map((n) => `127.0.0.${n}`),
);

/** A client's real address: anywhere a proxy is not. */
const clientAddress = fc.oneof(fc.ipV4(), fc.ipV6()).filter((a) => !trusted(a));

/** How a proxy writes its peer's address into the header: plain, with a port, bracketed, quoted. */
function written(address: string, header: "x-forwarded-for" | "forwarded", style: number): string {
  const v6 = isIP(address) === 6;
  const port = 1024 + (style % 60_000);
  if (header === "x-forwarded-for") {
    if (style % 3 === 0) return address;
    return v6 ? `[${address}]${style % 3 === 1 ? `:${port}` : ""}` : `${address}:${port}`;
  }
  const host = v6 ? `[${address}]` : address;
  if (style % 3 === 0 && !v6) return `for=${address}`;
  return `for="${host}${style % 3 === 1 ? `:${port}` : ""}"${style % 2 === 0 ? ";proto=https" : ""}`;
}

/**
 * A chain case: the client's real address, what it adds itself (lines of
 * X-Forwarded-For, Forwarded and X-Real-IP), and 1 to 4 proxies, each
 * appending its peer to the header they write, to the last line or as a new
 * line (both happen: nginx rewrites the joined field, HAProxy adds a line).
 */
const chainCase = fc.record({
  client: clientAddress,
  proxies: fc.array(fc.tuple(proxyAddress, fc.nat(), fc.boolean()), { minLength: 1, maxLength: 4 }),
  proxyHeader: fc.constantFrom("x-forwarded-for" as const, "forwarded" as const),
  byCount: fc.boolean(),
  added: fc.record({
    "x-forwarded-for": fc.array(spoof, { maxLength: 2 }),
    forwarded: fc.array(spoof, { maxLength: 2 }),
    "x-real-ip": fc.array(spoof, { maxLength: 1 }),
  }),
});

type ChainCase = typeof chainCase extends fc.Arbitrary<infer T> ? T : never;

/** arrive returns what reaches the server: the last proxy's address and the header lines. */
function arrive(c: ChainCase): { socket: string; lines: Record<string, string[]> } {
  const lines: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(c.added))
    if (values.length) lines[name] = [...values];
  let peer = c.client;
  for (const [address, style, newLine] of c.proxies) {
    const element = written(peer, c.proxyHeader, style);
    const own = lines[c.proxyHeader] ?? [];
    lines[c.proxyHeader] =
      own.length === 0 || newLine ? [...own, element] : [`${own.join(", ")}, ${element}`];
    peer = address;
  }
  return { socket: peer, lines };
}

/** The key options for a case: trust by hop count (as many as proxies) or by their ranges. */
function optionsOf(c: ChainCase) {
  return {
    trustProxy: c.byCount ? c.proxies.length : PROXY_RANGES,
    proxyHeader: c.proxyHeader,
  };
}

describe("guarantee: nothing a client adds moves it off its own bucket behind trusted proxies", () => {
  it("random proxy chains and random client-added X-Forwarded-For / Forwarded / X-Real-IP: the key is always the client's", () => {
    const reader: RequestReader<{ socket: string; lines: Record<string, string[]> }> = {
      address: (r) => r.socket,
      header: (r, name) => r.lines[name]?.join(", "),
    };
    const built = new Map<string, ReturnType<typeof keys.ip>>();
    let runs = 0;
    let multiLine = 0;
    fc.assert(
      fc.property(chainCase, (c) => {
        const options = optionsOf(c);
        const id = JSON.stringify(options);
        let key = built.get(id);
        if (key === undefined) {
          key = keys.ip(options);
          built.set(id, key);
        }
        const request = arrive(c);
        if ((request.lines[c.proxyHeader]?.length ?? 0) > 1) multiLine++;
        runs++;
        expect(key(request, reader)).toBe(addressKey(c.client, 64));
      }),
      { numRuns: 20_000, seed: 14 },
    );
    console.log(
      `guarantee: proxy chains: ${runs} random chains of 1-4 proxies (X-Forwarded-For or Forwarded, by count or by range) with random client-added X-Forwarded-For/Forwarded/X-Real-IP, ${multiLine} with several lines of the proxies' header -> ${runs} keys of the client's own address`,
    );
  });

  it("through all eight adapter servers, the proxies' header in several lines", async () => {
    // Under Node's 16 KB header limit: larger heads are refused (431) before any key is made.
    const small = chainCase.filter(
      (c) => JSON.stringify(c.added).length + 80 * c.proxies.length < 12_000,
    );
    const cases = fc.sample(small, { numRuns: 2000, seed: 15 });
    const variants = new Map<string, ReturnType<typeof keys.ip>>();
    const key = <Req>(request: Req, reader: RequestReader<Req>) =>
      variants.get(reader.header(request, "x-case") as string)?.(request, reader) ?? "no case";
    const per = Math.ceil(cases.length / harnesses.length);
    let checked = 0;
    let lines = 0;
    for (const [h, harness] of harnesses.entries()) {
      const { port, store } = await serve(harness, key);
      for (const c of cases.slice(h * per, (h + 1) * per)) {
        const options = optionsOf(c);
        const id = JSON.stringify(options);
        if (!variants.has(id)) variants.set(id, keys.ip(options));
        // The test's socket is the last proxy: one of four loopback addresses.
        const last = c.proxies[c.proxies.length - 1] as [string, number, boolean];
        const from = `127.0.0.${1 + (last[1] % 4)}`;
        const chain = { ...c, proxies: [...c.proxies.slice(0, -1), [from, last[1], last[2]]] };
        const request = arrive(chain as ChainCase);
        lines += request.lines[c.proxyHeader]?.length ?? 0;
        const reply = await get(port, "/", { ...request.lines, "x-case": id }, from);
        expect(reply.status).toBe(200);
        expect(store.keys[store.keys.length - 1], `${harness.name} ${JSON.stringify(chain)}`).toBe(
          addressKey(c.client, 64),
        );
        checked++;
      }
    }
    expect(checked).toBe(cases.length);
    console.log(
      `guarantee: proxy chains over HTTP: ${checked} random chains through 8 adapter servers (${lines} lines of the proxies' header) -> ${checked} keys of the client's own address`,
    );
  });

  it("a client-added X-Forwarded-For line ahead of the proxy's, in every adapter, is read as proxies append", async () => {
    const byOne = keys.ip({ trustProxy: 1 });
    let checked = 0;
    for (const harness of harnesses) {
      const { port, store } = await serve(harness, byOne);
      for (const lines of [
        ["6.6.6.6", "203.0.113.5"],
        ["6.6.6.6", "7.7.7.7, 203.0.113.5"],
        ["6.6.6.6, 7.7.7.7", "", "203.0.113.5"],
        ["[::1]:80", "203.0.113.5:4711"],
      ]) {
        await get(port, "/", { "x-forwarded-for": lines, forwarded: "for=6.6.6.6" });
        expect(store.keys[store.keys.length - 1], `${harness.name} ${lines.join(" | ")}`).toBe(
          "203.0.113.5",
        );
        checked++;
      }
    }
    console.log(
      `guarantee: several X-Forwarded-For lines: ${checked} requests through 8 adapter servers -> the proxy's last-appended hop every time`,
    );
  });
});

describe("guarantee: client identity by address", () => {
  const reader: RequestReader<{ socket: string; xff?: string }> = {
    address: (r) => r.socket,
    header: (r, name) => (name === "x-forwarded-for" ? r.xff : undefined),
  };

  it("10,000 addresses of one IPv6 /64 are one key, directly and through a trusted proxy", async () => {
    const direct = keys.ip();
    const behind = keys.ip({ trustProxy: "loopback" });
    const seen = new Set<string>();
    let x = 0x2545f491;
    const addresses: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const groups: string[] = [];
      for (let g = 0; g < 4; g++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        groups.push((x >>> 16).toString(16));
      }
      const a = `2001:db8:77:88:${groups.join(":")}`;
      addresses.push(a);
      seen.add(direct({ socket: a }, reader));
      seen.add(behind({ socket: "127.0.0.1", xff: `${a}` }, reader));
      seen.add(behind({ socket: "::1", xff: `[${a}]:8080` }, reader));
    }
    // And through a real server, behind a trusted loopback proxy.
    const { port, store } = await serve(nodeHarness, keys.ip({ trustProxy: "loopback" }));
    await pool(500, 8, async (i) => {
      await get(port, "/", { "x-forwarded-for": addresses[i * 20] as string });
    });
    for (const k of store.keys) seen.add(k);
    expect([...seen]).toEqual(["2001:db8:77:88::/64"]);
    console.log(
      `guarantee: IPv6 /64: 10,000 addresses of one /64 (x3 forms) + 500 through a server -> ${seen.size} key`,
    );
  });

  it("IPv4-mapped IPv6, dotted and hex, is the IPv4 key; distinct IPv4 never share one", async () => {
    const direct = keys.ip();
    const ips = fc.sample(fc.ipV4(), { numRuns: 100_000, seed: 4 });
    const distinct = new Set(ips);
    const keysSeen = new Set<string>();
    let mappedOk = 0;
    for (const a of ips) {
      const [p, q, r, s] = a.split(".").map(Number) as [number, number, number, number];
      const hex = `::ffff:${((p << 8) | q).toString(16)}:${((r << 8) | s).toString(16)}`;
      const forms = [a, `::ffff:${a}`, `::FFFF:${a}`, hex, `0:0:0:0:0:ffff:${a}`];
      const k = forms.map((f) => direct({ socket: f }, reader));
      if (k.every((v) => v === a)) mappedOk++;
      keysSeen.add(k[0] as string);
    }
    expect(mappedOk).toBe(ips.length);
    expect(keysSeen.size).toBe(distinct.size);
    // Through a real server: 40 clients on distinct loopback addresses get 40 buckets.
    const { port, store } = await serve(nodeHarness, undefined);
    for (let i = 2; i < 42; i++) await get(port, "/", {}, `127.0.0.${i}`);
    expect(new Set(store.keys).size).toBe(40);
    console.log(
      `guarantee: IPv4 identity: ${ips.length} random IPv4 x 5 forms (dotted, ::ffff: dotted and hex): ${mappedOk} map to the IPv4 key; ${distinct.size} distinct addresses -> ${keysSeen.size} keys; 40 loopback clients through a server -> ${new Set(store.keys).size} buckets`,
    );
  });
});
