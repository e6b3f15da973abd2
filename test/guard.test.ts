/**
 * The guard alone, against a fake network store whose replies the test
 * gives by hand, on a hand-driven clock: deadlines, the loop-lateness rule,
 * the breaker, cached denials, the fallback that continues from the store's
 * last reported state, instances learned through `members`, lost buckets
 * counted as evictions, and close(). No sleeps: time moves only when a test
 * moves it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Decision } from "../src/core/decision.js";
import { ClosedError } from "../src/core/errors.js";
import { type Policy, policies } from "../src/core/policy.js";
import type { Guard, StoreErrorMode } from "../src/stores/guard.js";
import type { Store } from "../src/stores/store.js";
import { StoreTimeoutError } from "../src/stores/store-errors.js";
import { guardHarness, list, ManualTimers, settle, TIMEOUT } from "./helpers/guard-harness.js";

/** The store's clock runs this far ahead of this process's: replies carry its time. */
const SKEW = 1_000_000;

interface Pending {
  key: string;
  cost: number;
  spend: boolean;
  resolve(reply: number[]): void;
  reject(error: Error): void;
}

/** FakeStore answers nothing by itself: the test replies to each call, by the store's clock. */
class FakeStore implements Store {
  readonly timeout = TIMEOUT;
  readonly calls: Pending[] = [];
  resets: string[] = [];
  resetReply: Promise<void> | undefined;
  instances: number | undefined;
  beats = 0;
  members?: (id: string, ttlMs: number) => Promise<number>;

  constructor(instances?: number) {
    if (instances !== undefined) {
      this.instances = instances;
      this.members = () => {
        this.beats++;
        return Promise.resolve(this.instances as number);
      };
    }
  }

  consume(key: string, _list: readonly Policy[], cost: number, spend: boolean): Promise<number[]> {
    return new Promise((resolve, reject) => this.calls.push({ key, cost, spend, resolve, reject }));
  }
  reset(key: string): Promise<void> {
    this.resets.push(key);
    return this.resetReply ?? Promise.resolve();
  }
  /** reply answers the newest open call: the bucket holds `tokens`, refilled at `refilledAt` (store ms). */
  reply(allowed: boolean, tokens: number, refilledAt: number, now: number): void {
    (this.calls.pop() as Pending).resolve([now, allowed ? 1 : 0, tokens, refilledAt]);
  }
}

/** Lists of one bucket each under other names: the gateway's descriptor sets under one domain key. */
const other = (name: string) =>
  policies({ name, capacity: 50, refillRate: 10, interval: 1000 }, "policy");

/**
 * SyncStore answers at once, as `next` says: allowed, or denied with a wait
 * of `wait` ms (the bucket empty, its next token due then). It counts calls.
 */
class SyncStore implements Store {
  readonly timeout = TIMEOUT;
  calls = 0;
  next: { allowed: boolean; wait: number } = { allowed: false, wait: 200 };
  constructor(private readonly timers: ManualTimers) {}
  consume(): number[] {
    this.calls++;
    const now = SKEW + this.timers.t;
    const { allowed, wait } = this.next;
    return allowed ? [now, 1, 49, now] : [now, 0, 0, now - (1000 - wait)];
  }
  reset(): Promise<void> {
    return Promise.resolve();
  }
}

function syncSetup() {
  const timers = new ManualTimers();
  const { store, guard } = guardHarness(new SyncStore(timers), { timers, instances: 1 });
  /** ask decides once and says whether the store was asked. */
  const ask = (key: string, l: readonly Policy[], cost = 1) => {
    const before = store.calls;
    const d = guard.decide(key, cost, true, l) as Decision;
    return { d, asked: store.calls > before };
  };
  return { timers, store, guard, ask };
}

function setup<S extends FakeStore = FakeStore>(
  options: {
    instances?: number;
    learn?: number;
    mode?: StoreErrorMode;
    cache?: boolean;
    store?: S;
  } = {},
) {
  return guardHarness((options.store ?? new FakeStore(options.learn)) as S, options);
}

