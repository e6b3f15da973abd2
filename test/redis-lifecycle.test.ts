/**
 * RedisStore's lifecycle against real redis-servers (issue 13): ready()
 * means connected with the scripts loaded, close() rejects later calls with
 * ClosedError, members() counts live instances by Redis TIME, and the
 * eviction policy is read at connect. Multi-second cases (a killed or paused
 * server, a child process that must exit) are in test/chaos/redis-lifecycle.chaos.ts.
 */
import { createServer, type Server as NetServer } from "node:net";
import { Cluster, Redis } from "ioredis";
import { Redis as Valkey } from "iovalkey";
import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { RateLimiter, RedisStore } from "../src/index.js";
import { adapt } from "../src/stores/redis/clients.js";
import { MEMBERS, MEMBERS_SHA } from "../src/stores/redis/members.js";
import {
  describeRedis,
  FAIL_FAST,
  freePort,
  HOST,
  type RedisCluster,
  type RedisServer,
  startCluster,
  startRedis,
} from "./helpers/redis-server.js";

let prefixes = 0;
const prefix = () => `life${++prefixes}`;

/** Floodgate's process warnings emitted while `fn` runs (and the ticks after it). */
async function warningsDuring(fn: () => Promise<void>): Promise<{ code: string; text: string }[]> {
  const seen: { code: string; text: string }[] = [];
  const listen = (w: Error & { code?: string }) => {
    if (w.name === "FloodgateWarning") seen.push({ code: String(w.code), text: w.message });
  };
  process.on("warning", listen);
  try {
    await fn();
    // process.emitWarning delivers on a later tick.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off("warning", listen);
  }
  return seen;
}

