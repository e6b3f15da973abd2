/**
 * The limiter's lifecycle and its behaviour on an overloaded machine: calls
 * in flight when close() comes, a store whose replies arrive while this
 * process's event loop is blocked, the breaker's probe, timers and promises
 * left behind (checked in child processes that must exit by themselves, with
 * --unhandled-rejections=strict), and a clock module loaded under fake
 * timers. Redis cases run against a real redis-server.
 */
import { spawn } from "node:child_process";
import { setImmediate as nextTurn } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { RateLimiter, RedisStore, type Store, type StoreReply } from "../src/index.js";
import type { Guard } from "../src/stores/guard.js";
import {
  type HandCall,
  handGuard,
  list,
  type ManualTimers,
  outcome,
  settle,
  TIMEOUT,
} from "./helpers/guard-harness.js";
import { describeRedis, FAIL_FAST, type RedisServer, startRedis } from "./helpers/redis-server.js";

/** block keeps this process's event loop busy for `ms`: a GC pause, a starved core. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: no timer, no socket read runs meanwhile
  }
}

/** within races `p` against `ms` of real time: "pending" when it has not settled by then. */
function within<T>(p: Promise<T>, ms: number): Promise<T | string> {
  return Promise.race([
    outcome(p),
    new Promise<string>((r) => setTimeout(() => r("pending"), ms).unref()),
  ]);
}

describe("Guard.within (reset, refund, settle, block): a late event loop is not a store failure", () => {
  it("a deadline the loop ran late for gets one more timeout; the reply then counts", async () => {
    const { guard, timers, store } = handGuard();
    const done = outcome(guard.reset("k", list));
    // The loop was blocked for 5 timeouts: the deadline's timer runs 200 ms after it was due.
    timers.stall(5 * TIMEOUT);
    timers.advance(TIMEOUT - 1);
    (store.resets[0] as HandCall).resolve([]);
    expect(await done).toBeUndefined();
    expect(guard.stats()).toMatchObject({ lateLoop: 1, storeTimeouts: 0 });
    expect(timers.pending).toBe(0);
  });

  it("after the extra timeout on time, it rejects with StoreTimeoutError", async () => {
    const { guard, timers } = handGuard();
    const done = outcome(guard.reset("k", list));
    timers.stall(5 * TIMEOUT);
    timers.advance(TIMEOUT);
    expect(await done).toBe("StoreTimeoutError");
    expect(timers.pending).toBe(0);
  });
});

describe("a reset or refund while a call for the key is in flight", () => {
  const NOW = 1_000_000;
  /** deny answers the call: the bucket empty, its next token 60 s away (by the store's clock). */
  const deny = (call: HandCall) => call.resolve([NOW, 0, 0, NOW - 1000 + 60_000]);

  it("reset: the call's denial, from before the reset, is not cached after it", async () => {
    const { guard, store } = handGuard();
    const before = guard.decide("a", 1, true, list);
    const reset = guard.reset("a", list);
    (store.resets[0] as HandCall).resolve([]);
    await reset;
    deny(store.calls[0] as HandCall);
    expect(await before).toMatchObject({ allowed: false, reason: "store" });
    // The reset came after the store decided that call: the next request must ask the store.
    const next = guard.decide("a", 1, true, list);
    expect(next).toBeInstanceOf(Promise);
    expect(store.calls.length).toBe(2);
    (store.calls[1] as HandCall).resolve([NOW + 5, 1, 49, NOW + 5]);
    expect(await next).toMatchObject({ allowed: true, reason: "store" });
    expect(guard.stats()).toMatchObject({ cached: 0, storeEvictions: 0 });
  });

  it("refund (forget): the call's denial, from before the refund, is not cached after it", async () => {
    const { guard, store } = handGuard();
    const before = guard.decide("a", 1, true, list);
    guard.forget("a");
    deny(store.calls[0] as HandCall);
    await before;
    guard.decide("a", 1, true, list);
    expect(store.calls.length).toBe(2);
    expect(guard.stats().cached).toBe(0);
  });

  it("a refund that fills a throttled bucket is not a bucket the store lost", async () => {
    const { guard, store } = handGuard();
    const first = guard.decide("a", 1, true, list);
    deny(store.calls[0] as HandCall);
    await first;
    // refund(key, { cost: 50 }) reached the store: the bucket is full again.
    guard.forget("a");
    const next = guard.decide("a", 1, true, list);
    (store.calls[1] as HandCall).resolve([NOW + 5, 1, 49, NOW + 5]);
    expect(await next).toMatchObject({ allowed: true, reason: "store" });
    expect(guard.stats().storeEvictions).toBe(0);
  });
});

