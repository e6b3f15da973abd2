/**
 * Observability under hostile clients and careless operators: what a client
 * sends (its key, the size of its headers) must not reach a log line or grow
 * memory past what the docs promise, and an operator's mistake (a guard that
 * throws, an odd event name, an infinite bucket) must not take the service or
 * its scrape down. Through real servers, a real Redis and real pino.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../src/core/errors.js";
import { RateLimiter } from "../src/limiter.js";
import { dashboard } from "../src/metrics/dashboard.js";
import { prometheusMetrics } from "../src/metrics/prometheus.js";
import { MemoryStore } from "../src/stores/memory-store.js";
import { RedisStore } from "../src/stores/redis/redis-store.js";
import { describeRedis, type RedisServer, startRedis } from "./helpers/redis-server.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** retained runs `fill`, lets its calls settle, and tells how many bytes the heap grew by. */
async function retained(fill: () => unknown): Promise<number> {
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const keep = await fill();
  await new Promise((r) => setTimeout(r, 10));
  gc();
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  expect(keep).toBeDefined();
  return grown;
}

/**
 * A short key cut from a big string, as a key function makes it from a
 * header or body a client sent: `cookie.parse(req.headers.cookie).session`,
 * `req.headers.authorization.split(" ")[1]`. V8 keeps such a substring as a
 * view into the whole string.
 */
const cutKey = (i: number, size: number): string =>
  `client-${String(i).padStart(6, "0")}|`.padEnd(size, "x").slice(0, 24);

describe("memory is bounded in bytes: a short key cut from a huge header keeps no more than itself", () => {
  const BIG = 64 * 1024;
  const KEYS = 1000;

  // The store holds 10 keys at most, so what is measured is the summary's and the dashboard's.
  const policy = { capacity: 1, refillRate: 1, interval: 3_600_000 };

  it("the top limited summary holds 1,000 keys of 24 characters in well under 64 MB", async () => {
    const limiter = new RateLimiter({
      policy,
      store: new MemoryStore({ maxKeys: 10 }),
      topLimited: { size: KEYS },
    });
    const grown = await retained(() => {
      for (let i = 0; i < KEYS; i++) {
        const key = cutKey(i, BIG);
        void limiter.consume(key);
        void limiter.consume(key); // denied: counted in the summary
      }
      return limiter;
    });
    expect(limiter.topLimited(Number.POSITIVE_INFINITY)).toHaveLength(KEYS);
    // 1,000 x 64 KB = 64 MB if each key keeps its client's whole header alive.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    await limiter.close();
  });

  it("the memory store holds 1,000 keys of 24 characters in well under 64 MB", async () => {
    const store = new MemoryStore();
    const limiter = new RateLimiter({ policy, store, topLimited: false });
    const grown = await retained(() => {
      for (let i = 0; i < KEYS; i++) void limiter.consume(cutKey(i, BIG));
      return limiter;
    });
    expect(store.stats().trackedKeys).toBe(KEYS);
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    await limiter.close();
  });

  it("the dashboard's blocked clients hold 1,000 keys of 24 characters in well under 64 MB", async () => {
    const limiter = new RateLimiter({
      policy,
      store: new MemoryStore({ maxKeys: 10 }),
      topLimited: false,
    });
    const board = dashboard({ limiter, guard: () => true, top: 100 });
    const grown = await retained(() => {
      for (let i = 0; i < KEYS; i++) void limiter.block(cutKey(i, BIG), 60_000 + i);
      return board;
    });
    const blocked = board.stats().blocked;
    expect(blocked).toHaveLength(100);
    expect(blocked[0]?.key).toBe(cutKey(KEYS - 1, 32));
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    board.stop();
    await limiter.close();
  });
});

describeRedis(
  "the logger never logs a client key, whatever the Redis client puts on its errors",
  () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await startRedis(["--maxmemory-policy", "noeviction"]);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("a store error from ioredis (which carries the command's keys) logs its message, not the keys", async () => {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      });
      const client = new Redis(server.port, server.host);
      const store = new RedisStore({ client, timeout: 2000 });
      await store.ready();
      // Redis is full: every script call now fails with OOM.
      await server.cli("config", "set", "maxmemory", "1");
      const limiter = new RateLimiter({
        policy: { capacity: 5, refillRate: 1, interval: 60_000 },
        store,
        instances: 1,
        logger: pino(sink),
      });
      const secret = "x-api-key=sk_live_7Hq2secret";
      const d = await limiter.consume(secret);
      expect(d.reason).toBe("insurance");
      await new Promise((r) => setTimeout(r, 20));
      const failed = lines.map((l) => JSON.parse(l)).find((l) => l.floodgate === "store-error");
      expect(failed?.err).toMatchObject({
        type: "ReplyError",
        message: expect.stringMatching(/^OOM /),
      });
      expect(failed?.err?.stack).toMatch(/OOM/);
      expect(lines.join("")).not.toContain("sk_live_7Hq2secret");
      await limiter.close();
      client.disconnect();
    });
  },
);