describeRedis("RedisStore lifecycle against redis-server", () => {
  let server: RedisServer;
  const stores: RedisStore[] = [];
  const track = (s: RedisStore) => {
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("decides from Redis from the first call after ready(): 12 on capacity 10 let exactly 10 through", async () => {
    for (let run = 0; run < 5; run++) {
      const store = track(new RedisStore({ url: server.url, prefix: prefix() }));
      await store.ready();
      const limiter = new RateLimiter({
        policy: { capacity: 10, refillRate: 1, interval: 60_000 },
        store,
      });
      const decisions = await Promise.all(Array.from({ length: 12 }, () => limiter.consume("k")));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      expect(decisions.map((d) => d.reason)).toEqual(Array(12).fill("store"));
    }
    console.log(
      "guarantee: RedisStore({ url }).ready(), then 12 concurrent consumes on capacity 10: exactly 10 allowed, 12 of 12 decided by Redis, in each of 5 runs",
    );
  });

  it("ready() on a client passed before it connected waits for it (node-redis 5 and 4, ioredis lazyConnect)", async () => {
    const node5 = createClient({ url: server.url, disableOfflineQueue: true });
    const node4 = createClient4({ url: server.url, disableOfflineQueue: true });
    const lazy = new Redis(server.port, HOST, { ...FAIL_FAST, lazyConnect: true });
    try {
      for (const [client, connect] of [
        [node5, () => node5.connect()],
        [node4, () => node4.connect()],
        [lazy, () => lazy.connect()],
      ] as const) {
        const store = track(new RedisStore({ client, prefix: prefix() }));
        let ready = false;
        const waiting = store.ready().then(() => {
          ready = true;
        });
        await new Promise((r) => setTimeout(r, 50));
        expect(ready).toBe(false);
        expect(store.available()).toBe(false);
        await connect();
        await waiting;
        expect(store.available()).toBe(true);
        const limiter = new RateLimiter({
          policy: { capacity: 1, refillRate: 1, interval: 60_000 },
          store,
        });
        expect(await limiter.consume("a")).toMatchObject({ allowed: true, reason: "store" });
      }
    } finally {
      await node5.quit().catch(() => {});
      await node4.quit().catch(() => {});
      lazy.disconnect();
    }
  });

  it("ready() loads both scripts, so the first EVALSHA finds them", async () => {
    await server.cli("script", "flush");
    const store = track(new RedisStore({ url: server.url, prefix: prefix() }));
    await store.ready();
    const exists = (await server.cli("script", "exists", MEMBERS_SHA)).trim();
    expect(exists).toBe("1");
  });

  it("ready() on an unreachable url rejects naming the server and the last error", async () => {
    const port = await freePort();
    const store = track(new RedisStore({ url: `redis://${HOST}:${port}`, readyTimeout: 300 }));
    const error = await store.ready().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_FLOODGATE_STORE_UNAVAILABLE" });
    expect(String((error as Error).message)).toMatch(
      new RegExp(
        `Redis at redis://${HOST}:${port} is not connected; ready\\(\\) gave up after 300 ms \\(last error: .*ECONNREFUSED`,
      ),
    );
    // A password in the url never reaches a message.
    const secret = track(
      new RedisStore({ url: `redis://user:hunter2@${HOST}:${port}`, readyTimeout: 50 }),
    );
    expect(String(await secret.ready().catch((e: unknown) => e))).not.toContain("hunter2");
  });

  it("ready() waiting on a server that accepts but never answers rejects, and close() answers it at once", async () => {
    const mute: NetServer = createServer(() => {});
    await new Promise<void>((r) => mute.listen(0, HOST, r));
    const port = (mute.address() as { port: number }).port;
    try {
      const store = new RedisStore({ url: `redis://${HOST}:${port}`, readyTimeout: 200 });
      await expect(store.ready()).rejects.toMatchObject({
        code: "ERR_FLOODGATE_STORE_UNAVAILABLE",
      });
      const waiting = store.ready().catch((e: unknown) => e);
      await store.close();
      expect(await waiting).toMatchObject({ code: "ERR_FLOODGATE_CLOSED" });
    } finally {
      mute.close();
    }
  });

  it("after close(), consume, reset, members and ready reject with ClosedError; a client you passed stays open", async () => {
    const client = new Redis(server.port, HOST, FAIL_FAST);
    await new Promise((r) => client.once("ready", r));
    try {
      const owned = new RedisStore({ url: server.url, prefix: prefix() });
      const yours = new RedisStore({ client, prefix: prefix() });
      await Promise.all([owned.ready(), yours.ready()]);
      const { policies: policy } = new RateLimiter({
        policy: { capacity: 1, refillRate: 1, interval: 1000 },
      });
      for (const store of [owned, yours]) {
        await store.close();
        await store.close();
        expect(store.available()).toBe(false);
        for (const call of [
          () => store.consume("k", policy, 1, true),
          () => store.reset("k", policy),
          () => store.members("i", 1000),
          () => store.ready(),
        ]) {
          await expect(call()).rejects.toMatchObject({
            name: "ClosedError",
            code: "ERR_FLOODGATE_CLOSED",
          });
        }
      }
      expect(client.status).toBe("ready");
      expect(await client.ping()).toBe("PONG");
    } finally {
      client.disconnect();
    }
  });

  it("members() counts live instances by Redis TIME, drops expired ones and expires its key", async () => {
    const p = prefix();
    const a = track(new RedisStore({ url: server.url, prefix: p }));
    const b = track(new RedisStore({ url: server.url, prefix: p, timeout: 2000 }));
    await Promise.all([a.ready(), b.ready()]);
    expect(await b.members("a", 10_000)).toBe(1);
    expect(await b.members("a", 10_000)).toBe(1);
    expect(await b.members("b", 20_000)).toBe(2);
    // An instance whose mark has run out no longer counts.
    await server.cli("zadd", `${p}:members`, "1", "gone");
    expect(await b.members("a", 10_000)).toBe(2);
    expect((await server.cli("zscore", `${p}:members`, "gone")).trim()).toBe("");
    // The set lives as long as its latest mark, by Redis's clock.
    const time = (await server.cli("time")).trim().split("\n").map(Number);
    const now = (time[0] as number) * 1000 + Math.floor((time[1] as number) / 1000);
    const score = Number(await server.cli("zscore", `${p}:members`, "b"));
    expect(Math.abs(score - 20_000 - now)).toBeLessThan(5000);
    const pttl = Number(await server.cli("pttl", `${p}:members`));
    expect(pttl).toBeGreaterThan(10_000);
    expect(pttl).toBeLessThanOrEqual(20_000);
    // Hostile ids are kept as client ids are: bounded, no braces.
    expect(await b.members(`{${"x".repeat(10_000)}`, 10_000)).toBe(3);
    const names = (await server.cli("zrange", `${p}:members`, "0", "-1")).trim().split("\n");
    expect(Math.max(...names.map((n) => n.length))).toBeLessThanOrEqual(44);
    await expect(b.members("a", 0)).rejects.toThrow(RangeError);
    await expect(b.members("a", 1.5)).rejects.toThrow(RangeError);
  });

  it("members() reloads its script after SCRIPT FLUSH and rejects when Redis is paused past the timeout", async () => {
    const store = track(new RedisStore({ url: server.url, prefix: prefix(), timeout: 50 }));
    await store.ready();
    await server.cli("script", "flush");
    expect(await store.members("x", 1000)).toBe(1);
    expect((await server.cli("script", "exists", MEMBERS_SHA)).trim()).toBe("1");
    await server.cli("client", "pause", "300");
    await expect(store.members("x", 1000)).rejects.toMatchObject({
      code: "ERR_FLOODGATE_STORE_TIMEOUT",
    });
    expect(MEMBERS).toContain("ZREMRANGEBYSCORE");
  });

  it("close() answers a members() call still waiting on a paused server with ClosedError", async () => {
    const client = new Redis(server.port, HOST, FAIL_FAST);
    await new Promise((r) => client.once("ready", r));
    try {
      const store = new RedisStore({ client, prefix: prefix(), timeout: 60_000 });
      await store.ready();
      await server.cli("client", "pause", "300");
      const waiting = store.members("x", 1000).catch((e: unknown) => e);
      await store.close();
      expect(await waiting).toMatchObject({ code: "ERR_FLOODGATE_CLOSED" });
    } finally {
      client.disconnect();
    }
  });

  it("cuts node-redis 5 and 4 clients at once (the url path's disconnect when node-redis is the library)", async () => {
    const node5 = createClient({ url: server.url, disableOfflineQueue: true });
    const node4 = createClient4({ url: server.url, disableOfflineQueue: true });
    await Promise.all([node5.connect(), node4.connect()]);
    for (const client of [node5, node4]) {
      const conn = adapt(client);
      expect(conn?.servers().map((s) => s.name)).toEqual([server.url]);
      conn?.disconnect();
      await new Promise((r) => setImmediate(r));
      expect(client.isOpen).toBe(false);
    }
  });

  it("members() works through iovalkey, node-redis 5 and 4", async () => {
    const p = prefix();
    const valkey = new Valkey(server.port, HOST, FAIL_FAST);
    const node5 = createClient({ url: server.url, disableOfflineQueue: true });
    const node4 = createClient4({ url: server.url, disableOfflineQueue: true });
    await Promise.all([
      node5.connect(),
      node4.connect(),
      new Promise((r) => valkey.once("ready", r)),
    ]);
    try {
      const counts: number[] = [];
      for (const [i, client] of [valkey, node5, node4].entries()) {
        const store = track(new RedisStore({ client, prefix: p, timeout: 2000 }));
        await store.ready();
        counts.push(await store.members(`i${i}`, 10_000));
      }
      expect(counts).toEqual([1, 2, 3]);
    } finally {
      valkey.disconnect();
      await node5.quit().catch(() => {});
      await node4.quit().catch(() => {});
    }
  });
});

describeRedis("RedisStore reads maxmemory-policy at connect", () => {
  const servers: RedisServer[] = [];
  const start = async (extra: string[]) => {
    const s = await startRedis(extra);
    servers.push(s);
    return s;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("warns FLOODGATE_REDIS_EVICTION once under volatile-lru (floodgate's keys have TTLs) and allkeys-lru", async () => {
    for (const policy of ["volatile-lru", "allkeys-lru"]) {
      const server = await start(["--maxmemory-policy", policy]);
      const store = new RedisStore({ url: server.url });
      const seen = await warningsDuring(() => store.ready());
      expect(seen.map((w) => w.code)).toEqual(["FLOODGATE_REDIS_EVICTION"]);
      expect(seen[0]?.text).toContain(`${server.host}:${server.port} (${policy})`);
      expect(seen[0]?.text).toContain("CONFIG SET maxmemory-policy noeviction");
      expect(seen[0]?.text).toContain("warnings: { FLOODGATE_REDIS_EVICTION: false }");
      await store.close();
    }
  });

  it("says nothing under noeviction, or when switched off, for a url or your client", async () => {
    const quiet = await start(["--maxmemory-policy", "noeviction"]);
    const loud = await start(["--maxmemory-policy", "volatile-ttl"]);
    const client = new Redis(loud.port, HOST, FAIL_FAST);
    try {
      const seen = await warningsDuring(async () => {
        const a = new RedisStore({ url: quiet.url });
        const b = new RedisStore({ url: loud.url, warnings: false });
        const c = new RedisStore({ client, warnings: { FLOODGATE_REDIS_EVICTION: false } });
        await Promise.all([a.ready(), b.ready(), c.ready()]);
        await Promise.all([a.close(), b.close(), c.close()]);
      });
      expect(seen).toEqual([]);
      const yours = await warningsDuring(async () => {
        const d = new RedisStore({ client });
        await d.ready();
        await d.close();
      });
      expect(yours.map((w) => w.code)).toEqual(["FLOODGATE_REDIS_EVICTION"]);
    } finally {
      client.disconnect();
    }
    expect(() => new RedisStore({ url: quiet.url, warnings: { NOPE: false } as never })).toThrow(
      /"RedisStore.warnings.NOPE"/,
    );
  });

  it("where CONFIG is refused, warns FLOODGATE_REDIS_CONFIG_UNREADABLE once and still decides", async () => {
    const server = await start(["--rename-command", "CONFIG", ""]);
    const store = new RedisStore({ url: server.url });
    const seen = await warningsDuring(() => store.ready());
    expect(seen.map((w) => w.code)).toEqual(["FLOODGATE_REDIS_CONFIG_UNREADABLE"]);
    expect(seen[0]?.text).toMatch(/unknown command/i);
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 60_000 },
      store,
    });
    expect(await limiter.consume("a")).toMatchObject({ allowed: true, reason: "store" });
    await store.close();
  });
});

