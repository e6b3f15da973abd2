/**
 * RedisStore against hostile data, careless client options and a Redis
 * Cluster in trouble, always on real redis-server processes (never a mock):
 * a key of another type under one of several policies, a client that
 * answers numbers as text, a plain client pointed at a Cluster node.
 */
import { Cluster, Redis } from "ioredis";
import { createClient } from "redis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigError } from "../src/core/errors.js";
import { RateLimiter, RedisStore } from "../src/index.js";
import { IOREDIS_CLUSTER_OPTIONS, type RedisClientLike } from "../src/stores/redis/clients.js";
import { type LatencyProxy, startProxy } from "./helpers/latency-proxy.js";
import {
  describeRedis,
  FAIL_FAST,
  type RedisCluster,
  type RedisServer,
  startCluster,
  startOneMasterCluster,
  startRedis,
} from "./helpers/redis-server.js";

let prefixes = 0;
const prefix = () => `ch${++prefixes}`;

const TWO = [
  { name: "s", capacity: 5, refillRate: 1, interval: 60_000 },
  { name: "h", capacity: 100, refillRate: 1, interval: 3_600_000 },
];

describeRedis("RedisStore against hostile data on one redis-server", () => {
  let server: RedisServer;
  let admin: Redis;
  let ioredis: Redis;
  let node5: ReturnType<typeof createClient>;

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.port, server.host, FAIL_FAST);
    admin.on("error", () => {});
    ioredis = new Redis(server.port, server.host, FAIL_FAST);
    ioredis.on("error", () => {});
    node5 = createClient({ url: server.url, disableOfflineQueue: true });
    node5.on("error", () => {});
    await Promise.all([
      node5.connect(),
      new Promise((r) => admin.once("ready", r)),
      new Promise((r) => ioredis.once("ready", r)),
    ]);
  }, 20_000);

  afterAll(async () => {
    admin?.disconnect();
    ioredis?.disconnect();
    await node5?.quit().catch(() => {});
    await server?.stop();
  });

  const clients: [string, () => RedisClientLike][] = [
    ["ioredis", () => ioredis],
    ["node-redis 5", () => node5],
  ];

  for (const [name, client] of clients) {
    // With several policies the script reads its buckets with MGET, which
    // answers nil for a key of another type; the bucket written then replaced
    // another program's list (consume), or DEL removed it (a refund). Now
    // such a call fails as WRONGTYPE, as one policy's GET always did, and
    // writes nothing: neither that key nor the client's other buckets.
    it(`${name}: several policies never overwrite or delete a key of another type`, async () => {
      const p = prefix();
      const store = new RedisStore({ client: client(), prefix: p, timeout: 2000 });
      const limiter = new RateLimiter({ policies: TWO, store, instances: 1 });
      const errors: unknown[] = [];
      limiter.events.on("store-error", (error) => errors.push(error));
      // The foreign key under the second policy, and under the first.
      await admin.rpush(`${p}:{bob}:h`, "precious");
      await admin.rpush(`${p}:{eve}:s`, "precious");
      for (const key of ["bob", "eve"]) {
        expect(await limiter.consume(key)).toMatchObject({ reason: "insurance" });
        // In a batch: the turn's first two share one script call; the other stands.
        const [bad, good] = await Promise.all([limiter.consume(key), limiter.consume(`ok-${key}`)]);
        expect(bad?.reason).toBe("insurance");
        expect(good).toMatchObject({ reason: "store", remaining: 4 });
        // A refund to a bucket that is missing (full) changes nothing: it deletes nothing.
        await limiter.refund(key);
        await expect(limiter.block(key, 1000)).rejects.toThrow(/WRONGTYPE/);
      }
      for (const key of [`${p}:{bob}:h`, `${p}:{eve}:s`]) {
        expect(await admin.lrange(key, 0, -1)).toEqual(["precious"]);
      }
      // Nothing was charged under the other policy either: all or nothing.
      expect(await admin.exists(`${p}:{bob}:s`, `${p}:{eve}:h`)).toBe(0);
      expect(errors.length).toBeGreaterThanOrEqual(4);
      expect(errors.every((e) => store.keyError(e))).toBe(true);
      // A bucket that exists beside the foreign key is not charged either.
      expect(await limiter.consume("carol")).toMatchObject({ reason: "store" });
      await admin.del(`${p}:{carol}:h`);
      await admin.rpush(`${p}:{carol}:h`, "precious");
      const before = await admin.getBuffer(`${p}:{carol}:s`);
      expect(await limiter.consume("carol")).toMatchObject({ reason: "insurance" });
      expect(await admin.getBuffer(`${p}:{carol}:s`)).toEqual(before);
      expect(await admin.lrange(`${p}:{carol}:h`, 0, -1)).toEqual(["precious"]);
      await limiter.close();
    });
  }

  // ioredis's `stringNumbers: true` (and node-redis type mappings) answer
  // integers as text. The store rejected every such reply as unexpected, so
  // every decision came from the fallback and `members` never counted.
  it("a client that answers numbers as text (ioredis stringNumbers) still decides on Redis", async () => {
    const text = new Redis(server.port, server.host, { ...FAIL_FAST, stringNumbers: true });
    text.on("error", () => {});
    await new Promise((r) => text.once("ready", r));
    const store = new RedisStore({
      client: text,
      prefix: prefix(),
      timeout: 2000,
      now: () => 1e12,
    });
    const limiter = new RateLimiter({ policies: TWO, store, instances: 1 });
    expect(await limiter.consume("a")).toMatchObject({
      allowed: true,
      remaining: 4,
      reason: "store",
    });
    expect(await limiter.consume("a", { cost: 4 })).toMatchObject({
      remaining: 0,
      reason: "store",
    });
    const denied = await limiter.consume("a");
    expect(denied).toMatchObject({ allowed: false, reason: "store", retryAfter: 60_000 });
    expect(await store.members("one", 10_000)).toBe(1);
    expect(await store.members("two", 10_000)).toBe(2);
    expect(limiter.stats()).toMatchObject({ storeErrors: 0, fallbacks: 0 });
    await limiter.close();
    text.disconnect();
  });
});

