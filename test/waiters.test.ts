/**
 * Issue 14 item 3: wait() queues. Fake timers throughout (they also fake
 * Date and performance.now), so every figure is exact and nothing sleeps;
 * one real-Redis test counts store calls per admission.
 */
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ClosedError,
  type Decision,
  MemoryStore,
  RateLimiter,
  RedisStore,
  WaitTimeoutError,
} from "../src/index.js";
import { MAX_TIMER, Waiters } from "../src/waiters.js";
import { describeRedis, type RedisServer, startRedis } from "./helpers/redis-server.js";

const DAY = 86_400_000;

/** CountingStore is a MemoryStore on the (fake) Date clock that counts consume calls. */
class CountingStore extends MemoryStore {
  calls = 0;
  constructor() {
    super({ clock: () => Date.now() });
  }
  override consume(...args: Parameters<MemoryStore["consume"]>) {
    this.calls++;
    return super.consume(...args);
  }
}

function setup(policy: { capacity: number; refillRate: number; interval: number }) {
  const store = new CountingStore();
  const limiter = new RateLimiter({ policy: { name: "p", ...policy }, store });
  return { store, limiter };
}

/** settled tells whether `p` has settled, after letting pending callbacks run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe("wait() queues waiters on one key", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("40 waiters on a 1-per-100 ms key are admitted in arrival order, 100 ms apart, one store call each", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { store, limiter } = setup({ capacity: 1, refillRate: 1, interval: 100 });
    await limiter.consume("k");
    store.calls = 0;
    const order: number[] = [];
    const at: number[] = [];
    const all = Array.from({ length: 40 }, (_, i) =>
      limiter.wait("k").then(() => {
        order.push(i);
        at.push(Date.now() - 1_000_000);
      }),
    );
    await vi.advanceTimersByTimeAsync(40 * 100);
    await Promise.all(all);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(at).toEqual(Array.from({ length: 40 }, (_, i) => (i + 1) * 100));
    // The first waiter's first call is denied (it learns the wait); every other call admits.
    expect(store.calls).toBeLessThanOrEqual(41);
    console.log(
      `guarantee: wait queue (memory store): 40 waiters on a 1-per-100 ms key admitted in arrival order, worst wait ${Math.max(...at)} ms, ${store.calls} store calls for 40 admissions`,
    );
  });

  it("a waiter with a larger cost is not overtaken by later small ones", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 3, refillRate: 1, interval: 100 });
    await limiter.consume("k", { cost: 3 });
    const order: string[] = [];
    const big = limiter.wait("k", { cost: 3 }).then(() => order.push("big"));
    const small = Array.from({ length: 5 }, (_, i) =>
      limiter.wait("k").then(() => order.push(`small${i}`)),
    );
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([big, ...small]);
    expect(order).toEqual(["big", "small0", "small1", "small2", "small3", "small4"]);
  });

  it("a 30-day interval: one store call to learn the wait, one to be admitted, and no early wake-up", async () => {
    vi.useFakeTimers({ now: 0 });
    const { store, limiter } = setup({ capacity: 1, refillRate: 1, interval: 30 * DAY });
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
      fn: () => void,
      ms?: number,
    ) => {
      delays.push(ms ?? 0);
      return real(fn, ms);
    }) as typeof setTimeout);
    await limiter.consume("k");
    store.calls = 0;
    const waiting = limiter.wait("k");
    for (let day = 0; day < 29; day++) {
      await vi.advanceTimersByTimeAsync(DAY);
      expect(await settled(waiting), `day ${day + 1}`).toBe(false);
    }
    await vi.advanceTimersByTimeAsync(DAY);
    const d = await waiting;
    spy.mockRestore();
    expect(d.allowed).toBe(true);
    expect(Date.now()).toBe(30 * DAY);
    expect(store.calls).toBe(2);
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER);
    console.log(
      `guarantee: wait with a 30-day interval: ${store.calls} store calls over 30 days (sleep split into timers of at most ${MAX_TIMER} ms)`,
    );
  });

  it("reset wakes the queue: the head is admitted at once", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 1, refillRate: 1, interval: 3_600_000 });
    await limiter.consume("k");
    const waiting = limiter.wait("k");
    expect(await settled(waiting)).toBe(false);
    await limiter.reset("k");
    expect(await settled(waiting)).toBe(true);
    expect((await waiting).allowed).toBe(true);
  });

  it("wake(key), as a refund calls it, makes the head ask the store again at once", async () => {
    vi.useFakeTimers({ now: 0 });
    const { store, limiter } = setup({ capacity: 1, refillRate: 1, interval: 3_600_000 });
    const waiters = new Waiters(limiter);
    await limiter.consume("k");
    const waiting = waiters.wait("k");
    expect(await settled(waiting)).toBe(false);
    store.reset("k", limiter.policies);
    waiters.wake("k");
    expect(await settled(waiting)).toBe(true);
    expect(waiters.size).toBe(0);
  });

  it("an abort removes the waiter at once; the next in line moves up", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 1, refillRate: 1, interval: 1000 });
    await limiter.consume("k");
    const first = new AbortController();
    const second = new AbortController();
    const order: string[] = [];
    const a = limiter.wait("k", { signal: first.signal }).then(() => order.push("a"));
    const b = limiter.wait("k", { signal: second.signal }).then(() => order.push("b"));
    const c = limiter.wait("k").then(() => order.push("c"));
    await vi.advanceTimersByTimeAsync(10);
    second.abort(new Error("b gave up"));
    await expect(b).rejects.toThrow("b gave up");
    first.abort(new Error("a gave up"));
    await expect(a).rejects.toThrow("a gave up");
    // c is now the head and is admitted when the token is due (t = 1000), not later.
    await vi.advanceTimersByTimeAsync(989);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await c;
    expect(order).toEqual(["c"]);
  });

  it("an abort while the head's store call is in flight: its admission goes to the next waiter of the same cost", async () => {
    vi.useFakeTimers({ now: 0 });
    const inner = new CountingStore();
    /** A store that answers 5 ms later, as a network store does. */
    const slow = {
      consume: (...args: Parameters<MemoryStore["consume"]>) => {
        const reply = [...inner.consume(...args)];
        return new Promise<number[]>((r) => setTimeout(() => r(reply), 5));
      },
      reset: (...args: Parameters<MemoryStore["reset"]>) => inner.reset(...args),
    };
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 60_000 },
      store: slow,
    });
    const first = new AbortController();
    const a = limiter.wait("k", { signal: first.signal }).catch((e: unknown) => e);
    const b = limiter.wait("k");
    await vi.advanceTimersByTimeAsync(1);
    first.abort(new Error("a gave up"));
    expect(await a).toEqual(new Error("a gave up"));
    await vi.advanceTimersByTimeAsync(5);
    expect((await b).allowed).toBe(true);
    expect(inner.calls).toBe(1);
  });

  it("maxWait: a waiter behind others rejects at once when the bucket alone needs longer", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 1, refillRate: 1, interval: 10_000 });
    await limiter.consume("k");
    const head = limiter.wait("k");
    await vi.advanceTimersByTimeAsync(0);
    const error = await limiter.wait("k", { maxWait: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect((error as WaitTimeoutError).retryAfter).toBe(10_000);
    // One that could fit in its own budget, but not behind the head, gives up at its deadline.
    let lateAt = 0;
    const behind = limiter.wait("k", { maxWait: 15_000 }).catch((e: unknown) => {
      lateAt = Date.now();
      return e;
    });
    await vi.advanceTimersByTimeAsync(10_000);
    await head;
    const late = await behind;
    expect(late).toBeInstanceOf(WaitTimeoutError);
    // Known at t = 10,000, when it became the head: its token is due at 20,000.
    expect(lateAt).toBe(10_000);
    expect((late as WaitTimeoutError).retryAfter).toBe(20_000);
  });

  it("the line goes away when it empties", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 1, refillRate: 1, interval: 10 });
    const waiters = new Waiters(limiter);
    const all: Promise<Decision>[] = [];
    for (let i = 0; i < 1000; i++) all.push(waiters.wait(`key-${i % 100}`));
    expect(waiters.size).toBe(100);
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all(all);
    expect(waiters.size).toBe(0);
  });

  it("close rejects every waiter, and every later wait, with ClosedError", async () => {
    vi.useFakeTimers({ now: 0 });
    const { limiter } = setup({ capacity: 1, refillRate: 1, interval: 60_000 });
    await limiter.consume("k");
    const waiting = [limiter.wait("k"), limiter.wait("k"), limiter.wait("k")];
    await vi.advanceTimersByTimeAsync(0);
    await limiter.close();
    for (const w of waiting) await expect(w).rejects.toBeInstanceOf(ClosedError);
    await expect(limiter.wait("k")).rejects.toBeInstanceOf(ClosedError);
  });
});

