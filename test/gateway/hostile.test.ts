// `floodgate serve` against hostile peers: costs Envoy can send that no bucket
// holds, clients that send their headers a byte at a time, bodies far over
// the bound, and shutdown with calls in flight. Real sockets on loopback.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildConfig, parseConfigFile } from "../../src/gateway/config.js";
import { Engine, type Verdict } from "../../src/gateway/engine.js";
import { PROTO_FILES, protoRoot } from "../../src/gateway/grpc.js";
import { GatewayMetrics } from "../../src/gateway/metrics.js";
import { ServeError, startServe } from "../../src/gateway/serve.js";
import { RateLimiter } from "../../src/limiter.js";
import { MemoryStore } from "../../src/stores/memory-store.js";
import type { Store } from "../../src/stores/store.js";
import { freePort } from "../helpers/redis-server.js";
import { type Gateway, startGateway } from "./helpers.js";

const CONFIG = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }
  - key: free
    rate_limit: { unlimited: true }
  - key: api_key
    rate_limit: { unit: minute, requests_per_unit: 3 }
  - key: path
    value: "*.png"
    rate_limit: { unit: minute, requests_per_unit: 2 }
http_check:
  actions:
    - - remote_address: {}
    - - path: {}
`;

interface RlsReply {
  overall_code: string;
  statuses: { code: string; limit_remaining: number }[];
}

type Call = (
  request: unknown,
  callback: (error: { code: number; details: string } | null, reply?: RlsReply) => void,
) => void;

/** rls is a gRPC client of the Envoy protocol (grpc-js, the vendored protos). */
async function rls(port: number) {
  const grpc = await import("@grpc/grpc-js");
  const loader = await import("@grpc/proto-loader");
  const definition = loader.loadSync(PROTO_FILES, {
    includeDirs: [protoRoot()],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: {
      service: {
        ratelimit: {
          v3: {
            RateLimitService: new (
              address: string,
              credentials: unknown,
            ) => { ShouldRateLimit: Call; close(): void };
          };
        };
      };
    };
  };
  const client = new pkg.envoy.service.ratelimit.v3.RateLimitService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
  const call = (request: unknown) =>
    new Promise<RlsReply | { error: number; details: string }>((resolve) => {
      client.ShouldRateLimit(request, (error, reply) =>
        resolve(error ? { error: error.code, details: error.details } : (reply as RlsReply)),
      );
    });
  return { call, close: () => client.close() };
}

const entry = (value: string) => [{ key: "remote_address", value }];

describe("floodgate serve against hostile callers", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway(CONFIG);
  });
  afterAll(() => gw.stop());

  it("a hits_addend above every bucket (up to 2^64 - 1) is over the limit and charges nothing, never a bad request", async () => {
    const client = await rls(gw.running.grpcPort as number);
    try {
      // Envoy's hits_addend is a uint32: its largest value is an ordinary request.
      const big = await client.call({
        domain: "edge",
        descriptors: [{ entries: entry("h1") }],
        hits_addend: 4_294_967_295,
      });
      expect(big).toMatchObject({ overall_code: "OVER_LIMIT", statuses: [{ code: "OVER_LIMIT" }] });
      // The per-descriptor hits_addend is a UInt64Value: 2^63.
      const huge = await client.call({
        domain: "edge",
        descriptors: [{ entries: entry("h1"), hits_addend: { value: "9223372036854775808" } }],
      });
      expect(huge).toMatchObject({ overall_code: "OVER_LIMIT" });
      // An unlimited descriptor stays unlimited, whatever the cost.
      const free = await client.call({
        domain: "edge",
        descriptors: [{ entries: [{ key: "free", value: "x" }] }],
        hits_addend: 4_294_967_295,
      });
      expect(free).toMatchObject({ overall_code: "OK" });
      // Nothing was charged: the whole burst is still there.
      const after = await client.call({ domain: "edge", descriptors: [{ entries: entry("h1") }] });
      expect(after).toMatchObject({ overall_code: "OK", statuses: [{ limit_remaining: 19 }] });
    } finally {
      client.close();
    }

    const post = (body: unknown) =>
      fetch(`${gw.http}/json`, { method: "POST", body: JSON.stringify(body) });
    for (const hits_addend of [2 ** 63, "9223372036854775808", "18446744073709551615"]) {
      const r = await post({
        domain: "edge",
        descriptors: [{ entries: entry("h2") }],
        hits_addend,
      });
      expect(r.status).toBe(429);
      expect(await r.json()).toMatchObject({ overallCode: "OVER_LIMIT" });
    }
    const left = await post({ domain: "edge", descriptors: [{ entries: entry("h2") }] });
    expect(await left.json()).toMatchObject({ statuses: [{ limitRemaining: 19 }] });
    // Still refused: not whole numbers, or beyond a uint64.
    for (const hits_addend of [-1, 1.5, "1e3", "184467440737095516150", 1e30]) {
      const r = await post({
        domain: "edge",
        descriptors: [{ entries: entry("h3") }],
        hits_addend,
      });
      expect(r.status).toBe(400);
      expect((await r.json()).error).toBe("hits_addend must be a whole number from 0 to 2^64 - 1");
    }
  });

  it("a long value (client text) is decided whole, never refused: over gRPC, POST /json and /check", async () => {
    const client = await rls(gw.running.grpcPort as number);
    try {
      // Five descriptors of 60 KiB each (Envoy's default request head): a 300 KiB message.
      const long = (i: number) => `${i}${"k".repeat(60 * 1024)}`;
      const request = {
        domain: "edge",
        descriptors: Array.from({ length: 5 }, (_, i) => ({
          entries: [{ key: "api_key", value: long(i) }],
        })),
      };
      const codes: string[] = [];
      for (let n = 0; n < 4; n++) {
        const r = await client.call(request);
        codes.push("overall_code" in r ? r.overall_code : `error ${r.error}: ${r.details}`);
      }
      expect(codes).toEqual(["OK", "OK", "OK", "OVER_LIMIT"]);
      // Two values alike for their first 60 KiB are two clients.
      const other = await client.call({
        domain: "edge",
        descriptors: [{ entries: [{ key: "api_key", value: `${long(0)}-other` }] }],
      });
      expect(other).toMatchObject({ overall_code: "OK", statuses: [{ limit_remaining: 2 }] });
    } finally {
      client.close();
    }

    const post = (value: string) =>
      fetch(`${gw.http}/json`, {
        method: "POST",
        body: JSON.stringify({
          domain: "edge",
          descriptors: [{ entries: [{ key: "api_key", value }] }],
        }),
      });
    const j = `j${"v".repeat(8000)}`;
    expect([
      (await post(j)).status,
      (await post(j)).status,
      (await post(j)).status,
      (await post(j)).status,
    ]).toEqual([200, 200, 200, 429]);

    // A 10 KB path ending in .png still matches "*.png" (2 a minute).
    const uri = `/${"p".repeat(10_000)}.png?x=1`;
    const statuses: number[] = [];
    for (let n = 0; n < 3; n++) {
      const r = await fetch(`${gw.http}/check`, { headers: { "x-original-uri": uri } });
      statuses.push(r.status);
    }
    expect(statuses).toEqual([200, 200, 429]);
  });

  it("closes a connection whose headers come a byte at a time within seconds (slowloris on /check)", async () => {
    const port = gw.running.httpPort;
    const socket = connect({ host: "127.0.0.1", port });
    let closedAt = 0;
    const started = performance.now();
    let answer = "";
    socket.on("data", (b) => (answer += b.toString("latin1")));
    const closed = new Promise<void>((resolve) =>
      socket.on("close", () => {
        closedAt = performance.now() - started;
        resolve();
      }),
    );
    socket.on("error", () => {});
    socket.write("GET /check HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    const drip = setInterval(() => socket.writable && socket.write("a"), 200);
    try {
      await Promise.race([closed, new Promise((r) => setTimeout(r, 9000))]);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
    // headersTimeout is 5 s; the check runs every second, not every 30.
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt).toBeLessThan(8000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  }, 15_000);

  it("answers a body far over 64 KiB with a clean 413, read by the client, and goes on", async () => {
    const big = JSON.stringify({ domain: "edge", pad: "x".repeat(4 << 20) });
    const r = await fetch(`${gw.http}/json`, { method: "POST", body: big });
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ error: "the body must be at most 65536 bytes" });
    const ok = await fetch(`${gw.http}/json`, {
      method: "POST",
      body: JSON.stringify({ domain: "edge", descriptors: [{ entries: entry("b1") }] }),
    });
    expect(ok.status).toBe(200);
  });
});

describe("Engine on a network store", () => {
  it("identical descriptors share one bucket also when the bucket cache starts over between them", async () => {
    const inner = new MemoryStore();
    const lists: string[][] = [];
    const store: Store = {
      timeout: 1000,
      consume: async (key, policies, cost, spend) => {
        lists.push(policies.map((p) => p.name));
        return [...inner.consume(key, policies, cost, spend)];
      },
      reset: () => {},
    };
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      store,
      instances: 1,
      topLimited: false,
    });
    const config = buildConfig([
      parseConfigFile(
        "f.yaml",
        "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n",
      ),
    ]);
    const engine = new Engine(
      limiter,
      config,
      { shadow: false, local: false },
      new GatewayMetrics(),
    );
    const ip = (value: string) => [{ key: "ip", value }];
    try {
      // X, then 9,999 other clients: the cache of bucket policies is full (10,000).
      await engine.decide("edge", [ip("X")], 1);
      for (let i = 0; i < 9_999; i++) await engine.decide("edge", [ip(`c${i}`)], 1);
      lists.length = 0;
      // Y starts the cache over between the two X.
      await engine.decide("edge", [ip("X"), ip("Y"), ip("X")], 1);
      expect(lists).toHaveLength(1);
      expect(lists[0]).toHaveLength(2);
      expect(new Set(lists[0]).size).toBe(2);
    } finally {
      await limiter.close();
    }
  });
});

describe("Engine on a failing network store", () => {
  const config = buildConfig([
    parseConfigFile(
      "f.yaml",
      "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n",
    ),
  ]);
  const ip = (value: string) => [[{ key: "ip", value }]];

  it("a client the store drained stays drained on the fallback after another client of its domain", async () => {
    let now = 1_000_000;
    const clock = () => now;
    const inner = new MemoryStore({ clock });
    let down = false;
    const store: Store = {
      timeout: 50,
      clock,
      consume: async (key, policies, cost, spend) => {
        if (down) throw new Error("down");
        return [...inner.consume(key, policies, cost, spend)];
      },
      reset: () => {},
    };
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      store,
      clock,
      instances: 1,
      cacheDenials: false,
      topLimited: false,
    });
    const engine = new Engine(
      limiter,
      config,
      { shadow: false, local: false },
      new GatewayMetrics(),
    );
    const code = async (value: string) =>
      ((await engine.decide("edge", ip(value), 1)) as Verdict).code;
    try {
      const up: string[] = [];
      for (let i = 0; i < 6; i++) up.push(await code("attacker"));
      expect(up).toEqual(["OK", "OK", "OK", "OK", "OK", "OVER_LIMIT"]);
      expect(await code("victim")).toBe("OK");
      down = true;
      now += 1000;
      // A minute's five, spent through the store: the fallback continues from there.
      expect(await code("attacker")).toBe("OVER_LIMIT");
      expect(await code("victim")).toBe("OK");
    } finally {
      await limiter.close();
    }
  });
});

describe("floodgate serve shutdown", () => {
  it("closes twice, with a call in flight, within the drain bound", async () => {
    const gw = await startGateway(CONFIG);
    // A /json call whose body never ends: in flight until the drain gives up.
    const socket = connect({ host: "127.0.0.1", port: gw.running.httpPort });
    socket.on("error", () => {});
    const gone = new Promise<void>((r) => socket.on("close", () => r()));
    socket.write("POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const first = gw.running.close(500);
    const second = gw.running.close(500);
    expect(second).toBe(first);
    await Promise.all([first, second, gone]);
    expect(performance.now() - started).toBeLessThan(2000);
    await gw.stop();
  });

  it("a Redis Cluster that cannot be reached: start fails, and the Cluster client is ended, not left reconnecting", async () => {
    // A seed that accepts and hangs up at once, counting how often it is tried.
    let tries = 0;
    const seed: Server = createServer((s) => {
      tries++;
      s.destroy();
    });
    const port = await freePort();
    await new Promise<void>((r) => seed.listen(port, "127.0.0.1", r));
    const dir = mkdtempSync(join(tmpdir(), "floodgate-hostile-"));
    const file = join(dir, "floodgate.yaml");
    writeFileSync(file, CONFIG);
    try {
      const start = startServe(
        {
          config: file,
          host: "127.0.0.1",
          port: 0,
          grpcPort: null,
          redis: `redis-cluster://127.0.0.1:${port}`,
          timeout: 50,
          shadow: false,
        },
        () => {},
      );
      await expect(start).rejects.toThrow(ServeError);
      await new Promise((r) => setTimeout(r, 300));
      const after = tries;
      await new Promise((r) => setTimeout(r, 1500));
      expect(tries).toBe(after);
    } finally {
      await new Promise((r) => seed.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