/** fallbackRun spends until the fallback denies, with the store stalled: how many it admitted. */
async function drain(guard: Guard, timers: ManualTimers, key: string, most = 100): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < most; i++) {
    const d = await decideStalled(guard, timers, key);
    expect(d.reason).toBe("insurance");
    if (!d.allowed) return admitted;
    admitted++;
  }
  return admitted;
}

/** decideStalled sends one call the store never answers and lets its deadline pass on time. */
async function decideStalled(guard: Guard, timers: ManualTimers, key: string): Promise<Decision> {
  const answer = guard.decide(key, 1, true, list);
  timers.advance(TIMEOUT + 1);
  return answer;
}

describe("Guard: deadline and fallback", () => {
  it("a store call that misses its deadline is answered by the fallback and counted", async () => {
    const { guard, timers } = setup();
    const d = await decideStalled(guard, timers, "a");
    expect(d).toMatchObject({ allowed: true, reason: "insurance", remaining: 49 });
    expect(guard.stats()).toMatchObject({ storeCalls: 1, storeTimeouts: 1, fallbacks: 1 });
  });

  it("a reply within the deadline decides, and a late one is only counted", async () => {
    const { guard, timers, store } = setup();
    const first = guard.decide("a", 1, true, list);
    timers.advance(TIMEOUT - 1);
    store.reply(true, 49, SKEW, SKEW);
    expect(await first).toMatchObject({ allowed: true, reason: "store", remaining: 49 });
    const second = guard.decide("a", 1, true, list);
    timers.advance(TIMEOUT + 1);
    store.reply(true, 48, SKEW, SKEW + TIMEOUT + 1);
    await settle();
    expect((await second).reason).toBe("insurance");
    expect(guard.stats()).toMatchObject({ lateReplies: 1, storeTimeouts: 1 });
  });

  it('"deny" refuses until the store is tried again; "allow" lets through', async () => {
    const deny = setup({ mode: "deny" });
    expect(await decideStalled(deny.guard, deny.timers, "a")).toMatchObject({
      allowed: false,
      reason: "fail-closed",
      retryAfter: 1000,
    });
    const allow = setup({ mode: "allow" });
    expect(await decideStalled(allow.guard, allow.timers, "a")).toMatchObject({
      allowed: true,
      reason: "fail-open",
    });
  });
});