describe("property: random arrivals, costs and aborts", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("admits in arrival order, never overtakes, at most 2 store calls per admission, leaves no line", async () => {
    let runs = 0;
    let admittedAll = 0;
    let callsAll = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          capacity: fc.integer({ min: 1, max: 5 }),
          refillRate: fc.integer({ min: 1, max: 3 }),
          interval: fc.integer({ min: 10, max: 200 }),
          drained: fc.boolean(),
        }),
        fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 300 }),
            cost: fc.integer({ min: 1, max: 5 }),
            abortAt: fc.option(fc.integer({ min: 0, max: 600 }), { freq: 4 }),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        async ({ drained, ...p }, arrivals) => {
          vi.useFakeTimers({ now: 0 });
          try {
            const { store, limiter } = setup(p);
            const waiters = new Waiters(limiter);
            if (drained) await limiter.consume("k", { cost: p.capacity });
            store.calls = 0;
            const joined: number[] = [];
            const admitted: number[] = [];
            let aborted = 0;
            const all: Promise<unknown>[] = [];
            for (const [i, a] of arrivals.entries()) {
              const controller = new AbortController();
              setTimeout(() => {
                joined.push(i);
                all.push(
                  waiters
                    .wait("k", { cost: Math.min(a.cost, p.capacity), signal: controller.signal })
                    .then(
                      (d) => {
                        expect(d.allowed).toBe(true);
                        admitted.push(i);
                      },
                      () => {
                        aborted++;
                      },
                    ),
                );
              }, a.at);
              if (a.abortAt !== null)
                setTimeout(() => controller.abort(new Error("gone")), a.abortAt);
            }
            const total = arrivals.reduce((n, a) => n + a.cost, 0);
            await vi.advanceTimersByTimeAsync(
              700 + Math.ceil(total / p.refillRate + 1) * p.interval,
            );
            await Promise.all(all);
            expect(admitted.length + aborted).toBe(arrivals.length);
            // Admissions follow the order of arrival (the waiters that stayed, in the order they came).
            const rank = new Map(joined.map((i, n) => [i, n]));
            const ranks = admitted.map((i) => rank.get(i) as number);
            expect(ranks).toEqual([...ranks].sort((x, y) => x - y));
            expect(store.calls).toBeLessThanOrEqual(2 * admitted.length + aborted + 1);
            expect(waiters.size).toBe(0);
            runs++;
            admittedAll += admitted.length;
            callsAll += store.calls;
          } finally {
            vi.useRealTimers();
          }
        },
      ),
      { numRuns: 200, seed: 14 },
    );
    console.log(
      `guarantee: wait queue property: ${runs} random runs, ${admittedAll} admissions in arrival order with ${callsAll} store calls (${(callsAll / admittedAll).toFixed(2)} per admission)`,
    );
  });

  it("two policies: the next head's wait is worked out from every bucket", async () => {
    vi.useFakeTimers({ now: 0 });
    const store = new CountingStore();
    const limiter = new RateLimiter({
      policies: [
        { name: "burst", capacity: 2, refillRate: 1, interval: 100 },
        { name: "slow", capacity: 4, refillRate: 1, interval: 1000 },
      ],
      store,
    });
    const at: number[] = [];
    const all = Array.from({ length: 6 }, () => limiter.wait("k").then(() => at.push(Date.now())));
    await vi.advanceTimersByTimeAsync(3000);
    await Promise.all(all);
    // 2 at once, 1 at 100 (burst), 1 at 200 (burst; slow still has 1), then slow's refills.
    expect(at).toEqual([0, 0, 100, 200, 1000, 2000]);
    expect(store.calls).toBeLessThanOrEqual(7);
  });
});

describeRedis("wait() queues on a real Redis", () => {
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

  it("40 waiters on a 1-per-25 ms key: arrival order, at most 2 store calls per admission", async () => {
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 25 },
      store: new RedisStore({ client, prefix: "waiters" }),
    });
    await limiter.consume("k");
    const before = limiter.stats().storeCalls;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => limiter.wait("k").then(() => order.push(i))),
    );
    const calls = limiter.stats().storeCalls - before;
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(calls / 40).toBeLessThanOrEqual(2);
    console.log(
      `guarantee: wait queue (Redis): 40 waiters on a 1-per-25 ms key admitted in arrival order with ${calls} store calls (${(calls / 40).toFixed(2)} per admission)`,
    );
  });
});
