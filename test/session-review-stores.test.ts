/**
 * Review of the store layer's latest changes: the guard's change counter and
 * the deadline of resets, refunds, settles and blocks (`within`), and a
 * plain client on a Redis Cluster node that may not run CLUSTER INFO.
 * Redis cases run against real redis-server processes.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RateLimiter, RedisStore } from "../src/index.js";
import { type HandCall, handGuard, list, outcome, TIMEOUT } from "./helpers/guard-harness.js";
import {
  describeRedis,
  FAIL_FAST,
  type RedisServer,
  startOneMasterCluster,
} from "./helpers/redis-server.js";

describe("Guard.within: a deadline the loop ran late for twice", () => {
  // A decision's deadline the loop is late for twice counts twice in lateLoop
  // (guard.test.ts: "late twice"): both deadlines were missed by this
  // process's loop. within (reset, refund, settle, block) counted the first only.
  it("counts both in lateLoop, as a decision's deadline does, and leaves nothing behind", async () => {
    const { guard, timers } = handGuard();
    const done = outcome(guard.reset("k", list));
    timers.stall(5 * TIMEOUT);
    timers.stall(5 * TIMEOUT);
    expect(await done).toBe("StoreTimeoutError");
    expect(guard.stats()).toMatchObject({ lateLoop: 2, storeTimeouts: 0 });
    expect(timers.pending).toBe(0);
  });
});

describe("Guard: the change counter's floor after the map of changes is cleared", () => {
  const NOW = 1_000_000;
  // MAX_CHANGED keys changed: the next change clears the map. A call sent
  // after the last change the map let go, for a key never changed, is no
  // older than any change it forgot: its denial is fresh and is cached.
  it("a call sent after every change the map let go is not treated as stale", async () => {
    const { guard, store } = handGuard();
    for (let i = 0; i < 10_000; i++) guard.forget(`changed-${i}`);
    const call = guard.decide("x", 1, true, list);
    guard.forget("another");
    (store.calls[0] as HandCall).resolve([NOW, 0, 0, NOW - 1000 + 60_000]);
    expect(await call).toMatchObject({ allowed: false, reason: "store" });
    const next = guard.decide("x", 1, true, list);
    expect(next).not.toBeInstanceOf(Promise);
    expect(next).toMatchObject({ allowed: false, reason: "cached" });
    expect(store.calls.length).toBe(1);
  });

  it("a call sent before a change the map let go is still treated as stale", async () => {
    const { guard, store } = handGuard();
    for (let i = 0; i < 9_999; i++) guard.forget(`changed-${i}`);
    const call = guard.decide("x", 1, true, list);
    // The 10,000th change is to x itself, then the map is cleared by the next one.
    guard.forget("x");
    guard.forget("another");
    (store.calls[0] as HandCall).resolve([NOW, 0, 0, NOW - 1000 + 60_000]);
    expect(await call).toMatchObject({ allowed: false, reason: "store" });
    guard.decide("x", 1, true, list);
    expect(store.calls.length).toBe(2);
    expect(guard.stats().cached).toBe(0);
  });
});

describeRedis("a plain client on a Cluster node that may not run CLUSTER INFO", () => {
  let one: RedisServer;

  beforeAll(async () => {
    // A Cluster of one master serving every slot (a one-shard managed
    // Cluster), whose application user may not run CLUSTER (an ACL, as
    // managed services set, or a renamed command).
    one = await startOneMasterCluster();
    await one.cli("acl", "setuser", "app", "on", ">secret", "~*", "&*", "+@all", "-cluster");
  }, 40_000);

  afterAll(async () => {
    await one?.stop();
  });

  it("concurrent clients are decided by Redis (CROSSSLOT turns batching off), none by the fallback", async () => {
    const client = new Redis(one.port, one.host, {
      ...FAIL_FAST,
      username: "app",
      password: "secret",
    });
    client.on("error", () => {});
    await new Promise((r) => client.once("ready", r));
    expect(await client.call("cluster", "info").catch((e: Error) => e.message)).toMatch(/NOPERM/);
    let prefixes = 0;
    for (const now of [undefined, () => 1e12]) {
      const prefix = `acl${++prefixes}`;
      const store = new RedisStore({ client, prefix, timeout: 2000, now });
      await store.ready();
      const limiter = new RateLimiter({
        policies: [
          { name: "s", capacity: 5, refillRate: 1, interval: 60_000 },
          { name: "h", capacity: 100, refillRate: 1, interval: 3_600_000 },
        ],
        store,
        instances: 1,
      });
      // Another policy list in the same batches: each consume keeps its own plan.
      const other = new RateLimiter({
        policy: { name: "o", capacity: 3, refillRate: 1, interval: 60_000 },
        store,
        instances: 1,
      });
      for (let round = 0; round < 2; round++) {
        const keys = Array.from({ length: 20 }, (_, i) => `client-${i}`);
        const [decisions, others, peeks] = await Promise.all([
          Promise.all(keys.map((k) => limiter.consume(k))),
          Promise.all(keys.map((k) => other.consume(k, { cost: 2 - round }))),
          Promise.all(keys.map((k) => other.peek(`p-${k}`))),
        ]);
        expect(decisions.map((d) => d.reason)).toEqual(keys.map(() => "store"));
        expect(decisions.map((d) => d.remaining)).toEqual(keys.map(() => 4 - round));
        expect(others.map((d) => [d.reason, d.remaining])).toEqual(
          keys.map(() => ["store", 1 - round]),
        );
        expect(peeks.map((d) => [d.reason, d.remaining])).toEqual(keys.map(() => ["store", 3]));
      }
      expect(limiter.stats()).toMatchObject({ storeErrors: 0, fallbacks: 0 });
      expect(other.stats()).toMatchObject({ storeErrors: 0, fallbacks: 0 });
      const stored = await client.keys(`${prefix}:*`);
      expect(stored.length).toBe(60);
      await limiter.close();
      await other.close();
    }
    client.disconnect();
  });
});

describe("RedisStore: the connection lost while CLUSTER INFO is asked", () => {
  // A plain client on one node of a 3-master Cluster: ready() must name the
  // misfit. The reply to CLUSTER INFO lost to a dropped connection was taken
  // for "no Cluster", the check never ran again, and ready() resolved.
  it("asks again once connected, and ready() then rejects with the ConfigError", async () => {
    let clusterAsked = 0;
    const client = {
      status: "ready",
      evalsha: () => Promise.reject(new Error("NOSCRIPT No matching script")),
      eval: () => Promise.reject(new Error("not in this test")),
      del: () => Promise.resolve(0),
      quit: () => Promise.resolve("OK"),
      call(...args: string[]): Promise<unknown> {
        if (args[0] === "CLUSTER") {
          if (clusterAsked++ === 0) {
            client.status = "reconnecting";
            setTimeout(() => {
              client.status = "ready";
            }, 20);
            return Promise.reject(new Error("Connection is closed."));
          }
          return Promise.resolve("cluster_state:ok\r\ncluster_size:3\r\n");
        }
        if (args[0] === "CONFIG") return Promise.resolve(["maxmemory-policy", "noeviction"]);
        return Promise.resolve("0123456789abcdef0123456789abcdef01234567");
      },
    };
    const store = new RedisStore({ client, readyTimeout: 3000, warnings: false });
    await expect(store.ready()).rejects.toThrow(/one node of 3 masters/);
    expect(clusterAsked).toBe(2);
    await store.close();
  });
});
