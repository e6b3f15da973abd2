/**
 * Client keys under attack, through the real adapter servers where the
 * framework matters: a client trying to get a fresh bucket per request, or
 * to put someone else into its bucket, and an operator configuring keys
 * carelessly. Cases the spoofing guarantees (test/guarantees/spoofing.test.ts)
 * and the unit tests (src/http/*.test.ts) already cover are not repeated.
 */

import { createServer } from "node:http";
import { connect } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { rateLimit as nodeRateLimit } from "../src/adapters/node/index.js";
import { ConfigError } from "../src/core/errors.js";
import { type Key, keys, type RequestReader } from "../src/http/keys.js";
import type { Harness } from "./adapters/contract.js";
import { allHarnesses } from "./adapters/harnesses/all.js";
import { keyServers, RecordingStore } from "./helpers/key-servers.js";
import { listenLocal } from "./helpers/local-server.js";
import { rawRequest } from "./helpers/raw-http.js";

const { serve, closers } = keyServers();

/** head is a raw GET / with `lines` (each "Name: value") and Connection: close. */
function head(lines: readonly string[]): string {
  return `GET / HTTP/1.1\r\nHost: x\r\n${lines.map((l) => `${l}\r\n`).join("")}Connection: close\r\n\r\n`;
}

/** filler is `n` empty header lines of distinct names: what a client may add freely. */
function filler(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `a${i}:`);
}

describe("a client pushing its proxy's line past Node's header count limit", () => {
  // Node keeps the first maxHeadersCount header lines (1000 by default) in
  // req.headers and drops the rest silently. A proxy that appends its own
  // X-Forwarded-For (or Forwarded) line after the client's (HAProxy's
  // `option forwardfor`, AWS ALB without a client line) then loses its line,
  // and the client's own line reads as the proxy's: the client picks its key.
  const cases = [
    { name: "X-Forwarded-For", header: "X-Forwarded-For", own: "6.6.6.6", proxy: "203.0.113.5" },
    {
      name: "Forwarded",
      header: "Forwarded",
      own: "for=6.6.6.6",
      proxy: "for=203.0.113.5",
      proxyHeader: "forwarded" as const,
    },
  ];

  /** check runs every case against `harness`, keyed by `wrap(keys.ip(...))`. */
  async function check(harness: Harness, wrap: (ip: ReturnType<typeof keys.ip>) => unknown) {
    for (const c of cases) {
      for (const trustProxy of [1, ["loopback"]]) {
        const key = keys.ip({
          trustProxy: trustProxy as number | string[],
          ...(c.proxyHeader ? { proxyHeader: c.proxyHeader } : {}),
        });
        const { port, store, server } = await serve(harness, wrap(key));
        const label = `${harness.name} ${c.name} trustProxy=${JSON.stringify(trustProxy)}`;
        const send = async (fillers: number) => {
          const answer = await rawRequest(
            port,
            head([`${c.header}: ${c.own}`, ...filler(fillers), `${c.header}: ${c.proxy}`]),
          );
          expect(answer.status, label).toBe(200);
          return store.keys[store.keys.length - 1];
        };
        // Within the limit: the proxy's hop, as always.
        expect(await send(10), label).toBe("203.0.113.5");
        // Past Node's default limit (1000 lines): never the client's own hop.
        expect(await send(1100), label).not.toBe("6.6.6.6");
        // An operator who lowered the limit (server.maxHeadersCount = 20).
        server.maxHeadersCount = 20;
        expect(await send(10), label).toBe("203.0.113.5");
        const past = await send(30);
        expect(past, label).not.toBe("6.6.6.6");
        // The last address floodgate can vouch for: the proxy's own socket.
        expect(past, label).toBe("127.0.0.1");
        for (const close of closers.splice(0)) await close();
      }
    }
  }

  // Every adapter that sees Node's request (Fastify through request.raw, Hono
  // through @hono/node-server's incoming). floodgate/fetch gets a Fetch
  // Request only, and cannot know (docs/proxies.md says so).
  for (const harness of allHarnesses.filter((h) => h.name !== "fetch")) {
    it(`${harness.name}: the client's own line is never read as the proxy's`, async () => {
      await check(harness, (ip) => ip);
    });
  }

  it("a lowered limit of 0 (no limit) keeps every line, and the proxy's hop is read", async () => {
    const harness = allHarnesses.find((h) => h.name === "node") as Harness;
    const { port, store, server } = await serve(harness, keys.ip({ trustProxy: 1 }));
    server.maxHeadersCount = 0;
    const lines = ["X-Forwarded-For: 6.6.6.6", ...filler(1100), "X-Forwarded-For: 203.0.113.5"];
    expect((await rawRequest(port, head(lines))).status).toBe(200);
    expect(store.keys).toEqual(["203.0.113.5"]);
  });
});

