import { createHash } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { Redis as Valkey } from "iovalkey";
import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RateLimiter, RedisStore, type Store } from "../src/index.js";
import { keyId } from "../src/stores/redis/keys.js";
import { SCRIPT, SHA } from "../src/stores/redis/script.js";
import {
  describeRedis,
  FAIL_FAST,
  type RedisCluster,
  type RedisServer,
  startCluster,
  startRedis,
} from "./helpers/redis-server.js";
import { storeContract } from "./store-contract.js";

/** Options every client here gets, as docs/readme/redis.md advises. */
let prefixes = 0;
const prefix = () => `t${++prefixes}`;

describeRedis("RedisStore against redis-server", () => {
  let server: RedisServer;
  let ioredis: Redis;
  let valkey: Valkey;
  let node5: ReturnType<typeof createClient>;
  let node4: ReturnType<typeof createClient4>;

  beforeAll(async () => {
    server = await startRedis();
    ioredis = new Redis(server.port, server.host, FAIL_FAST);
    valkey = new Valkey(server.port, server.host, FAIL_FAST);
    node5 = createClient({ url: server.url, disableOfflineQueue: true });
    node4 = createClient4({ url: server.url, disableOfflineQueue: true });
    await Promise.all([
      node5.connect(),
      node4.connect(),
      new Promise((r) => ioredis.once("ready", r)),
      new Promise((r) => valkey.once("ready", r)),
    ]);
  }, 20_000);

  afterAll(async () => {
    ioredis?.disconnect();
    valkey?.disconnect();
    await node5?.quit().catch(() => {});
    await node4?.quit().catch(() => {});
    await server?.stop();
  });

  storeContract(
    "RedisStore (ioredis)",
    (now) => new RedisStore({ client: ioredis, prefix: prefix(), now }),
  );
  storeContract(
    "RedisStore (iovalkey)",
    (now) => new RedisStore({ client: valkey, prefix: prefix(), now }),
  );
  storeContract(
    "RedisStore (node-redis 5)",
    (now) => new RedisStore({ client: node5, prefix: prefix(), now }),
  );
  storeContract(
    "RedisStore (node-redis 4)",
    (now) => new RedisStore({ client: node4, prefix: prefix(), now }),
  );

  it("pins the script's SHA", () => {
    expect(SHA).toBe(createHash("sha1").update(SCRIPT).digest("hex"));
    expect(SHA).toMatchInlineSnapshot(`"2d4384e54507fcca0cf8209790993f71a04e89fd"`);
  });

  it("reloads the script after SCRIPT FLUSH (NOSCRIPT falls back to EVAL)", async () => {
    for (const client of [ioredis, node5]) {
      const limiter = new RateLimiter({
        policy: { capacity: 2, refillRate: 1, interval: 1000 },
        store: new RedisStore({ client, prefix: prefix(), timeout: 2000 }),
      });
      await server.cli("script", "flush");
      expect(await limiter.consume("a")).toMatchObject({
        allowed: true,
        remaining: 1,
        reason: "store",
      });
      expect((await server.cli("script", "exists", SHA)).trim()).toBe("1");
      expect(await limiter.consume("a")).toMatchObject({
        allowed: true,
        remaining: 0,
        reason: "store",
      });
    }
  });

  it("uses Redis TIME and sets PEXPIRE to the time until the bucket is full again", async () => {
    const p = prefix();
    const limiter = new RateLimiter({
      policies: [
        { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
        { name: "daily", capacity: 1000, refillRate: 1000, interval: 86_400_000 },
      ],
      store: new RedisStore({ client: ioredis, prefix: p, timeout: 2000 }),
    });
    const d = await limiter.consume("client-1", { cost: 4 });
    const time = (await server.cli("time")).trim().split("\n").map(Number);
    const redisNow = (time[0] as number) * 1000 + Math.floor((time[1] as number) / 1000);
    expect(Math.abs(d.resetAt - 1000 - redisNow)).toBeLessThan(1000);
    // 4 missing at 2 per second: full again in 2 intervals; a key is given
    // twice the time it needs, so later writes can keep its TTL.
    const burst = Number(await server.cli("pttl", `${p}:{client-1}:burst`));
    expect(burst).toBeGreaterThan(2000);
    expect(burst).toBeLessThanOrEqual(4000);
    const daily = Number(await server.cli("pttl", `${p}:{client-1}:daily`));
    expect(daily).toBeGreaterThan(2 * 86_400_000 - 1000);
    expect(daily).toBeLessThanOrEqual(2 * 86_400_000);
    expect(Number(await server.cli("strlen", `${p}:{client-1}:burst`))).toBe(24);
    // A peek of a new client writes nothing; a full bucket is deleted, not stored.
    await limiter.peek("client-2");
    expect(Number(await server.cli("exists", `${p}:{client-2}:burst`))).toBe(0);
    await limiter.reset("client-1");
    expect(Number(await server.cli("exists", `${p}:{client-1}:burst`))).toBe(0);
  });

  it("keeps every key alive until its bucket is full again, and at most twice as long", async () => {
    const p = prefix();
    const policies = [
      { name: "fast", capacity: 40, refillRate: 3, interval: 200 },
      { name: "slow", capacity: 500, refillRate: 7, interval: 60_000 },
    ];
    const one = new RateLimiter({
      policy: { name: "solo", capacity: 30, refillRate: 2, interval: 100 },
      store: new RedisStore({ client: ioredis, prefix: p, timeout: 2000 }),
    });
    const two = new RateLimiter({
      policies,
      store: new RedisStore({ client: ioredis, prefix: p, timeout: 2000 }),
    });
    // A random walk of spends (seeded: the same every run) on one and two
    // policies; after each, every key's TTL must cover the time its bucket
    // needs to be full again, computed from the decision alone.
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let kept = 0;
    let checks = 0;
    const start = performance.now();
    for (let step = 0; step < 120; step++) {
      const limiter = next() < 0.5 ? one : two;
      const cost = 1 + Math.floor(next() * 5);
      const d = await limiter.consume("walker", { cost });
      if (step % 10 === 9) await new Promise((r) => setTimeout(r, 30));
      for (const s of d.policies) {
        const key = `${p}:{walker}:${s.name}`;
        const pttl = Number(await server.cli("pttl", key));
        const rate = s.policy.refillRate;
        const needed =
          s.remaining >= s.limit
            ? 0
            : s.resetAt -
              d.now +
              (Math.ceil((s.limit - s.remaining) / rate) - 1) * s.policy.interval;
        if (needed <= 0) continue;
        checks++;
        // The reply and PTTL are a few ms apart: allow 50 ms. A TTL armed
        // earlier counts from then: twice what was needed then is at most
        // twice what is needed now plus the time since.
        const since = performance.now() - start;
        expect(pttl, `${key} after step ${step}`).toBeGreaterThanOrEqual(needed - 50);
        expect(pttl, `${key} after step ${step}`).toBeLessThanOrEqual(2 * needed + since + 50);
        if (pttl > needed + 100) kept++;
      }
    }
    expect(checks).toBeGreaterThan(100);
    // Most writes kept a TTL longer than needed: the KEEPTTL path ran.
    expect(kept).toBeGreaterThan(checks / 4);
    await one.close();
    await two.close();
  });

  it("reads buckets an earlier version stored as text, and rewrites them packed", async () => {
    const p = prefix();
    let now = 1_500;
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 1, interval: 1000 },
      store: new RedisStore({ client: ioredis, prefix: p, now: () => now }),
    });
    const key = `${p}:{old}:default`;
    await server.cli("set", key, "5 1000", "px", "60000");
    expect(await limiter.consume("old")).toMatchObject({ allowed: true, remaining: 4 });
    expect(Number(await server.cli("strlen", key))).toBe(24);
    now = 2_100;
    // One refill since 1000: 4 + 1 - 1.
    expect(await limiter.consume("old")).toMatchObject({ allowed: true, remaining: 4 });
    const blocked = `${p}:{banned}:default`;
    await server.cli("set", blocked, "5 1000 9000", "px", "60000");
    expect(await limiter.consume("banned")).toMatchObject({ allowed: false, reason: "blocked" });
    now = 9_000;
    expect(await limiter.consume("banned")).toMatchObject({ allowed: true, remaining: 9 });
    expect(Number(await server.cli("strlen", blocked))).toBe(24);
    await limiter.close();
  });

  describe("consumes made in one turn share script calls", () => {
    const scriptCalls = async () => {
      const info = await server.cli("info", "commandstats");
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    const policy = { capacity: 10, refillRate: 1, interval: 60_000 };

    for (const [name, client] of [
      ["ioredis", () => ioredis],
      ["node-redis 5", () => node5],
    ] as const) {
      // The turn's first 2 go at once; each later batch waits for half the
      // consumes then awaiting Redis (at least 8, at most 64): 2, 8, 8, 9, 13,
      // 20, 30, 45, 64, and the last one alone when the turn ends.
      it(`${name}: 200 clients in one turn cost 10 calls, each decided as alone`, async () => {
        const limiter = new RateLimiter({
          policy,
          store: new RedisStore({ client: client(), prefix: prefix(), timeout: 2000 }),
        });
        await limiter.consume("warm");
        await server.cli("config", "resetstat");
        const ds = await Promise.all(
          Array.from({ length: 200 }, (_, i) => limiter.consume(`c${i}`, { cost: 1 + (i % 3) })),
        );
        expect(await scriptCalls()).toBe(10);
        ds.forEach((d, i) => {
          expect(d).toMatchObject({ allowed: true, remaining: 10 - 1 - (i % 3), reason: "store" });
        });
        await limiter.close();
      });
    }

    it("one turn of limiters with different policies on one store: each decided by its own", async () => {
      const p = prefix();
      let now = 10_000;
      const store = new RedisStore({ client: ioredis, prefix: p, timeout: 2000, now: () => now });
      const plain = new RateLimiter({
        policy: { capacity: 3, refillRate: 1, interval: 1000 },
        store,
      });
      const two = new RateLimiter({
        policies: [
          { name: "s", capacity: 5, refillRate: 1, interval: 1000 },
          { name: "h", capacity: 2, refillRate: 1, interval: 60_000 },
        ],
        store,
      });
      const blocking = new RateLimiter({
        policy: { capacity: 1, refillRate: 1, interval: 1000, blockFor: 30_000 },
        store,
        cacheDenials: false,
      });
      await server.cli("config", "resetstat");
      const ds = await Promise.all(
        Array.from({ length: 12 }, (_, i) => [plain, two, blocking][i % 3]?.consume(`k${i % 3}`)),
      );
      expect(await scriptCalls()).toBeLessThan(12);
      // In call order, one limiter after another: plain 3 of 4, two 2 of 4, blocking 1 of 4.
      expect(ds.map((d) => d?.allowed)).toEqual([
        ...[true, true, true],
        ...[true, true, false],
        ...[true, false, false],
        ...[false, false, false],
      ]);
      expect(ds[4]?.policies.map((s) => s.remaining)).toEqual([3, 0]);
      // The test clock's reading went with each consume: the block runs from 10 s.
      expect(ds[5]?.retryAfter).toBe(30_000);
      now = 41_000;
      expect(await blocking.consume("k2")).toMatchObject({ allowed: true });
      await store.close();
    });

    it("one client many times in one turn: in call order, exactly its capacity", async () => {
      const limiter = new RateLimiter({
        policies: [
          { name: "a", ...policy },
          { name: "b", capacity: 30, refillRate: 1, interval: 60_000 },
        ],
        store: new RedisStore({ client: ioredis, prefix: prefix(), timeout: 2000 }),
        cacheDenials: false,
      });
      const ds = await Promise.all(Array.from({ length: 25 }, () => limiter.consume("same")));
      expect(ds.map((d) => d.allowed)).toEqual(Array.from({ length: 25 }, (_, i) => i < 10));
      expect(ds.slice(0, 10).map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      expect(ds[24]?.policies[1]?.remaining).toBe(20);
      await limiter.close();
    });

    it("node-redis 5: a turn past 128 consumes, sent in two writes, keeps call order; a refund after it comes after them", async () => {
      const limiter = new RateLimiter({
        policy: { capacity: 250, refillRate: 1, interval: 60_000 },
        store: new RedisStore({ client: node5, prefix: prefix(), timeout: 2000 }),
        cacheDenials: false,
      });
      const made = Array.from({ length: 300 }, () => limiter.consume("same"));
      const refunded = limiter.refund("same");
      const ds = await Promise.all(made);
      expect(ds.map((d) => d.allowed)).toEqual(Array.from({ length: 300 }, (_, i) => i < 250));
      expect(ds.slice(0, 250).map((d) => d.remaining)).toEqual(
        Array.from({ length: 250 }, (_, i) => 249 - i),
      );
      expect((await refunded).applied).toBe(true);
      expect((await limiter.peek("same")).remaining).toBe(1);
      await limiter.close();
    });

    it("a refund made in the same turn reaches Redis after the consume it refunds", async () => {
      const store = new RedisStore({ client: ioredis, prefix: prefix(), timeout: 2000 });
      const limiter = new RateLimiter({ policy, store });
      for (let i = 0; i < 9; i++) await limiter.consume("r");
      // The consume waits for the end of the turn; the refund is sent at once.
      const spent = limiter.consume("r", { cost: 1 });
      const refunded = limiter.refund("r");
      expect(await spent).toMatchObject({ allowed: true, remaining: 0 });
      await refunded;
      expect((await limiter.peek("r")).remaining).toBe(1);
      await limiter.close();
    });

    for (const [name, client] of [
      ["ioredis", () => ioredis],
      ["node-redis 5", () => node5],
    ] as const) {
      it(`${name}: a consume Redis refuses in a batch fails alone`, async () => {
        const p = prefix();
        const store = new RedisStore({ client: client(), prefix: p, timeout: 2000 });
        await server.cli("hset", `${p}:{bad}:default`, "f", "v");
        const list = new RateLimiter({ policy, store }).policies;
        await server.cli("config", "resetstat");
        // The turn's first two share a call; the third goes alone.
        const replies = await Promise.allSettled([
          store.consume("bad", list, 1, true),
          store.consume("good", list, 1, true),
          store.consume("fine", list, 1, true),
        ]);
        expect(await scriptCalls()).toBe(2);
        expect(replies.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
        expect(String((replies[0] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
        expect((replies[1] as PromiseFulfilledResult<number[]>).value[2]).toBe(9);
        await store.close();
      });
    }

    it("close() sends the consumes already made before it closes", async () => {
      const store = new RedisStore({ client: ioredis, prefix: prefix(), timeout: 2000 });
      const list = new RateLimiter({ policy, store }).policies;
      const pending = store.consume("late", list, 1, true);
      await store.close();
      expect(await pending).toHaveLength(4);
      await expect(store.consume("late", list, 1, true)).rejects.toThrow(/closed/);
    });
  });

  it("keeps keys under 100 bytes and in one slot for hostile identifiers", async () => {
    const p = "abcdefghij0123456789";
    const limiter = new RateLimiter({
      policies: [
        { name: "a".repeat(64), capacity: 5, refillRate: 1, interval: 1000 },
        { name: "b", capacity: 5, refillRate: 1, interval: 1000 },
      ],
      store: new RedisStore({ client: ioredis, prefix: p, timeout: 2000 }),
    });
    const hostile = [
      "x".repeat(1 << 20),
      "\u0000",
      "a\r\nb",
      "}{",
      "{victim}",
      "#fake",
      "",
      "ü".repeat(30),
      "x".repeat(44),
    ];
    for (const id of hostile) await limiter.consume(id);
    // Buckets only: the limiter's heartbeat keeps one more key, <prefix>members.
    const keys = (await server.cli("--scan", "--pattern", `${p}:{*`)).trim().split("\n");
    expect(keys).toHaveLength(hostile.length * 2);
    for (const k of keys) {
      expect(Buffer.byteLength(k)).toBeLessThan(100);
      // Exactly one hash tag, and nothing a client chose can sit outside it.
      expect(k.match(/[{}]/g)).toEqual(["{", "}"]);
    }
    expect(keyId("{victim}")).not.toContain("victim");
    expect(keyId("x".repeat(44))).toBe("x".repeat(44));
    expect(keyId("x".repeat(45))).toMatch(/^#[A-Za-z0-9_-]{27}$/);
  });

  it("validates its options with the option's name", () => {
    expect(() => new RedisStore({} as never)).toThrow(/RedisStore.client/);
    expect(() => new RedisStore({ client: ioredis, prefix: "a{b}" })).toThrow(/RedisStore.prefix/);
    expect(() => new RedisStore({ client: ioredis, prefix: "x".repeat(21) })).toThrow(
      /RedisStore.prefix/,
    );
    expect(() => new RedisStore({ client: ioredis, timeout: 0 })).toThrow(/RedisStore.timeout/);
    expect(() => new RedisStore({ client: {} as never })).toThrow(
      /ioredis, iovalkey or node-redis/,
    );
    expect(() => new RedisStore({ client: ioredis, ttl: 5 } as never)).toThrow(
      /"RedisStore.ttl" is not a RedisStore option/,
    );
    expect(() => new RedisStore({ url: "http://x" })).toThrow(/RedisStore.url/);
  });

  it("opens and closes its own client from a url", async () => {
    const store = new RedisStore({ url: server.url, prefix: prefix(), timeout: 2000 });
    await store.ready();
    const until = Date.now() + 5000;
    while (!store.available() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      store,
    });
    expect(await limiter.consume("u")).toMatchObject({ allowed: true, reason: "store" });
    expect(await limiter.consume("u")).toMatchObject({ allowed: false, reason: "store" });
    expect(await limiter.consume("u")).toMatchObject({ allowed: false, reason: "cached" });
    await limiter.close();
    expect(store.available()).toBe(false);
  });
});

describeRedis("RedisStore against a 3-node Redis Cluster", () => {
  let cluster: RedisCluster;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startCluster();
    client = new Cluster(cluster.nodes, {
      enableOfflineQueue: false,
      redisOptions: { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 },
    });
    await new Promise((r) => client.once("ready", r));
  }, 40_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  storeContract(
    "RedisStore (ioredis Cluster)",
    (now): Store => new RedisStore({ client, prefix: prefix(), now, timeout: 2000 }),
  );

  it("spreads clients over slots and never crosses slots within one", async () => {
    const limiter = new RateLimiter({
      policies: [
        { name: "s", capacity: 2, refillRate: 1, interval: 1000 },
        { name: "h", capacity: 100, refillRate: 100, interval: 3_600_000 },
      ],
      store: new RedisStore({ client, prefix: prefix(), timeout: 2000 }),
    });
    for (let i = 0; i < 50; i++) {
      expect(await limiter.consume(`client-${i}`)).toMatchObject({
        allowed: true,
        reason: "store",
      });
    }
    const sizes = await Promise.all(client.nodes("master").map((n) => n.dbsize()));
    expect(sizes.filter((s) => s > 0).length).toBe(3);
  });
});

describe("RedisStore client types", () => {
  it("accepts every supported client at the type level", () => {
    const types = (
      c: Redis,
      v: Valkey,
      n: ReturnType<typeof createClient>,
      n4: ReturnType<typeof createClient4>,
      cl: Cluster,
    ) => [
      new RedisStore({ client: c }),
      new RedisStore({ client: v }),
      new RedisStore({ client: n }),
      new RedisStore({ client: n4 }),
      new RedisStore({ client: cl }),
    ];
    expect(typeof types).toBe("function");
  });
});