describe("Guard: the fallback remembers", () => {
  it("a key the store reported drained stays drained: never a fresh bucket", async () => {
    const { guard, timers, store } = setup();
    const first = guard.decide("k", 1, true, list);
    store.reply(false, 0, SKEW, SKEW + 400);
    expect((await first).allowed).toBe(false);
    // The cached denial ends 600 ms later, at the store's next refill; then the store stalls.
    timers.advance(600);
    const d = await decideStalled(guard, timers, "k");
    // The refill at store 1000 is local 600 (the offset seen when the reply came): 10 tokens, no more.
    expect(d).toMatchObject({ allowed: true, reason: "insurance", remaining: 9 });
    expect(await drain(guard, timers, "k")).toBe(9);
  });

  it("continues each policy list a key was decided under (the gateway's descriptor sets under one domain key)", async () => {
    const { guard, timers, store } = setup();
    const drained = other("client-a");
    const first = guard.decide("domain", 1, true, drained);
    store.reply(false, 0, SKEW, SKEW + 400);
    expect((await first).allowed).toBe(false);
    // Another descriptor set of the same domain key, reported after it.
    const second = guard.decide("domain", 1, true, other("client-b"));
    store.reply(true, 49, SKEW, SKEW + 400);
    expect((await second).allowed).toBe(true);
    // The store stalls before the drained bucket's next refill (store 1000, local 600).
    timers.advance(100);
    guard.forget("domain"); // no cached denial: this decision goes to the store
    const again = guard.decide("domain", 1, true, drained);
    timers.advance(TIMEOUT + 1);
    expect(await again).toMatchObject({ allowed: false, reason: "insurance" });
  });

  it("continues from the reported tokens and refill time, moved to this process's clock", async () => {
    const { guard, timers, store } = setup();
    const first = guard.decide("k", 1, true, list);
    // 5 tokens left, last refill 300 ms before the store's now: the next is 700 ms away.
    store.reply(true, 5, SKEW - 300, SKEW);
    await first;
    expect(await drain(guard, timers, "k")).toBe(5);
    const denied = await decideStalled(guard, timers, "k");
    expect(denied.allowed).toBe(false);
    // Asked at local 6 x 51 = 306 ms: the refill is due at local 700.
    expect(denied.retryAfter).toBe(700 - timers.t + TIMEOUT + 1);
    timers.advance(700 - timers.t);
    expect(await drain(guard, timers, "k")).toBe(10);
  });

  it("with N instances a reported state is shared: tokens / N, refill / N", async () => {
    const { guard, timers, store } = setup({ instances: 4 });
    const first = guard.decide("k", 1, true, list);
    store.reply(true, 30, SKEW, SKEW);
    await first;
    // floor(30 / 4) = 7 tokens; 10 per second over 4 instances is 2.5 a second here,
    // in steps of 2 every 800 ms from the reported refill (local 0): never a burst of 10.
    expect(await drain(guard, timers, "k")).toBe(7);
    const denied = await decideStalled(guard, timers, "k");
    expect(denied).toMatchObject({ allowed: false, limit: 12 });
    // The next step is due at local 800 (decisions here are stamped with this process's clock).
    expect(denied.now + denied.retryAfter).toBe(800);
    timers.advance(800 - timers.t);
    expect(await drain(guard, timers, "k")).toBe(2);
    timers.advance(4000);
    // Five more steps of 2, but a share holds 12 at most.
    expect(await drain(guard, timers, "k")).toBe(10);
  });

  it("a key the store never saw starts with this instance's share", async () => {
    const { guard, timers } = setup({ instances: 4 });
    expect(await drain(guard, timers, "new")).toBe(12);
  });

  it("a reply that comes after its deadline still teaches the fallback; an older one does not", async () => {
    const { guard, timers, store } = setup();
    const stalled = guard.decide("k", 1, true, list);
    const late = store.calls.pop() as Pending;
    timers.advance(TIMEOUT + 1);
    expect(await stalled).toMatchObject({ reason: "insurance", remaining: 49 });
    late.resolve([SKEW, 0, 0, SKEW - 100]);
    await settle();
    expect(guard.stats().lateReplies).toBe(1);
    expect((await decideStalled(guard, timers, "k")).allowed).toBe(false);
    // A reply older (by the store's clock) than the state held changes nothing.
    const older = guard.decide("k", 1, true, list);
    timers.advance(TIMEOUT + 1);
    await older;
    store.reply(true, 40, SKEW - 500, SKEW - 500);
    await settle();
    expect((await decideStalled(guard, timers, "k")).allowed).toBe(false);
  });

  it("a new reply from the store replaces the fallback's state", async () => {
    const { guard, timers, store } = setup();
    const first = guard.decide("k", 1, true, list);
    store.reply(true, 3, SKEW, SKEW);
    await first;
    expect(await drain(guard, timers, "k")).toBe(3);
    const again = guard.decide("k", 1, true, list);
    store.reply(true, 20, SKEW, SKEW + 200);
    expect((await again).reason).toBe("store");
    expect(await decideStalled(guard, timers, "k")).toMatchObject({
      reason: "insurance",
      remaining: 19,
    });
  });
});

