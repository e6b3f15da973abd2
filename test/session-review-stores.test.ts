/**
 * Review of the store layer's latest changes: the guard's change counter and
 * the deadline of resets, refunds, settles and blocks (`within`), and a
 * plain client on a Redis Cluster node that may not run CLUSTER INFO.
 * Redis cases run against real redis-server processes.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { policies } from "../src/core/policy.js";
import { LimiterEvents } from "../src/events.js";
import { RateLimiter, RedisStore, type Store } from "../src/index.js";
import { Guard, type GuardTimers } from "../src/stores/guard.js";
import {
  describeRedis,
  FAIL_FAST,
  freePort,
  type RedisServer,
  startRedis,
} from "./helpers/redis-server.js";

const TIMEOUT = 50;

/** ManualTimers is time that moves only when the test says so (as in lifecycle-hostile.test.ts). */
class ManualTimers implements GuardTimers {
  t = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  #soon: (() => void)[] = [];

  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  cancel(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  soon(fn: () => void): void {
    this.#soon.push(fn);
  }
  get pending(): number {
    return this.#timers.size + this.#soon.length;
  }
  /** stall moves time by `ms` with the loop blocked: overdue timers fire late, all at the end. */
  stall(ms: number): void {
    this.t += ms;
    for (;;) {
      let best: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers)
        if (best === undefined || entry[1].at < best[1].at) best = entry;
      if (best === undefined || best[1].at > this.t) break;
      this.#timers.delete(best[0]);
      best[1].fn();
      const soon = this.#soon;
      this.#soon = [];
      for (const fn of soon) fn();
    }
  }
}

interface Pending {
  resolve(reply: number[]): void;
  reject(error: Error): void;
}

/** HandStore answers nothing by itself: the test answers each call by hand. */
class HandStore implements Store {
  readonly timeout = TIMEOUT;
  readonly calls: Pending[] = [];
  readonly resets: Pending[] = [];
  consume(): Promise<number[]> {
    return new Promise((resolve, reject) => this.calls.push({ resolve, reject }));
  }
  reset(): Promise<void> {
    return new Promise((resolve, reject) => this.resets.push({ resolve: () => resolve(), reject }));
  }
}

const list = policies({ capacity: 50, refillRate: 10, interval: 1000 }, "policy");

function setup() {
  const timers = new ManualTimers();
  const store = new HandStore();
  const guard = new Guard({
    store,
    timeout: TIMEOUT,
    clock: () => timers.t,
    onStoreError: "insurance",
    instances: 1,
    cacheDenials: true,
    events: new LimiterEvents(),
    timers,
  });
  return { timers, store, guard };
}

async function outcome<T>(p: Promise<T>): Promise<T | string> {
  return p.then(
    (v) => v,
    (e: unknown) => (e instanceof Error ? e.name : String(e)),
  );
}

describe("Guard.within: a deadline the loop ran late for twice", () => {
  // A decision's deadline the loop is late for twice counts twice in lateLoop
  // (guard.test.ts: "late twice"): both deadlines were missed by this
  // process's loop. within (reset, refund, settle, block) counted the first only.
  it("counts both in lateLoop, as a decision's deadline does, and leaves nothing behind", async () => {
    const { guard, timers } = setup();
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
    const { guard, store } = setup();
    for (let i = 0; i < 10_000; i++) guard.forget(`changed-${i}`);
    const call = guard.decide("x", 1, true, list);
    guard.forget("another");
    (store.calls[0] as Pending).resolve([NOW, 0, 0, NOW - 1000 + 60_000]);
    expect(await call).toMatchObject({ allowed: false, reason: "store" });
    const next = guard.decide("x", 1, true, list);
    expect(next).not.toBeInstanceOf(Promise);
    expect(next).toMatchObject({ allowed: false, reason: "cached" });
    expect(store.calls.length).toBe(1);
  });

  it("a call sent before a change the map let go is still treated as stale", async () => {
    const { guard, store } = setup();
    for (let i = 0; i < 9_999; i++) guard.forget(`changed-${i}`);
    const call = guard.decide("x", 1, true, list);
    // The 10,000th change is to x itself, then the map is cleared by the next one.
    guard.forget("x");
    guard.forget("another");
    (store.calls[0] as Pending).resolve([NOW, 0, 0, NOW - 1000 + 60_000]);
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
    const port = await freePort(true);
    one = await startRedis(
      ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`],
      port,
    );
    await one.cli("cluster", "addslotsrange", "0", "16383");
    const until = Date.now() + 5000;
    while (!(await one.cli("cluster", "info")).includes("cluster_state:ok")) {
      if (Date.now() > until) throw new Error("one-node cluster not ok");
      await new Promise((r) => setTimeout(r, 50));
    }
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
