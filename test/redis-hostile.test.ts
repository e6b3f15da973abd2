/**
 * RedisStore against a hostile or failing redis-server (never a mock): an
 * empty script cache met while this process's event loop is late, and
 * client identifiers that UTF-8 cannot tell apart.
 */
import { Redis } from "ioredis";
import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MemoryStore, RateLimiter, RedisStore } from "../src/index.js";
import type { RedisClientLike } from "../src/stores/redis/clients.js";
import { keyId } from "../src/stores/redis/keys.js";
import { describeRedis, FAIL_FAST, type RedisServer, startRedis } from "./helpers/redis-server.js";

let prefixes = 0;
const prefix = () => `hostile${++prefixes}`;

/** block keeps this process's event loop busy for `ms`: a GC pause, a starved core. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: no timer, no socket read runs meanwhile
  }
}

describeRedis("RedisStore against a hostile redis-server", () => {
  let server: RedisServer;
  let ioredis: Redis;
  /** Runs SCRIPT FLUSH and CLIENT PAUSE from this process, without a redis-cli's start-up time. */
  let admin: Redis;
  let node5: ReturnType<typeof createClient>;
  let node4: ReturnType<typeof createClient4>;

  beforeAll(async () => {
    server = await startRedis();
    ioredis = new Redis(server.port, server.host, FAIL_FAST);
    ioredis.on("error", () => {});
    admin = new Redis(server.port, server.host, FAIL_FAST);
    admin.on("error", () => {});
    node5 = createClient({ url: server.url, disableOfflineQueue: true });
    node5.on("error", () => {});
    node4 = createClient4({ url: server.url, disableOfflineQueue: true });
    node4.on("error", () => {});
    await Promise.all([
      node5.connect(),
      node4.connect(),
      new Promise((r) => ioredis.once("ready", r)),
      new Promise((r) => admin.once("ready", r)),
    ]);
  }, 20_000);

  afterAll(async () => {
    ioredis?.disconnect();
    admin?.disconnect();
    await node5?.quit().catch(() => {});
    await node4?.quit().catch(() => {});
    await server?.stop();
  });

  const clients: [string, () => RedisClientLike][] = [
    ["ioredis", () => ioredis],
    ["node-redis 5", () => node5],
    ["node-redis 4", () => node4],
  ];

  for (const [name, client] of clients) {
    // The NOSCRIPT reply arrives while the loop is blocked, long after the
    // store's timeout; the limiter's deadline ran late, so it still waits
    // (one more timeout). The store used to give up on EVAL after `timeout`
    // and fail the call: a decision from the fallback and a store error
    // counted, with Redis up and the script one EVAL away.
    it(`${name}: NOSCRIPT met while the event loop is late still loads the script and decides`, async () => {
      const timeout = 200;
      const limiter = new RateLimiter({
        policy: { capacity: 5, refillRate: 1, interval: 60_000 },
        store: new RedisStore({ client: client(), prefix: prefix(), timeout }),
        instances: 1,
      });
      expect(await limiter.consume("warm")).toMatchObject({ reason: "store" });
      await admin.script("FLUSH");
      // Redis answers nothing for 400 ms: the reply is sure to come during the block.
      await admin.client("PAUSE", 400);
      const decision = limiter.consume("k");
      // Long enough for every client to write the call (node-redis writes on a later tick).
      await new Promise((r) => setTimeout(r, 10));
      block(1000);
      expect(await decision).toMatchObject({ allowed: true, remaining: 4, reason: "store" });
      const stats = limiter.stats();
      expect(stats.storeErrors).toBe(0);
      expect(stats.breaker).toBe("closed");
      await limiter.close();
    });
  }

  for (const [name, client] of clients) {
    // A refund has a plain deadline and is reported as not applied when it
    // passes; it must then stay not applied (a caller may refund again).
    it(`${name}: a refund whose NOSCRIPT comes after its deadline is not applied later`, async () => {
      const limiter = new RateLimiter({
        policy: { capacity: 5, refillRate: 1, interval: 60_000 },
        store: new RedisStore({ client: client(), prefix: prefix(), timeout: 200 }),
        instances: 1,
      });
      await limiter.consume("k", { cost: 2 });
      await admin.script("FLUSH");
      await admin.client("PAUSE", 400);
      const refund = limiter.refund("k");
      await new Promise((r) => setTimeout(r, 10));
      block(1000);
      expect(await refund).toMatchObject({ applied: false });
      expect(limiter.stats().settleErrors).toBe(1);
      // Anything sent later reaches Redis after a reloaded script would have run it.
      expect(await limiter.peek("k")).toMatchObject({ remaining: 3, reason: "store" });
      await limiter.close();
    });
  }

  for (const [name, client] of clients) {
    // Another program's hash where one client's bucket should be: that client
    // falls back, alone, however often it comes; the store is up for the rest.
    // Before, three WRONGTYPE replies over 200 ms opened the breaker, and every
    // client's decisions came from the fallback.
    it(`${name}: a key of another type never opens the breaker; other clients stay on Redis`, async () => {
      const p = prefix();
      const store = new RedisStore({ client: client(), prefix: p, timeout: 2000 });
      const limiter = new RateLimiter({
        policy: { capacity: 5, refillRate: 1, interval: 60_000 },
        store,
        instances: 1,
      });
      await admin.hset(`${p}:{bad}:default`, "f", "v");
      const errors: unknown[] = [];
      limiter.events.on("store-error", (error) => errors.push(error));
      for (let i = 0; i < 4; i++) {
        expect(await limiter.consume("bad")).toMatchObject({ reason: "insurance" });
        // The breaker opens only on failures that span 200 ms.
        await new Promise((r) => setTimeout(r, 80));
      }
      // In a batch too: the turn's first two share one script call.
      const [bad, good] = await Promise.all([limiter.consume("bad"), limiter.consume("good")]);
      expect(bad?.reason).toBe("insurance");
      expect(good?.reason).toBe("store");
      expect(await limiter.consume("other")).toMatchObject({ reason: "store", remaining: 4 });
      expect(limiter.stats()).toMatchObject({ breaker: "closed", breakerOpens: 0, storeErrors: 5 });
      expect(errors.every((e) => store.keyError(e))).toBe(true);
      // What Redis says when it is full is about the store, not one key.
      expect(
        store.keyError(new Error("OOM command not allowed when used memory > 'maxmemory'.")),
      ).toBe(false);
      await limiter.close();
    });
  }

  it("identifiers UTF-8 would merge (lone surrogates, U+FFFD) keep their own buckets, as in memory", async () => {
    // Each pair is one string apart in JavaScript; in UTF-8 both become U+FFFD.
    const pairs: [string, string][] = [
      ["\uD800", "\uFFFD"],
      ["u\uD800", "u\uDBFF"],
      [`${"x".repeat(40)}\uDC00`, `${"x".repeat(40)}\uFFFD`],
      [`${"x".repeat(15_000)}\uD800`, `${"x".repeat(15_000)}\uDFFF`],
    ];
    const policy = { capacity: 1, refillRate: 1, interval: 60_000 };
    for (const [a, b] of pairs) {
      const redis = new RateLimiter({
        policy,
        store: new RedisStore({ client: ioredis, prefix: prefix(), timeout: 2000 }),
      });
      const memory = new RateLimiter({ policy, store: new MemoryStore() });
      for (const limiter of [redis, memory]) {
        expect((await limiter.consume(a)).allowed).toBe(true);
        expect((await limiter.consume(b)).allowed).toBe(true);
        expect((await limiter.consume(a)).allowed).toBe(false);
      }
      await redis.close();
      expect(keyId(a)).not.toBe(keyId(b));
    }
    // Well-formed identifiers keep the Redis keys earlier versions wrote.
    expect(keyId("\uFFFD")).toBe("#g9VEzMIjwFfSv4DT8qMpgsMsPA2");
    expect(keyId("ü".repeat(30))).toMatch(/^#[A-Za-z0-9_-]{27}$/);
  });
});