describe("Guard: a late event loop is not a store failure", () => {
  it("a deadline missed because the timer fired late gets one more timeout; the reply then decides", async () => {
    const { guard, timers, store } = setup();
    const answer = guard.decide("a", 1, true, list);
    // The loop was blocked for 5 timeouts: the timer runs 200 ms after it was due.
    timers.stall(5 * TIMEOUT);
    expect(guard.stats()).toMatchObject({ lateLoop: 1, storeTimeouts: 0, fallbacks: 0 });
    timers.advance(TIMEOUT - 1);
    store.reply(true, 49, SKEW, SKEW);
    expect(await answer).toMatchObject({ reason: "store", allowed: true });
    expect(guard.stats()).toMatchObject({ storeTimeouts: 0, breaker: "closed" });
  });

  it("after the extra timeout on time, the call is a store failure", async () => {
    const { guard, timers } = setup();
    const answer = guard.decide("a", 1, true, list);
    timers.stall(5 * TIMEOUT);
    timers.advance(TIMEOUT + 1);
    expect((await answer).reason).toBe("insurance");
    expect(guard.stats()).toMatchObject({ lateLoop: 1, storeTimeouts: 1 });
  });

  it("late twice: the fallback answers, still no failure, the breaker stays closed", async () => {
    const { guard, timers } = setup();
    const answers = [1, 2, 3, 4].map(() => guard.decide("a", 1, true, list));
    timers.stall(5 * TIMEOUT);
    timers.stall(5 * TIMEOUT);
    for (const d of await Promise.all(answers)) expect(d.reason).toBe("insurance");
    expect(guard.stats()).toMatchObject({
      lateLoop: 8,
      storeTimeouts: 0,
      breaker: "closed",
      breakerOpens: 0,
    });
  });

  it("timeouts on time open the breaker; it probes once a second and closes on success", async () => {
    const { guard, timers, store, events } = setup();
    const seen: string[] = [];
    events.on("breaker-open", () => seen.push("open"));
    events.on("breaker-close", () => seen.push("close"));
    for (let i = 0; i < 5; i++) {
      await decideStalled(guard, timers, "a");
      timers.advance(60);
    }
    expect(guard.stats()).toMatchObject({ breaker: "open", breakerOpens: 1 });
    const calls = store.calls.length;
    expect((await guard.decide("a", 1, true, list)).reason).toBe("insurance");
    expect(store.calls.length).toBe(calls);
    timers.advance(1000);
    const probe = guard.decide("a", 1, true, list);
    expect(guard.stats().breaker).toBe("half-open");
    store.reply(true, 10, SKEW, SKEW);
    expect((await probe).reason).toBe("store");
    expect(seen).toEqual(["open", "close"]);
  });

  it("a probe the loop was late for twice is no verdict: a second later the next probe goes", async () => {
    const { guard, timers, store } = setup();
    for (let i = 0; i < 5; i++) {
      await decideStalled(guard, timers, "a");
      timers.advance(60);
    }
    timers.advance(1000);
    const probe = guard.decide("a", 1, true, list);
    timers.stall(5 * TIMEOUT);
    timers.stall(5 * TIMEOUT);
    expect((await probe).reason).toBe("insurance");
    expect(guard.stats()).toMatchObject({ breaker: "open", storeTimeouts: 3, lateLoop: 2 });
    const calls = store.calls.length;
    expect((await guard.decide("a", 1, true, list)).reason).toBe("insurance");
    expect(store.calls.length).toBe(calls);
    timers.advance(1000);
    const next = guard.decide("a", 1, true, list);
    expect(store.calls.length).toBe(calls + 1);
    store.reply(true, 10, SKEW, SKEW);
    expect((await next).reason).toBe("store");
    expect(guard.stats().breaker).toBe("closed");
  });
});