describeRedis("RedisStore lifecycle against a 3-node Redis Cluster", () => {
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

  it("reads maxmemory-policy from every master and names the ones that evict", async () => {
    const [first, second] = client.nodes("master");
    await first?.config("SET", "maxmemory-policy", "volatile-lfu");
    try {
      const store = new RedisStore({ client });
      const seen = await warningsDuring(() => store.ready());
      expect(seen.map((w) => w.code)).toEqual(["FLOODGATE_REDIS_EVICTION"]);
      const text = seen[0]?.text ?? "";
      expect(text).toContain(`:${first?.options.port} (volatile-lfu)`);
      expect(text).not.toContain(`:${second?.options.port} (`);
      await store.close();
    } finally {
      await first?.config("SET", "maxmemory-policy", "noeviction");
    }
  });

  it("loads the scripts on every master and counts members on one key", async () => {
    for (const n of client.nodes("master")) await n.script("FLUSH");
    const p = prefix();
    const a = new RedisStore({ client, prefix: p, timeout: 2000 });
    const b = new RedisStore({ client, prefix: p, timeout: 2000 });
    await Promise.all([a.ready(), b.ready()]);
    for (const n of client.nodes("master")) {
      expect(await n.script("EXISTS", MEMBERS_SHA)).toEqual([1]);
    }
    expect(await a.members("a", 10_000)).toBe(1);
    expect(await b.members("b", 10_000)).toBe(2);
    await Promise.all([a.close(), b.close()]);
    expect(client.status).toBe("ready");
  });
});
