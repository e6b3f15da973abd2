/**
 * Issue 14 item 1: a key longer than 64 bytes is held as its digest
 * (src/core/key.ts) by every structure, and the same client reaches the same
 * bucket whichever way it comes in: RateLimiter entry points, a MemoryStore
 * or RedisStore called directly.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { boundKey } from "../src/core/key.js";
import { MemoryStore, RateLimiter, RedisStore } from "../src/index.js";
import { keyId } from "../src/stores/redis/keys.js";
import { describeRedis, type RedisServer, startRedis } from "./helpers/redis-server.js";

const policy = { name: "p", capacity: 3, refillRate: 1, interval: 60_000 };
const long = `api-key-${"x".repeat(15_000)}`;
const digest = boundKey(long);

describe("long keys through the limiter and the memory store", () => {
  it("consume, peek and reset with the raw key all reach the one bucket, held under its digest", async () => {
    const clock = () => 0;
    const limiter = new RateLimiter({ policy, store: new MemoryStore({ clock }), clock });
    const store = limiter.store as MemoryStore;
    const seen: string[] = [];
    limiter.events.on("limited", (_policy, key) => seen.push(key));
    for (let i = 0; i < 3; i++) await limiter.consume(long);
    expect((await limiter.consume(long)).allowed).toBe(false);
    expect((await limiter.peek(long)).remaining).toBe(0);
    // The digest itself is the same client (boundKey is idempotent).
    expect((await limiter.peek(digest)).remaining).toBe(0);
    expect(limiter.topLimited()).toEqual([{ key: digest, count: 1, error: 0 }]);
    expect(seen).toEqual([digest]);
    await limiter.reset(long);
    expect((await limiter.peek(long)).remaining).toBe(3);
    expect(store.stats().trackedKeys).toBe(0);
  });

  it("a MemoryStore called directly holds the digest too, and shares the bucket with the limiter", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const limiter = new RateLimiter({ policy, store });
    await limiter.consume(long);
    const reply = store.consume(long, limiter.policies, 1, true);
    expect(reply[2]).toBe(1);
    store.reset(long, limiter.policies);
    expect((await limiter.peek(digest)).remaining).toBe(3);
  });
});

describe("long keys and Redis key names", () => {
  it("a raw key and its digest name the same Redis key, 28 characters of id", () => {
    expect(keyId(long)).toBe(keyId(digest));
    expect(keyId(long)).toMatch(/^#[A-Za-z0-9_-]{27}$/);
    // Short keys keep their readable Redis keys.
    expect(keyId("203.0.113.7")).toBe("203.0.113.7");
  });
});

describeRedis("long keys on a real Redis", () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.port, "127.0.0.1");
    await client.ping();
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it("the limiter and the store called directly charge one bucket, under a short Redis key", async () => {
    const store = new RedisStore({ client, prefix: "long" });
    const limiter = new RateLimiter({ policy, store });
    await limiter.consume(long);
    const reply = await store.consume(long, limiter.policies, 1, true);
    expect(reply[2]).toBe(1);
    // Buckets only: the limiter's heartbeat keeps one more key, long:members.
    const names = (await server.cli("--scan", "--pattern", "long:{*")).trim().split("\n");
    expect(names).toEqual([`long:{${keyId(digest)}}:p`]);
    expect(Buffer.byteLength(names[0] as string)).toBeLessThan(50);
    await limiter.reset(long);
    expect((await limiter.peek(long)).remaining).toBe(3);
  });
});

describe("long keys and wait", () => {
  it("a wait error names the digest, not 15 KB of key", async () => {
    const limiter = new RateLimiter({ policy: { ...policy, capacity: 1 }, clock: () => 0 });
    await limiter.consume(long);
    const error = (await limiter.wait(long, { maxWait: 10 }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(digest);
    expect(error.message.length).toBeLessThan(300);
  });
});