describe("close() while calls are in flight", () => {
  /** HangingStore answers nothing, ever, within a long timeout. */
  class HangingStore implements Store {
    readonly timeout = 60_000;
    consume(): Promise<StoreReply> {
      return new Promise(() => {});
    }
    reset(): Promise<void> {
      return new Promise(() => {});
    }
    adjust(): Promise<StoreReply> {
      return new Promise(() => {});
    }
    block(): Promise<StoreReply> {
      return new Promise(() => {});
    }
  }

  it("a reset, refund, settle or block waiting for a store with a deadline ends with close(), not a minute later", async () => {
    const limiter = new RateLimiter({
      policy: { capacity: 5, refillRate: 1, interval: 1000 },
      store: new HangingStore(),
      instances: 1,
    });
    const reset = limiter.reset("a");
    const refund = limiter.refund("a");
    const blocked = limiter.block("a", 1000);
    await settle();
    await limiter.close();
    expect(await within(reset, 200)).toBe("ClosedError");
    expect(await within(blocked, 200)).toBe("ClosedError");
    expect(await within(refund, 200)).toMatchObject({ applied: false });
  });
});

/**
 * CHILD is a program as a user writes it, run with --unhandled-rejections=strict:
 * it leaves calls of every kind in flight, closes its limiters, catches every
 * promise it was handed, and then has nothing left to do. It must exit by
 * itself (it never calls process.exit): a timer or socket floodgate left
 * behind keeps it running, an internal rejection nobody handled kills it
 * with code 1. argv: a redis url, or "-" for no Redis.
 */
const CHILD = `
import { RateLimiter, MemoryStore, RedisStore } from "./src/index.ts";
const url = process.argv[1];
const caught = [];
const keep = (p) => { caught.push(p.then(() => "ok", (e) => e?.name ?? String(e))); };
const never = () => new Promise(() => {});
const policy = { capacity: 2, refillRate: 1, interval: 3_600_000 };

// In memory: a head asleep for an hour, one behind it with a maxWait past a timer's range,
// one aborted many times, a reservation settled after close.
const memory = new RateLimiter({ policy });
await memory.consume("k", { cost: 2 });
const controller = new AbortController();
keep(memory.wait("k"));
keep(memory.wait("k", { maxWait: 2 ** 31 + 5 }));
keep(memory.wait("k", { signal: controller.signal, maxWait: 2 ** 40 }));
for (let i = 0; i < 5; i++) controller.abort(new Error("again"));
const reservation = await memory.reserve("r", { cost: 1 });

// A network store (a deadline) that never answers: every kind of call in flight at close.
const hanging = {
  timeout: 30_000,
  consume: never, reset: never, adjust: never, block: never, members: never,
  close() { throw new Error("close threw"); },
};
const network = new RateLimiter({ policy, store: hanging });
keep(network.consume("a"));
keep(network.peek("a"));
keep(network.reset("a"));
keep(network.refund("a"));
keep(network.block("a", 1000));
keep(network.wait("a"));
keep(network.wait("a", { cost: 2 }));

// A store without a deadline whose close never settles.
const plain = new RateLimiter({ policy, store: { consume: never, reset: never, adjust: never, close: never } });
keep(plain.consume("a"));
keep(plain.refund("a"));

const limiters = [memory, network, plain];
let redis;
if (url !== "-") {
  redis = new RateLimiter({ policy, store: new RedisStore({ url, timeout: 50 }) });
  await redis.store.ready();
  await redis.consume("x", { cost: 2 });
  process.stdout.write("ready\\n");
  // The parent kills redis-server now.
  await new Promise((r) => process.stdin.once("data", r));
  process.stdin.pause();
  process.stdin.unref?.();
  keep(redis.consume("x"));
  keep(redis.wait("x"));
  keep(redis.refund("x"));
  keep(redis.reset("y"));
  limiters.push(redis);
}
await new Promise((r) => setTimeout(r, 20));
const closes = limiters.map((l) => l.close().then(() => "closed", (e) => e.message));
keep(reservation.settle(2));
keep(memory.consume("k"));
keep(memory.wait("k"));
keep(network.close());
const results = await Promise.all(caught);
const closed = await Promise.all(closes.map((p) => Promise.race([p, new Promise((r) => setTimeout(() => r("hangs"), 1000))])));
process.stdout.write(JSON.stringify({ results, closed }) + "\\n");
`;