describeRedis("RedisStore with a plain client on a Redis Cluster node", () => {
  let one: RedisServer;
  let three: RedisCluster;

  beforeAll(async () => {
    // A Cluster of one master serving every slot (as a one-shard managed Cluster).
    one = await startOneMasterCluster();
    three = await startCluster();
  }, 40_000);

  afterAll(async () => {
    await one?.stop();
    await three?.stop();
  });

  // The store shared one script call among the consumes of a turn, whatever
  // their clients: a Cluster node refuses keys of several slots (CROSSSLOT),
  // so every concurrent decision fell back although this node serves them all.
  it("a one-master Cluster: concurrent clients are decided by Redis, never CROSSSLOT", async () => {
    for (const store of [
      new RedisStore({ url: one.url, prefix: prefix(), timeout: 2000, now: () => 1e12 }),
      new RedisStore({ url: one.url.replace(/^redis/, "valkey"), prefix: prefix(), timeout: 2000 }),
    ]) {
      await store.ready();
      const limiter = new RateLimiter({ policies: TWO, store, instances: 1 });
      const keys = Array.from({ length: 20 }, (_, i) => `client-${i}`);
      const decisions = await Promise.all(keys.map((k) => limiter.consume(k)));
      expect(decisions.map((d) => d.reason)).toEqual(keys.map(() => "store"));
      expect(decisions.map((d) => d.remaining)).toEqual(keys.map(() => 4));
      expect(limiter.stats()).toMatchObject({ storeErrors: 0, fallbacks: 0 });
      await limiter.close();
    }
  });

  // A REDIS_URL naming one node of a multi-node Cluster: the other nodes'
  // slots answer MOVED, so two decisions in three came from the fallback,
  // and nothing said why. ready() now says so, and how to fix it.
  it("one node of a 3-master Cluster: ready() rejects with a ConfigError naming the fix", async () => {
    const node = three.nodes[0] as { host: string; port: number };
    const url = `redis://${node.host}:${node.port}`;
    const store = new RedisStore({ url, prefix: prefix(), timeout: 2000 });
    const error = await store.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toMatch(/one node of 3 masters.*MOVED.*Cluster/);
    await expect(store.ready()).rejects.toBe(error);
    await store.close();
    const client = new Redis(node.port, node.host, FAIL_FAST);
    client.on("error", () => {});
    await new Promise((r) => client.once("ready", r));
    const mine = new RedisStore({ client, prefix: prefix(), timeout: 2000 });
    await expect(mine.ready()).rejects.toThrow(/RedisStore\.client.*one node of 3 masters/);
    await mine.close();
    client.disconnect();
  });
});

