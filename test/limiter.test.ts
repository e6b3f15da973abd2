import { describe, expect, it } from "vitest";
import {
  ConfigError,
  CostError,
  isFloodgateError,
  MemoryStore,
  RateLimiter,
  WaitTimeoutError,
} from "../src/index.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };

describe("RateLimiter", () => {
  it("gives the tutorial's burst: 10 allowed (remaining 9..0), 5 denied for 1000 ms, 6 back after 3 s", async () => {
    let t = 1_700_000_000_000;
    const limiter = new RateLimiter({ policy: burst, clock: () => t });
    const decisions = [];
    for (let i = 0; i < 15; i++) decisions.push(await limiter.consume("client"));
    expect(decisions.map((d) => d.allowed)).toEqual([
      ...Array(10).fill(true),
      ...Array(5).fill(false),
    ]);
    expect(decisions.slice(0, 10).map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(decisions.slice(10).map((d) => d.retryAfter)).toEqual([1000, 1000, 1000, 1000, 1000]);
    expect(decisions[0]).toMatchObject({
      policy: "burst",
      limit: 10,
      resetAt: t + 1000,
      reason: "store",
    });
    t += 3000;
    expect(await limiter.peek("client")).toMatchObject({ allowed: true, remaining: 6 });
  });

  it("reports every policy and the most restrictive one", async () => {
    const limiter = new RateLimiter({
      policies: [burst, { name: "daily", capacity: 12, refillRate: 12, interval: "1d" }],
      clock: () => 0,
    });
    for (let i = 0; i < 10; i++) await limiter.consume("k");
    const d = await limiter.consume("k");
    expect(d).toMatchObject({ allowed: false, policy: "burst", retryAfter: 1000 });
    expect(d.policies.map((p) => [p.name, p.remaining])).toEqual([
      ["burst", 0],
      ["daily", 2],
    ]);
  });

  describe("a denial repeated within one clock tick", () => {
    it("is the same frozen Decision, still counted and heard once per request", async () => {
      let t = 1_000_000;
      const limiter = new RateLimiter({ policy: { ...burst, capacity: 1 }, clock: () => t });
      const limited: string[] = [];
      limiter.events.on("limited", (_policy, key) => limited.push(key));
      await limiter.consume("k");
      const first = await limiter.consume("k");
      const again = await limiter.consume("k");
      expect(again).toBe(first);
      expect(Object.isFrozen(again) && Object.isFrozen(again.policies[0])).toBe(true);
      expect(again).toMatchObject({ allowed: false, retryAfter: 1000, now: t });
      expect(limited).toEqual(["k", "k"]);
      expect(limiter.topLimited()).toEqual([{ key: "k", count: 2, error: 0 }]);
      // A count that is no whole number >= 0 is refused, not read (topLimited(-1) gave all but one).
      for (const n of [-1, 1.5, Number.NaN]) {
        expect(() => limiter.topLimited(n)).toThrow(/topLimited\(n\) takes a whole number/);
      }
      expect(limiter.topLimited(0)).toEqual([]);
      t += 1;
      const later = await limiter.consume("k");
      expect(later).not.toBe(first);
      expect(later).toMatchObject({ allowed: false, retryAfter: 999, now: t });
    });

    it("is not shared with another key, cost or policy list", async () => {
      const limiter = new RateLimiter({ policy: { ...burst, capacity: 1 }, clock: () => 0 });
      await limiter.consume("a");
      await limiter.consume("b");
      const a = await limiter.consume("a");
      const b = await limiter.consume("b");
      const a2 = await limiter.consume("a", { cost: 1 });
      const a3 = await limiter.consume("a");
      expect(b).not.toBe(a);
      expect(b).toEqual(a);
      expect(a2).not.toBe(b);
      expect(a3).toBe(a2);
      const peeked = await limiter.peek("a");
      expect(peeked).toEqual(a);
    });
  });

  it("reset forgets a client", async () => {
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    await limiter.consume("k", { cost: 10 });
    await limiter.reset("k");
    expect((await limiter.consume("k")).remaining).toBe(9);
  });

  describe("rejects bad options when built", () => {
    it.each([
      [{}, /"policies" is required/],
      [{ policy: burst, policies: [burst] }, /"policy" cannot be given together/],
      [{ policy: { ...burst, capacity: 0 } }, /"policy.capacity".*got 0/],
      [
        { policies: [burst, { ...burst, refillRate: Number.NaN }] },
        /"policies\[1\].refillRate".*got NaN/,
      ],
      [
        { policy: { ...burst, interval: Number.POSITIVE_INFINITY } },
        /"policy.interval".*got Infinity/,
      ],
      [{ policy: { ...burst, name: "bad name!" } }, /"policy.name".*"bad name!"/],
      [{ policy: burst, limit: 5 }, /"limit" is not a RateLimiter option/],
      [{ policy: burst, store: {} }, /"store" must be a Store/],
      [{ policy: burst, clock: 0 }, /"clock" must be a function/],
    ])("%j", (options, message) => {
      expect(() => new RateLimiter(options as never)).toThrow(ConfigError);
      expect(() => new RateLimiter(options as never)).toThrow(message);
    });

    it("rejects a non-object", () => {
      expect(() => new RateLimiter(undefined as never)).toThrow(/"options" must be an object/);
    });
  });

  describe("rejects bad calls without touching the bucket", () => {
    it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 11, 2 ** 53 + 2])(
      "cost %s",
      async (cost) => {
        const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
        const error = await limiter.consume("k", { cost }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CostError);
        expect(isFloodgateError(error)).toBe(true);
        expect((await limiter.peek("k")).remaining).toBe(10);
      },
    );

    it("a key that is not a string", async () => {
      const limiter = new RateLimiter({ policy: burst });
      await expect(limiter.consume(42 as never)).rejects.toThrow(TypeError);
      await expect(limiter.peek(undefined as never)).rejects.toThrow(/must be a string/);
      await expect(limiter.reset({} as never)).rejects.toThrow(/must be a string/);
    });
  });

  describe("wait", () => {
    const fast = { capacity: 2, refillRate: 1, interval: 20 };

    it("resolves at once when tokens are there, and after the refill when not", async () => {
      const limiter = new RateLimiter({ policy: fast });
      await limiter.wait("api");
      await limiter.wait("api");
      const started = Date.now();
      const d = await limiter.wait("api");
      expect(d.allowed).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1);
    });

    it("rejects at once when the wait would pass maxWait", async () => {
      const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 60_000 } });
      await limiter.wait("api");
      const error = await limiter.wait("api", { maxWait: 1000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WaitTimeoutError);
      expect((error as WaitTimeoutError).retryAfter).toBeGreaterThan(59_000);
    });

    it("rejects with the signal's reason when aborted, and spends nothing after", async () => {
      const store = new MemoryStore();
      const limiter = new RateLimiter({
        policy: { capacity: 1, refillRate: 1, interval: 60_000 },
        store,
      });
      await limiter.wait("api");
      const controller = new AbortController();
      const waiting = limiter.wait("api", { signal: controller.signal });
      controller.abort(new Error("shutting down"));
      await expect(waiting).rejects.toThrow("shutting down");
      const aborted = AbortSignal.abort(new Error("already"));
      await expect(limiter.wait("other", { signal: aborted })).rejects.toThrow("already");
      expect((await limiter.peek("other")).remaining).toBe(1);
    });

    it("rejects a bad maxWait", async () => {
      const limiter = new RateLimiter({ policy: fast });
      await expect(limiter.wait("api", { maxWait: -1 })).rejects.toThrow(/"maxWait"/);
    });
  });
});
