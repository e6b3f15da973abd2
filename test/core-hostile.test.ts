/**
 * The core limiter under hostile input and misuse: a clock that returns no
 * number, a signal that is not an AbortSignal, a logger that throws, a
 * store that answers with another library's promise or is still answering
 * when the limiter closes, options that are not an object, a settle after
 * close. Each case failed before its fix (see CHANGELOG.md).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ClosedError,
  ConfigError,
  MemoryStore,
  type Policy,
  RateLimiter,
  type Store,
  type StoreReply,
} from "../src/index.js";

const policy = { capacity: 2, refillRate: 1, interval: 1000 };

/** outcome is how `p` settled: its value, or the rejection's name and message. */
async function outcome<T>(p: Promise<T>): Promise<T | string> {
  try {
    return await p;
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

describe("a clock that returns no number", () => {
  it("is refused when the limiter is built, naming the option, what it returned and the fix", () => {
    // `Date` (not `Date.now`) is a function returning a string: every decision was NaN.
    for (const clock of [Date, () => Number.NaN, () => "0", () => Infinity]) {
      let error: unknown;
      try {
        new RateLimiter({ policy, clock: clock as unknown as () => number });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe("clock");
      expect((error as Error).message).toMatch(/"clock" must return epoch milliseconds.*Fix: /);
    }
    expect(() => new RateLimiter({ policy, clock: () => 0 })).not.toThrow();
  });

  it("a clock whose value is set after the limiter is built (it throws or returns undefined then) is accepted", async () => {
    let now: number | undefined;
    const later = new RateLimiter({ policy, clock: () => now as number });
    class Fake {
      readonly limiter = new RateLimiter({ policy, clock: () => this.t });
      t = 5000;
    }
    const fake = new Fake();
    now = 1000;
    expect(await later.consume("k")).toMatchObject({ allowed: true, now: 1000 });
    expect(await fake.limiter.consume("k")).toMatchObject({ allowed: true, now: 5000 });
    const early = () => {
      throw new Error("not yet");
    };
    expect(() => new RateLimiter({ policy, clock: early })).not.toThrow();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("wait() on a store whose clock turns NaN sleeps between store calls instead of spinning", async () => {
    vi.useFakeTimers();
    let calls = 0;
    let now = 0;
    /** A store given its own clock, which goes bad after the first decision. */
    class Spinning extends MemoryStore {
      override consume(...args: Parameters<MemoryStore["consume"]>) {
        // Before the fix the head asked again in the same synchronous loop, forever.
        if (++calls > 100) throw new Error("asked 100 times without sleeping");
        return super.consume(...args);
      }
    }
    const store = new Spinning({ clock: () => now });
    const limiter = new RateLimiter({ policy: { ...policy, capacity: 1 }, store });
    await limiter.consume("k");
    now = Number.NaN;
    const controller = new AbortController();
    const waiting = outcome(limiter.wait("k", { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(10);
    // One call, then at most one a millisecond.
    expect(calls).toBeLessThanOrEqual(12);
    controller.abort(new Error("gave up"));
    expect(await waiting).toBe("Error: gave up");
  });
});

describe("wait() with a signal that is not an AbortSignal", () => {
  it("rejects with a TypeError and leaves nothing behind to block the key", async () => {
    const limiter = new RateLimiter({ policy, clock: () => 0 });
    // Before the fix the waiter joined the line, then addEventListener threw: the
    // line kept a head that never asked, and every later wait on the key hung.
    const fake = { aborted: false, throwIfAborted() {} } as unknown as AbortSignal;
    expect(await outcome(limiter.wait("k", { signal: fake }))).toMatch(
      /^TypeError: floodgate: wait\(key, \{ signal \}\) takes an AbortSignal/,
    );
    const next = await outcome(limiter.wait("k", { maxWait: 0 }));
    expect(next).toMatchObject({ allowed: true, remaining: 1 });
  });

  it("a signal whose addEventListener throws leaves no waiter in the line", async () => {
    const limiter = new RateLimiter({ policy, clock: () => 0 });
    const hostile = {
      aborted: false,
      throwIfAborted() {},
      addEventListener() {
        throw new Error("hostile");
      },
      removeEventListener() {},
    } as unknown as AbortSignal;
    expect(await outcome(limiter.wait("k", { signal: hostile }))).toBe("Error: hostile");
    expect(await outcome(limiter.wait("k", { maxWait: 0 }))).toMatchObject({ allowed: true });
  });
});

describe("a logger or listener that throws", () => {
  it("never fails a decision, and is reported once as a warning", async () => {
    const warnings: string[] = [];
    const hear = (w: Error & { code?: string }) => warnings.push(String(w.code));
    process.on("warning", hear);
    try {
      const boom = () => {
        throw new Error("logger down");
      };
      const limiter = new RateLimiter({
        policy,
        clock: () => 0,
        logger: { info: boom, warn: boom, error: boom },
      });
      limiter.events.on("limited", () => {
        throw new Error("listener bug");
      });
      limiter.events.on("decision", () => {
        throw new Error("listener bug");
      });
      const answers = [];
      // Before the fix: the listener's error went to the logger, whose error escaped
      // into the decision: the first two consumes rejected with "logger down".
      for (let i = 0; i < 4; i++) answers.push(await outcome(limiter.consume("k")));
      expect(answers.map((d) => (typeof d === "string" ? d : d.allowed))).toEqual([
        true,
        true,
        false,
        false,
      ]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((c) => c === "FLOODGATE_LOGGER_ERROR").length).toBeLessThanOrEqual(1);
    } finally {
      process.off("warning", hear);
    }
  });
});

/** Custom is a custom store without a deadline, over a MemoryStore, answering as `wrap` makes it. */
function custom(wrap: (reply: StoreReply) => StoreReply | PromiseLike<StoreReply>): Store {
  const memory = new MemoryStore({ clock: () => 0 });
  return {
    consume: (key, list, cost, spend) => wrap([...memory.consume(key, list, cost, spend)]),
    adjust: (key, list, delta) => wrap([...memory.adjust(key, list, delta)]),
    block: (key, list, ms) => wrap([...memory.block(key, list, ms)]),
    reset: (key, list) => memory.reset(key, list),
  } as Store;
}

describe("a custom store", () => {
  const thenable = (reply: StoreReply): PromiseLike<StoreReply> => ({
    // biome-ignore lint/suspicious/noThenProperty: a promise of another library is what is tested
    then: (ok, fail) => Promise.resolve(reply).then(ok, fail),
  });

  it("over the network (a timeout) that answers with another library's promise decides from the store", async () => {
    const limiter = new RateLimiter({
      policy,
      store: { ...custom(thenable), timeout: 1000 },
      instances: 1,
    });
    try {
      // Before the fix: read as a reply given at once, decided from the thenable object itself.
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await outcome(limiter.consume("k")));
      expect(answers).toMatchObject([
        { allowed: true, remaining: 1, reason: "store" },
        { allowed: true, remaining: 0, reason: "store" },
        { allowed: false, retryAfter: 1000 },
      ]);
      expect(limiter.stats()).toMatchObject({ storeErrors: 0, fallbacks: 0 });
    } finally {
      await limiter.close();
    }
  });

  it("that answers with another library's promise (a thenable) decides exactly", async () => {
    const limiter = new RateLimiter({ policy, store: custom(thenable) });
    const answers = [];
    // Before the fix: read as a reply given at once, "RangeError: Invalid array length".
    for (let i = 0; i < 3; i++) answers.push(await outcome(limiter.consume("k")));
    expect(answers).toMatchObject([
      { allowed: true, remaining: 1, reason: "store" },
      { allowed: true, remaining: 0 },
      { allowed: false, retryAfter: 1000 },
    ]);
    expect(await limiter.refund("k", { cost: 2 })).toEqual({
      extra: -2,
      dropped: 0,
      applied: true,
    });
    expect(await outcome(limiter.consume("k"))).toMatchObject({ allowed: true, remaining: 1 });
  });

  it("still answering when the limiter closes: the call rejects with ClosedError", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const limiter = new RateLimiter({
      policy,
      store: custom((reply) => gate.then(() => reply)),
    });
    const consumed = outcome(limiter.consume("k"));
    await limiter.close();
    release();
    // Before the fix: resolved after close() with a decision (allowed: true).
    expect(await consumed).toMatch(/^ClosedError/);
  });
});

describe("a call's options that are not an object", () => {
  it("consume, peek and wait refuse them instead of reading them as cost 1", async () => {
    const limiter = new RateLimiter({ policy, clock: () => 0 });
    for (const options of [5, "5", null, true]) {
      // Before the fix consume("k", 5) spent 1 token, silently.
      expect(await outcome(limiter.consume("k", options as never))).toMatch(
        /^TypeError: floodgate: a call's options must be an object such as \{ cost: 5 \}/,
      );
      expect(await outcome(limiter.peek("k", options as never))).toMatch(/^TypeError/);
      expect(await outcome(limiter.wait("k", options as never))).toMatch(
        /^TypeError: floodgate: a call's options must be an object such as \{ cost: 1, maxWait: 5000 \}/,
      );
    }
    // Nothing was spent by any of them.
    expect(await limiter.peek("k")).toMatchObject({ remaining: 2 });
  });
});

describe("a reservation settled after close()", () => {
  it("rejects with ClosedError and charges nothing", async () => {
    let adjusts = 0;
    class Counting extends MemoryStore {
      override adjust(key: string, list: readonly Policy[], delta: number) {
        adjusts++;
        return super.adjust(key, list, delta);
      }
    }
    const limiter = new RateLimiter({ policy, store: new Counting({ clock: () => 0 }) });
    const reservation = await limiter.reserve("k", { cost: 2 });
    await limiter.close();
    // Before the fix: applied to the closed store, { extra: 3, applied: true }.
    expect(await outcome(reservation.settle(5))).toMatch(/^ClosedError/);
    expect(adjusts).toBe(0);
    // Settling at the estimate changes nothing, so it still resolves.
    expect(await reservation.settle(2)).toEqual({ extra: 0, dropped: 0, applied: true });
    expect(ClosedError).toBeDefined();
  });
});