describeRedis(
  "the ioredis Cluster options floodgate uses (the gateway's redis-cluster://, the docs' advice)",
  () => {
    let three: RedisCluster;
    const proxies: LatencyProxy[] = [];

    beforeAll(async () => {
      three = await startCluster();
      for (const node of three.nodes) proxies.push(await startProxy(node.port));
    }, 40_000);

    afterAll(async () => {
      await Promise.all(proxies.map((p) => p.close()));
      await three?.stop();
    });

    // A node's connection closes after the script ran but before its reply
    // came: by default an ioredis Cluster re-sends the command 100 ms later
    // (retryDelayOnFailover), and the client is charged twice.
    it("never charge a consume twice when a node's connection drops before the reply", async () => {
      // Every node reached through its proxy, so its replies can be held back.
      const natMap = Object.fromEntries(
        three.nodes.map((n, i) => [
          `${n.host}:${n.port}`,
          { host: n.host, port: (proxies[i] as LatencyProxy).port },
        ]),
      );
      const first = three.nodes[0] as { host: string; port: number };
      const client = new Cluster([{ host: first.host, port: (proxies[0] as LatencyProxy).port }], {
        ...IOREDIS_CLUSTER_OPTIONS,
        natMap,
      });
      client.on("error", () => {});
      await new Promise((r) => client.once("ready", r));
      const store = new RedisStore({ client, prefix: prefix(), timeout: 100 });
      await store.ready();
      const limiter = new RateLimiter({
        policy: { name: "s", capacity: 10, refillRate: 1, interval: "1h" },
        store,
        instances: 1,
        cacheDenials: false,
      });
      expect((await limiter.consume("victim")).remaining).toBe(9);
      // The node that owns the victim's slot, found by asking which proxy carries it.
      const owner = await Promise.all(
        three.nodes.map(async (n) => {
          const node = new Redis(n.port, n.host, FAIL_FAST);
          await new Promise((r) => node.once("ready", r));
          const keys = await node.keys("*victim*");
          node.disconnect();
          return keys.length > 0;
        }),
      );
      const proxy = proxies[owner.indexOf(true)] as LatencyProxy;
      await proxy.setDelay(5000);
      const late = await limiter.consume("victim");
      expect(late.reason).toBe("insurance");
      await proxy.setDelay(0);
      await proxy.dropAll();
      // Past ioredis's default re-send (100 ms after the drop) and its reconnect.
      await new Promise((r) => setTimeout(r, 600));
      const until = Date.now() + 5000;
      let now = await limiter.peek("victim");
      while (now.reason !== "store" && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        now = await limiter.peek("victim");
      }
      // The script ran once for the second consume (it reached Redis): 8, never 7.
      expect(now).toMatchObject({ reason: "store", remaining: 8 });
      await limiter.close();
      client.disconnect();
    });
  },
);
