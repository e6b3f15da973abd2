/**
 * Issue 8 item 5, spoofing, through the real adapter servers (all eight) on
 * loopback: 10,000 random X-Forwarded-For / Forwarded values (commas, ports,
 * brackets, quotes, garbage, 8 KB) from one untrusted socket all land in one
 * bucket and never fail a request; behind trusted proxies the key is always
 * the hop a reference model (node's own BlockList) picks, never one written
 * by an untrusted hop; one IPv6 /64 is one key; IPv4-mapped IPv6 (dotted and
 * hex) is the IPv4 key; distinct IPv4 clients never share a key.
 */

import { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { BlockList, isIP } from "node:net";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { addressKey } from "../../src/http/ip.js";
import { keys, type RequestReader } from "../../src/http/keys.js";
import { MemoryStore } from "../../src/index.js";
import { appSpec, type Harness } from "../adapters/contract.js";
import { allHarnesses } from "../adapters/harnesses/all.js";
import { nodeHarness } from "../adapters/harnesses/node.js";
import { closeAgents, get } from "../helpers/http-client.js";

const harnesses = allHarnesses;

/** A bucket big enough that nothing is denied: every request must spend from the one bucket its key names. */
const roomy = { name: "roomy", capacity: 1_000_000_000, refillRate: 1, interval: 60_000 };

/** RecordingStore is a MemoryStore that remembers every key it was asked about, in order. */
class RecordingStore extends MemoryStore {
  readonly keys: string[] = [];
  override consume(...args: Parameters<MemoryStore["consume"]>) {
    this.keys.push(args[0]);
    return super.consume(...args);
  }
}

const listen = vi.spyOn(Server.prototype, "listen");
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  closeAgents();
});
afterAll(() => listen.mockRestore());

/** serve starts `harness` keyed by `key` on a RecordingStore and returns its port and store. */
async function serve(
  harness: Harness,
  key: unknown,
): Promise<{ port: number; store: RecordingStore }> {
  const store = new RecordingStore();
  const from = listen.mock.contexts.length;
  const server = await harness.start(appSpec({ policy: roomy, store, key }, store));
  closers.push(() => server.close());
  const http = listen.mock.contexts.slice(from).find((s) => s instanceof Server) as Server;
  return { port: (http.address() as AddressInfo).port, store };
}

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
    for (const [h, harness] of harnesses.entries()) {
      const { port, store } = await serve(harness, keys.ip({ trustProxy: TRUSTED }));
      for (const [chain, form] of chains.slice(h * per, (h + 1) * per)) {
        const forwarded = chain.map((a) => `for="${isIP(a) === 6 ? `[${a}]` : a}"`).join(", ");
        const headers: Record<string, string> = {};
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