describe("Guard: an error about one key's data is no outage", () => {
  /** KeyStore is FakeStore for a store that tells key errors (Redis WRONGTYPE) apart. */
  class KeyStore extends FakeStore {
    keyError(error: unknown): boolean {
      return error instanceof Error && error.message.startsWith("WRONGTYPE");
    }
    /** fail rejects the newest open call with `message`. */
    fail(message: string): void {
      // While the breaker is open nothing was sent: the fallback has answered already.
      this.calls.pop()?.reject(new Error(message));
    }
  }
  function keySetup() {
    const { timers, store, events, guard } = setup({ instances: 1, store: new KeyStore() });
    const errors: string[] = [];
    events.on("store-error", (_e, kind) => errors.push(kind));
    /** fails asks once and has the store fail the call with `message`, then lets 100 ms pass. */
    const fails = async (message: string) => {
      const answer = guard.decide("bad", 1, true, list);
      store.fail(message);
      const d = await answer;
      timers.advance(100);
      return d;
    };
    return { timers, store, guard, errors, fails };
  }
  const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";

  it("a key of another type, failing again and again, falls back alone and never opens the breaker", async () => {
    const { guard, store, errors, fails } = keySetup();
    for (let i = 0; i < 6; i++) expect((await fails(WRONGTYPE)).reason).toBe("insurance");
    expect(guard.stats()).toMatchObject({ breaker: "closed", breakerOpens: 0, storeErrors: 6 });
    expect(errors).toEqual(Array(6).fill("error"));
    // The next client still goes to the store.
    const next = guard.decide("good", 1, true, list);
    expect(store.calls).toHaveLength(1);
    store.reply(true, 49, SKEW, SKEW);
    expect((await next).reason).toBe("store");
  });

  it("counterfactual: the same streak of errors about the store opens it", async () => {
    const { guard, fails } = keySetup();
    for (let i = 0; i < 6; i++)
      await fails("OOM command not allowed when used memory > 'maxmemory'.");
    expect(guard.stats()).toMatchObject({ breaker: "open", breakerOpens: 1 });
  });

  it("a probe answered with a key error closes the breaker: the store answered", async () => {
    const { guard, timers, store, fails } = keySetup();
    for (let i = 0; i < 6; i++)
      await fails("READONLY You can't write against a read only replica.");
    expect(guard.stats().breaker).toBe("open");
    timers.advance(1000);
    expect((await fails(WRONGTYPE)).reason).toBe("insurance");
    expect(guard.stats().breaker).toBe("closed");
    const next = guard.decide("good", 1, true, list);
    store.reply(true, 49, SKEW, SKEW);
    expect((await next).reason).toBe("store");
  });
});

describe("Guard: cached denials", () => {
  it("a denial is answered locally until its retryAfter, counted from when the call was sent", async () => {
    const { guard, timers, store } = setup();
    const first = guard.decide("k", 1, true, list);
    store.reply(false, 0, SKEW - 800, SKEW);
    expect(await first).toMatchObject({ allowed: false, retryAfter: 200 });
    timers.advance(150);
    expect(await guard.decide("k", 1, true, list)).toMatchObject({
      reason: "cached",
      retryAfter: 50,
    });
    expect(store.calls.length).toBe(0);
    timers.advance(50);
    void guard.decide("k", 1, true, list);
    expect(store.calls.length).toBe(1);
  });
});