/** runChild runs CHILD and resolves with its exit code, output, and how long it took to exit after its last line. */
function runChild(url: string, onReady?: () => Promise<void>) {
  return new Promise<{ code: number | null; out: string; err: string; lingered: number }>(
    (resolve) => {
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "--unhandled-rejections=strict",
          "--input-type=module",
          "-e",
          CHILD,
          url,
        ],
        { cwd: process.cwd(), stdio: ["pipe", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      let last = 0;
      const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.stdout.on("data", (d: Buffer) => {
        out += d;
        last = performance.now();
        if (d.toString().includes("ready") && onReady) {
          void onReady().then(() => child.stdin.write("go\n"));
        }
      });
      child.stderr.on("data", (d: Buffer) => {
        err += d;
      });
      child.on("exit", (code) => {
        clearTimeout(kill);
        resolve({ code, out, err, lingered: performance.now() - last });
      });
    },
  );
}

describe("a process that closes its limiters exits by itself, with no unhandled rejection", () => {
  it("calls, waits, reserves in flight on memory, a hanging network store, a store whose close throws or never settles", async () => {
    const { code, out, err, lingered } = await runChild("-");
    expect(err).toBe("");
    expect(code).toBe(0);
    const report = JSON.parse(out.trim().split("\n").at(-1) as string);
    // Every call made before close() ends with ClosedError (the refund: not applied), every later one too.
    expect(report.results).toEqual([
      // memory: two waits, the aborted one
      "ClosedError",
      "ClosedError",
      "Error",
      // the hanging network store: consume, peek, reset, refund (not applied), block, two waits
      "ClosedError",
      "ClosedError",
      "ClosedError",
      "ok",
      "ClosedError",
      "ClosedError",
      "ClosedError",
      // the store without a deadline: consume, refund (not applied)
      "ClosedError",
      "ok",
      // after close: a settle that would charge the store, consume, wait
      "ClosedError",
      "ClosedError",
      "ClosedError",
      // close() again on the limiter whose store's close threw: the same rejection
      "Error",
    ]);
    // close() ends the limiter whatever its store's close does: resolves, throws, or never settles.
    expect(report.closed).toEqual(["closed", "close threw", "hangs"]);
    expect(lingered).toBeLessThan(1000);
  }, 20_000);
});

describe("the breaker's probe", () => {
  /** openBreaker times out calls on time until the breaker opens. */
  async function openBreaker(guard: Guard, timers: ManualTimers): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const d = guard.decide("a", 1, true, list);
      timers.advance(TIMEOUT + 1);
      await d;
      timers.advance(60);
    }
    expect(guard.stats().breaker).toBe("open");
  }

  it("a probe reply that arrives after its deadline does not close the breaker (the known leftover: refuted)", async () => {
    const { guard, timers, store } = handGuard();
    await openBreaker(guard, timers);
    timers.advance(1000);
    const probe = guard.decide("a", 1, true, list);
    expect(guard.stats().breaker).toBe("half-open");
    timers.advance(TIMEOUT + 1);
    expect((await probe).reason).toBe("insurance");
    expect(guard.stats().breaker).toBe("open");
    // The probe's reply comes now, late: counted, and no verdict on the store.
    (store.calls.at(-1) as HandCall).resolve([1_000_000, 1, 49, 1_000_000]);
    await settle();
    expect(guard.stats()).toMatchObject({ breaker: "open", lateReplies: 1 });
    const calls = store.calls.length;
    expect((await guard.decide("a", 1, true, list)).reason).toBe("insurance");
    expect(store.calls.length).toBe(calls);
  });
});