describe("keys.header on a proxy chain (a careless operator)", () => {
  it("refuses X-Forwarded-For and Forwarded, whatever their case, and names keys.ip", () => {
    // keys.header("x-forwarded-for") keys by the whole chain: a client that
    // prepends a new hop to each request gets a fresh bucket every time.
    for (const name of ["x-forwarded-for", "X-Forwarded-For", "Forwarded", "FORWARDED"]) {
      let thrown: unknown;
      try {
        keys.header(name);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, name).toBeInstanceOf(ConfigError);
      expect(String((thrown as Error).message), name).toContain("keys.ip({ trustProxy: 1");
    }
    // Other headers, also the single-valued ones proxies overwrite, stay allowed.
    for (const name of ["x-api-key", "x-real-ip", "cf-connecting-ip", "x-forwarded-host"]) {
      expect(typeof keys.header(name)).toBe("function");
    }
  });
});

describe("keys.header reads what the framework's app reads", () => {
  // A client with one valid API key or token must not mint fresh buckets by
  // adding header lines, and must not get someone else's: the key is the
  // value exactly as the application sees it (and authenticates) in each
  // framework. Node keeps the first Authorization line and drops the rest;
  // Fetch Headers (Hono, Fetch) join every line; both join X-Api-Key lines.
  const requests: { name: string; lines: string[] }[] = [
    { name: "authorization", lines: ["Authorization: Bearer valid", "Authorization: Bearer r1"] },
    { name: "authorization", lines: ["Authorization: Bearer valid", "authorization: Bearer r2"] },
    { name: "x-api-key", lines: ["X-Api-Key: K", "x-api-key: K"] },
    { name: "x-api-key", lines: ["X-Api-Key:  K\t"] },
    { name: "x-api-key", lines: ["X-Api-Key: k"] },
    { name: "x-api-key", lines: ["X-Api-Key: K", "X-Api-Key:"] },
  ];

  for (const harness of allHarnesses) {
    it(`${harness.name}: the key is the value the app sees, line for line`, async () => {
      const seen: [string, string | undefined][] = [];
      const byName = new Map(requests.map((r) => [r.name, keys.header(r.name)]));
      const key = <Req>(request: Req, reader: RequestReader<Req>) => {
        const name = reader.header(request, "x-case") as string;
        const k = (byName.get(name) as Key)(request, reader);
        seen.push([k, harness.kit.header(request as never, name)]);
        return k;
      };
      const { port } = await serve(harness, key);
      for (const r of requests) {
        const answer = await rawRequest(port, head([`X-Case: ${r.name}`, ...r.lines]));
        expect(answer.status, `${harness.name} ${r.lines.join(" | ")}`).toBe(200);
      }
      expect(seen).toHaveLength(requests.length);
      for (const [i, [k, app]] of seen.entries()) {
        const r = requests[i] as { name: string };
        expect(k, `${harness.name} ${JSON.stringify(requests[i])}`).toBe(`${r.name}=${app}`);
      }
      // Surrounding whitespace is not part of a value (every parser trims it);
      // case is (API keys and tokens are case-sensitive).
      expect(seen[3]?.[0]).toBe("x-api-key=K");
      expect(seen[4]?.[0]).toBe("x-api-key=k");
      // The extra Authorization line never reaches the key where the app ignores it.
      if (seen[0]?.[1] === "Bearer valid") expect(seen[1]?.[0]).toBe(seen[0]?.[0]);
    });
  }
});

describe("a connection closed before the limiter runs", () => {
  // A client that sends its request and resets the connection at once: Node
  // forgets the socket's address, so by the time a limiter behind an async
  // step (a session lookup, a body parser) runs, there is none. Such a socket
  // is never a trusted proxy: the client cannot get its X-Forwarded-For
  // believed, nor a fresh bucket per request.
  async function server(delay: boolean) {
    const store = new RecordingStore();
    const limit = nodeRateLimit({
      policy: { name: "dead", capacity: 3, refillRate: 1, interval: 60_000 },
      store,
      key: keys.ip({ trustProxy: ["loopback"] }),
    });
    let handled = 0;
    const http = createServer(async (req, res) => {
      if (delay && !req.socket.destroyed) {
        await new Promise((closed) => req.socket.once("close", closed));
      }
      if (await limit(req, res)) {
        handled++;
        res.end("ok");
      }
    });
    const { port } = await listenLocal(http, closers);
    return { port, store, handled: () => handled };
  }

  function sendAndReset(port: number, xff: string): Promise<void> {
    return new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ${xff}\r\n\r\n`);
        setTimeout(() => socket.resetAndDestroy(), 20);
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve());
    });
  }

  it('keys every such request "unknown", one bucket, never the header', async () => {
    // Control: from a live loopback socket (a trusted proxy) the header is believed.
    const live = await server(false);
    await rawRequest(live.port, head(["X-Forwarded-For: 203.0.113.9"]));
    expect(live.store.keys).toEqual(["203.0.113.9"]);

    const dead = await server(true);
    for (let i = 0; i < 12; i++) await sendAndReset(dead.port, `198.51.100.${i}`);
    await vi.waitFor(() => expect(dead.store.keys).toHaveLength(12));
    expect(new Set(dead.store.keys)).toEqual(new Set(["unknown"]));
    // One bucket of 3: the handler ran three times, not twelve.
    expect(dead.handled()).toBe(3);
  });
});