describe("the dashboard, mounted as the docs show, with a guard that throws", () => {
  const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
  // A careless guard: it reads a header every admitted request has, and throws without it.
  const board = dashboard({
    limiter,
    guard: (request) => (request.headers["x-admin-token"] as string).startsWith("ok-"),
  });
  let http: Server;
  let base: string;
  beforeAll(async () => {
    http = createServer((req, res) => {
      board.node(req, res).then(
        (done) => {
          if (!done) res.end("app");
        },
        () => {
          // What an unhandled rejection would be in the docs' async handler: the process dies.
          res.statusCode = 500;
          res.end("the dashboard rejected");
        },
      );
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    board.stop();
    await new Promise((r) => http.close(r));
    await limiter.close();
  });

  it("refuses with 403, through node, fetch and handle, and still admits a good token", async () => {
    const refused = await fetch(`${base}/ratelimit/stats.json`);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toBe("Forbidden\n");
    const admitted = await fetch(`${base}/ratelimit/stats.json`, {
      headers: { "x-admin-token": "ok-1" },
    });
    expect(admitted.status).toBe(200);
    expect((await fetch(`${base}/other`)).status).toBe(200);
    const viaFetch = await board.fetch(new Request("http://x/ratelimit"), "127.0.0.1");
    expect(viaFetch?.status).toBe(403);
    const rejecting = dashboard({
      limiter,
      guard: () => Promise.reject(new Error("session db down")),
    });
    const viaHandle = await rejecting.handle({
      method: "GET",
      url: "/ratelimit",
      headers: {},
      remoteAddress: "127.0.0.1",
    });
    expect(viaHandle?.status).toBe(403);
    rejecting.stop();
  });
});

describe("limiter events named like Object properties", () => {
  it("are unknown events: on throws naming the events, off and listenerCount see nothing", () => {
    const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(limiter.events.listenerCount(name as never)).toBe(0);
      expect(() => limiter.events.off(name as never, () => {})).not.toThrow();
      expect(() => limiter.events.on(name as never, () => {})).toThrow(/unknown event/);
    }
    void limiter.close();
  });
});

describe("prometheusMetrics duration buckets", () => {
  it("refuses an infinite bucket, which prom-client would expose as a second +Inf bucket", async () => {
    const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
    const registry = new Registry();
    expect(() =>
      prometheusMetrics(limiter, {
        registry,
        durationBuckets: [0.01, 0.1, Number.POSITIVE_INFINITY],
      }),
    ).toThrow(ConfigError);
    // Nothing was registered: a good call on the same registry works.
    const metrics = prometheusMetrics(limiter, { registry, durationBuckets: [0.01, 0.1] });
    await limiter.consume("a");
    const les = (await metrics.metrics()).match(/le="[^"]*"/g);
    expect(les).toEqual(['le="0.01"', 'le="0.1"', 'le="+Inf"']);
    metrics.stop();
    await limiter.close();
  });
});

describe("a listener that throws something that is not an Error", () => {
  it("is still reported once, with no logger, when what it threw cannot become a string", async () => {
    const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
    const heard: { code?: string; message: string }[] = [];
    const listen = (w: Error & { code?: string }) => heard.push(w);
    process.on("warning", listen);
    limiter.events.on("limited", () => {
      throw Object.create(null); // String() of it throws
    });
    await limiter.consume("a");
    const d = await limiter.consume("a");
    expect(d.allowed).toBe(false);
    await new Promise((r) => setImmediate(r));
    process.off("warning", listen);
    const ours = heard.filter((w) => w.code === "FLOODGATE_LISTENER_ERROR");
    expect(ours).toHaveLength(1);
    expect(ours[0]?.message).toMatch(/a listener for the limited event threw \(an object\)/);
    await limiter.close();
  });
});

describeRedis("memory is bounded in bytes on Redis: the fallback's remembered states", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("remembers 1,000 clients' last states, keys of 24 characters, in well under 64 MB", async () => {
    const store = new RedisStore({ url: server.url, prefix: "cut", timeout: 2000 });
    await store.ready();
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 3_600_000 },
      store,
      topLimited: false,
      cacheDenials: false,
    });
    let decided = 0;
    const grown = await retained(() =>
      (async () => {
        for (let i = 0; i < 1000; i++) {
          if ((await limiter.consume(cutKey(i, 64 * 1024))).reason === "store") decided++;
        }
        return limiter;
      })(),
    );
    expect(decided).toBe(1000);
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    await limiter.close();
  });
});