describe("the default clock loaded under fake timers", () => {
  it("moves again once real timers are back (a turn's end was scheduled on the fake setImmediate)", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    vi.resetModules();
    try {
      const fresh = await import("../src/clock.js");
      expect(fresh.turnNow()).toBe(1_000_000);
    } finally {
      vi.useRealTimers();
    }
    const fresh = await import("../src/clock.js");
    await nextTurn();
    const before = fresh.turnNow();
    await new Promise((r) => setTimeout(r, 30));
    await nextTurn();
    expect(fresh.turnNow() - before).toBeGreaterThanOrEqual(25);
    vi.resetModules();
  });
});

describeRedis("a real Redis answering while this process's event loop is blocked", () => {
  let server: RedisServer;
  let client: Redis;
  /** Runs CLIENT PAUSE from this process, without a redis-cli's start-up time. */
  let admin: Redis;
  let n = 0;

  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.port, server.host, FAIL_FAST);
    client.on("error", () => {});
    admin = new Redis(server.port, server.host, FAIL_FAST);
    admin.on("error", () => {});
    await Promise.all([
      new Promise((r) => client.once("ready", r)),
      new Promise((r) => admin.once("ready", r)),
    ]);
  }, 20_000);

  afterAll(async () => {
    client?.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  it("a process on Redis that died, with calls, a wait and a refund in flight, closes and exits by itself", async () => {
    const doomed = await startRedis();
    try {
      const { code, out, err, lingered } = await runChild(doomed.url, () => doomed.kill());
      expect(err).toBe("");
      expect(code).toBe(0);
      const report = JSON.parse(out.trim().split("\n").at(-1) as string);
      // On the dead Redis: consume (the fallback decides), a wait (the key is drained: it
      // sleeps until close), a refund (not applied), a reset (rejects: no connection, or
      // the client's own error, depending on when it saw the server go).
      expect(report.results.slice(12, 15)).toEqual(["ok", "ClosedError", "ok"]);
      expect(report.results[15]).toMatch(/Error$/);
      expect(report.closed).toEqual(["closed", "close threw", "hangs", "closed"]);
      expect(lingered).toBeLessThan(1000);
    } finally {
      await doomed.stop();
    }
  }, 30_000);

  it("a refund that fills a throttled bucket is not counted as a bucket Redis lost", async () => {
    const limiter = new RateLimiter({
      policy: { capacity: 2, refillRate: 1, interval: 60_000 },
      store: new RedisStore({ client, prefix: `lh${++n}`, timeout: 2000 }),
      instances: 1,
    });
    const evictions: string[] = [];
    limiter.events.on("eviction", (kind) => evictions.push(kind));
    await limiter.consume("k", { cost: 2 });
    expect(await limiter.consume("k")).toMatchObject({ allowed: false, reason: "store" });
    expect(await limiter.refund("k", { cost: 2 })).toMatchObject({ applied: true });
    expect(await limiter.consume("k")).toMatchObject({ allowed: true, remaining: 1 });
    expect(limiter.stats().storeEvictions).toBe(0);
    expect(evictions).toEqual([]);
    await limiter.close();
  });

  it("a refund, reset and block Redis applied during a 500 ms block are reported applied, not failed", async () => {
    const limiter = new RateLimiter({
      policy: { capacity: 5, refillRate: 1, interval: 60_000 },
      store: new RedisStore({ client, prefix: `lh${++n}`, timeout: TIMEOUT }),
      instances: 1,
    });
    await limiter.consume("k", { cost: 3 });
    // Redis answers nothing for 100 ms: the replies are sure to come during the block.
    await admin.client("PAUSE", 100);
    const refund = limiter.refund("k");
    const reset = outcome(limiter.reset("r"));
    const blocked = outcome(limiter.block("b", 60_000));
    // Long enough for the client to write the calls; Redis answers during the block.
    await new Promise((r) => setTimeout(r, 5));
    // Blocked from a check-phase callback (an I/O callback's work ends the same way): the
    // next turn runs its timers before it reads the sockets.
    await nextTurn();
    block(500);
    expect(await refund).toMatchObject({ applied: true, extra: -1 });
    expect(await reset).toBeUndefined();
    expect(await blocked).toBeUndefined();
    expect(limiter.stats()).toMatchObject({ settleErrors: 0, storeTimeouts: 0 });
    expect(await limiter.peek("k")).toMatchObject({ remaining: 3, reason: "store" });
    expect(await limiter.peek("b")).toMatchObject({ reason: "blocked" });
    await limiter.close();
  });
});
