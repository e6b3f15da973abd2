/**
 * Issue 13 item 4: a bucket Redis loses while this process knows the client
 * is throttled is counted, as the "eviction" event of kind "store" and as
 * `floodgate_evictions_total{kind="store"}`, against a real redis-server:
 * the key deleted by hand, everything flushed, and buckets evicted by
 * `maxmemory` under `volatile-lru` when filler data arrives.
 */
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RateLimiter, RedisStore } from "../src/index.js";
import { prometheusMetrics } from "../src/metrics/prometheus.js";
import { describeRedis, type RedisServer, startRedis } from "./helpers/redis-server.js";

/** A slow refill: a throttled bucket cannot be full again within the test. */
const policy = { capacity: 5, refillRate: 1, interval: 600_000 };

function counted(limiter: RateLimiter): { kinds: string[]; scrape(): Promise<number> } {
  const kinds: string[] = [];
  limiter.events.on("eviction", (kind) => kinds.push(kind));
  const registry = new Registry();
  prometheusMetrics(limiter, { registry });
  return {
    kinds,
    scrape: async () => {
      const text = await registry.metrics();
      const line = text
        .split("\n")
        .find((l) => l.startsWith('floodgate_evictions_total{kind="store"}'));
      return Number(line?.split(" ")[1]);
    },
  };
}

async function throttle(limiter: RateLimiter, key: string): Promise<void> {
  for (let i = 0; i < policy.capacity; i++) expect((await limiter.consume(key)).allowed).toBe(true);
  expect(await limiter.consume(key)).toMatchObject({ allowed: false, reason: "store" });
}

describeRedis("buckets Redis lost are counted", () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.port, server.host);
    await new Promise((r) => client.once("ready", r));
  });
  afterAll(async () => {
    client.disconnect();
    await server.stop();
  });

  it("DEL and FLUSHALL while throttled: each fresh burst is one eviction of kind store", async () => {
    const limiter = new RateLimiter({
      policy,
      store: new RedisStore({ client, prefix: "del", timeout: 2000 }),
      cacheDenials: false,
    });
    const { kinds, scrape } = counted(limiter);
    await throttle(limiter, "a");
    // The bucket only: the limiter's heartbeat keeps one more key, del:members.
    const keys = await client.keys("del:{*");
    expect(keys.length).toBe(1);
    await client.del(keys[0] as string);
    expect((await limiter.consume("a")).allowed).toBe(true);
    expect(kinds).toEqual(["store"]);
    await throttle(limiter, "b");
    await client.flushall();
    expect((await limiter.consume("b")).allowed).toBe(true);
    expect(kinds).toEqual(["store", "store"]);
    expect(await scrape()).toBe(2);
    // Drained again by this process: spending from the fresh bucket is not another loss.
    await limiter.consume("b");
    expect(limiter.stats().storeEvictions).toBe(2);
    await limiter.close();
  });

  it("with cached denials (the default) the loss is seen once the cached denial ends", async () => {
    const short = { capacity: 3, refillRate: 1, interval: 300 };
    let now = Date.now();
    const limiter = new RateLimiter({
      policy: short,
      store: new RedisStore({ client, prefix: "cached", timeout: 2000, now: () => now }),
    });
    const { kinds } = counted(limiter);
    for (let i = 0; i < 3; i++) await limiter.consume("c");
    const denied = await limiter.consume("c");
    expect(denied.allowed).toBe(false);
    await client.del(...(await client.keys("cached:*")));
    expect((await limiter.consume("c")).reason).toBe("cached");
    // The cached denial lasts until the next refill; a fresh bucket then is 3, not 1.
    now += denied.retryAfter;
    expect(await limiter.consume("c")).toMatchObject({ allowed: true, remaining: 2 });
    expect(kinds).toEqual(["store"]);
    await limiter.close();
  });

  it("maxmemory with volatile-lru: buckets evicted under filler data are counted", async () => {
    const lru = await startRedis(["--maxmemory", "4mb", "--maxmemory-policy", "volatile-lru"]);
    const lruClient = new Redis(lru.port, lru.host);
    await new Promise((r) => lruClient.once("ready", r));
    try {
      const limiter = new RateLimiter({
        policy,
        store: new RedisStore({ client: lruClient, prefix: "lru", timeout: 2000 }),
        cacheDenials: false,
      });
      const { scrape } = counted(limiter);
      const clients = Array.from({ length: 20 }, (_, i) => `client-${i}`);
      for (const key of clients) await throttle(limiter, key);
      // Filler with a TTL (volatile-lru evicts only keys with one) until the buckets are gone.
      const filler = "x".repeat(10_000);
      for (let i = 0; i < 2000 && (await lruClient.keys("lru:*")).length > 0; i++) {
        await lruClient.set(`filler:${i}`, filler, "EX", 600);
      }
      const left = (await lruClient.keys("lru:*")).length;
      expect(left).toBeLessThan(clients.length);
      let fresh = 0;
      for (const key of clients) if ((await limiter.consume(key)).allowed) fresh++;
      expect(fresh).toBe(clients.length - left);
      expect(limiter.stats().storeEvictions).toBe(fresh);
      expect(await scrape()).toBe(fresh);
      await limiter.close();
    } finally {
      lruClient.disconnect();
      await lru.stop();
    }
  });
});