describe("Guard: cached denials under several policy lists of one key", () => {
  it("denials of two lists under one key are kept apart; an allowed decision drops only its own list's", () => {
    const { store, ask } = syncSetup();
    const a = other("a");
    const b = other("b");
    expect(ask("gw", a)).toMatchObject({ asked: true, d: { allowed: false, retryAfter: 200 } });
    expect(ask("gw", b)).toMatchObject({ asked: true, d: { allowed: false } });
    // Before, b's denial replaced a's: every other request reached the store.
    for (let i = 0; i < 3; i++) {
      expect(ask("gw", a)).toMatchObject({ asked: false, d: { reason: "cached" } });
      expect(ask("gw", b)).toMatchObject({ asked: false, d: { reason: "cached" } });
    }
    // Another descriptor set of the domain admitted: a and b stay denied without a store call.
    store.next = { allowed: true, wait: 0 };
    expect(ask("gw", list)).toMatchObject({ asked: true, d: { allowed: true } });
    expect(ask("gw", a).asked).toBe(false);
    expect(ask("gw", b).asked).toBe(false);
    // a admitted (another cost misses the cache): a's denial goes, b's stays.
    expect(ask("gw", a, 2)).toMatchObject({ asked: true, d: { allowed: true } });
    expect(ask("gw", a).asked).toBe(true);
    expect(ask("gw", b)).toMatchObject({ asked: false, d: { reason: "cached" } });
  });

  it("forget and reset drop the denials of every list of the key, and only that key's", async () => {
    const { store, guard, ask } = syncSetup();
    const a = other("a");
    const b = other("b");
    for (const key of ["gw", "gw2"]) for (const l of [a, b, list]) ask(key, l);
    guard.forget("gw");
    store.next = { allowed: false, wait: 300 };
    for (const l of [a, b, list]) expect(ask("gw", l).asked).toBe(true);
    for (const l of [a, b, list]) expect(ask("gw2", l).asked).toBe(false);
    await guard.reset("gw2", list);
    for (const l of [a, b, list]) expect(ask("gw2", l).asked).toBe(true);
    for (const l of [a, b, list]) expect(ask("gw", l).asked).toBe(false);
  });

  it("a denial's end is its own list's: one ending leaves the others cached", () => {
    const { store, timers, ask } = syncSetup();
    const a = other("a");
    store.next = { allowed: false, wait: 100 };
    ask("gw", a);
    store.next = { allowed: false, wait: 400 };
    ask("gw", list);
    timers.advance(100);
    expect(ask("gw", list)).toMatchObject({ asked: false, d: { retryAfter: 300 } });
    expect(ask("gw", a).asked).toBe(true);
  });

  it("bounded: 100,000 denials in force over keys and lists, then the oldest half goes", () => {
    const { store, ask } = syncSetup();
    store.next = { allowed: false, wait: 1000 };
    const lists = Array.from({ length: 60_000 }, (_, i) => other(`d${i}`));
    // 60,000 lists under the one domain key, then keys of their own under `list`.
    const at = (i: number): [string, readonly Policy[]] =>
      i < 60_000 ? ["gw", lists[i] as readonly Policy[]] : [`k${i}`, list];
    for (let i = 0; i <= 100_000; i++) expect(ask(...at(i)).asked).toBe(true);
    // The 100,001st denial found 100,000 cached: the oldest key's 50,000 oldest lists dropped.
    expect(ask(...at(0)).asked).toBe(true);
    expect(ask(...at(49_999)).asked).toBe(true);
    expect(ask(...at(50_000)).asked).toBe(false);
    expect(ask(...at(59_999)).asked).toBe(false);
    expect(ask(...at(60_000)).asked).toBe(false);
    expect(ask(...at(100_000)).asked).toBe(false);
  });

  it("property: the cache answers exactly the (key, list) pairs whose last store answer is a denial in force", () => {
    const lists = [list, other("a"), other("b"), other("c")];
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("decide" as const),
        key: fc.integer({ min: 0, max: 2 }),
        list: fc.integer({ min: 0, max: 3 }),
        allowed: fc.boolean(),
        wait: fc.integer({ min: 1, max: 900 }),
      }),
      fc.record({ kind: fc.constant("forget" as const), key: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 400 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 10, maxLength: 60 }), (ops) => {
        const { store, timers, guard, ask } = syncSetup();
        const model = new Map<string, number>();
        for (const o of ops) {
          if (o.kind === "advance") timers.advance(o.ms);
          else if (o.kind === "forget") {
            guard.forget(`k${o.key}`);
            for (let l = 0; l < lists.length; l++) model.delete(`${o.key}/${l}`);
          } else {
            const id = `${o.key}/${o.list}`;
            const until = model.get(id);
            store.next = { allowed: o.allowed, wait: o.wait };
            const { d, asked } = ask(`k${o.key}`, lists[o.list] as readonly Policy[]);
            if (until !== undefined && until > timers.t) {
              expect(asked).toBe(false);
              expect(d).toMatchObject({ reason: "cached", retryAfter: until - timers.t });
              continue;
            }
            expect(asked).toBe(true);
            if (o.allowed) model.delete(id);
            else model.set(id, timers.t + o.wait);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("Guard: instances learned through the store", () => {
  it("beats at the first decision and every 5 s; the share follows the count", async () => {
    const { guard, timers, store } = setup({ learn: 5 });
    expect(guard.instances).toBe(1);
    expect(store.beats).toBe(0);
    void guard.decide("a", 1, true, list);
    await settle();
    expect(store.beats).toBe(1);
    expect(guard.instances).toBe(5);
    store.instances = 2;
    timers.advance(5000);
    await settle();
    expect(store.beats).toBe(2);
    expect(guard.instances).toBe(2);
    expect(await decideStalled(guard, timers, "never-seen")).toMatchObject({
      limit: 25,
      remaining: 24,
    });
  });

  it("an instances option overrides: no heartbeat", async () => {
    const { guard, timers, store } = setup({ learn: 5, instances: 3 });
    await decideStalled(guard, timers, "a");
    timers.advance(20_000);
    expect(store.beats).toBe(0);
    expect(guard.instances).toBe(3);
  });

  it("a count that is not a number >= 1 is ignored", async () => {
    const { guard, store } = setup({ learn: 0 });
    void guard.decide("a", 1, true, list);
    await settle();
    expect(store.beats).toBe(1);
    expect(guard.instances).toBe(1);
  });
});

describe("Guard: buckets the store lost", () => {
  it("a throttled bucket the store calls new before it could refill counts as an eviction of kind store", async () => {
    const { guard, timers, store, events } = setup({ cache: false });
    const heard: [string, string, string][] = [];
    events.on("eviction", (kind, policy, key) => heard.push([kind, policy, key]));
    const first = guard.decide("k", 1, true, list);
    store.reply(false, 0, SKEW, SKEW + 500);
    await first;
    timers.advance(100);
    const second = guard.decide("k", 1, true, list);
    // The store answers as from a new bucket: full before this request, refilled at its now.
    store.reply(true, 49, SKEW + 600, SKEW + 600);
    expect((await second).allowed).toBe(true);
    expect(heard).toEqual([["store", "default", "k"]]);
    expect(guard.stats().storeEvictions).toBe(1);
  });

  it("a bucket that could have refilled, or a key reset here, is not counted", async () => {
    const { guard, store } = setup({ cache: false });
    const first = guard.decide("k", 1, true, list);
    store.reply(false, 0, SKEW, SKEW + 500);
    await first;
    // Five whole intervals later 0 + 5 x 10 = 50: full, legitimately.
    const later = guard.decide("k", 1, true, list);
    store.reply(true, 49, SKEW + 5000, SKEW + 5000);
    await later;
    const drained = guard.decide("k", 1, true, list);
    store.reply(false, 0, SKEW + 5000, SKEW + 5100);
    await drained;
    await guard.reset("k", list);
    const fresh = guard.decide("k", 1, true, list);
    store.reply(true, 49, SKEW + 5200, SKEW + 5200);
    await fresh;
    expect(guard.stats().storeEvictions).toBe(0);
  });
});

describe("Guard: reset and close", () => {
  it("reset rejects with StoreTimeoutError when the store does not confirm within its timeout", async () => {
    const { guard, timers, store } = setup();
    store.resetReply = new Promise(() => {});
    const done = guard.reset("k", list);
    timers.advance(TIMEOUT);
    await expect(done).rejects.toBeInstanceOf(StoreTimeoutError);
    expect(timers.pending).toBe(0);
  });

  it("close rejects the calls in flight with ClosedError and stops every timer; twice is fine", async () => {
    const { guard, timers } = setup({ learn: 3 });
    const answers = [guard.decide("a", 1, true, list), guard.decide("b", 1, true, list)];
    await settle();
    expect(timers.pending).toBeGreaterThan(0);
    guard.close();
    guard.close();
    for (const a of answers) await expect(a).rejects.toBeInstanceOf(ClosedError);
    expect(timers.pending).toBe(0);
  });
});
