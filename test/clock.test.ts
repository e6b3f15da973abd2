import { setImmediate as nextTurn } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { turnMonotonic, turnNow } from "../src/clock.js";
import { RateLimiter } from "../src/index.js";

/** spinPast busy-waits (no sleep: nothing else may run) until Date.now() is past `t`. */
function spinPast(t: number): void {
  while (Date.now() <= t) {
    // spin
  }
}

describe("the default clock (read once per event-loop turn)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("keeps one instant for the rest of a turn, and reads the clock again in the next", async () => {
    await nextTurn();
    const first = turnNow();
    spinPast(first + 1);
    expect(turnNow()).toBe(first);
    await Promise.resolve();
    expect(turnNow()).toBe(first);
    await nextTurn();
    expect(turnNow()).toBeGreaterThan(first);
  });

  it("reads the clock again after a few reuses, so a long synchronous stretch cannot freeze time", async () => {
    await nextTurn();
    const first = turnNow();
    spinPast(first + 1);
    const seen = Array.from({ length: 16 }, () => turnNow());
    expect(seen.at(-1)).toBeGreaterThan(first);
  });

  it("never runs ahead of the monotonic truth, and stays by the wall clock while it does not step", async () => {
    await nextTurn();
    for (let i = 0; i < 1000; i++) {
      expect(turnNow()).toBeLessThanOrEqual(performance.timeOrigin + performance.now());
    }
    expect(Math.abs(turnNow() - Date.now())).toBeLessThan(1000);
  });

  it("does not move when only Date.now moves (a wall-clock step)", async () => {
    await nextTurn();
    const before = turnNow();
    const realNow = Date.now.bind(Date);
    const step = vi.spyOn(Date, "now").mockImplementation(() => realNow() + 3_600_000);
    try {
      await nextTurn();
      const during = turnNow();
      expect(during - before).toBeGreaterThanOrEqual(0);
      expect(during - before).toBeLessThan(1000);
    } finally {
      step.mockRestore();
    }
  });

  it("follows fake timers at once: every call reads the replaced Date.now", () => {
    turnNow();
    vi.useFakeTimers({ now: 1_000_000 });
    expect(turnNow()).toBe(1_000_000);
    vi.advanceTimersByTime(2500);
    expect(turnNow()).toBe(1_002_500);
  });

  it("follows fake timers installed before floodgate was loaded", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    vi.resetModules();
    const fresh = await import("../src/clock.js");
    expect(fresh.turnNow()).toBe(1_000_000);
    vi.setSystemTime(1_005_000);
    expect(fresh.turnNow()).toBe(1_005_000);
  });

  it("lets a limiter built without a clock be tested with fake timers", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const limiter = new RateLimiter({
      policy: { name: "p", capacity: 2, refillRate: 1, interval: 1000 },
    });
    expect((await limiter.consume("k")).allowed).toBe(true);
    expect((await limiter.consume("k")).allowed).toBe(true);
    expect((await limiter.consume("k")).retryAfter).toBe(1000);
    vi.advanceTimersByTime(1000);
    expect((await limiter.consume("k")).allowed).toBe(true);
  });

  it("turnMonotonic keeps one performance.now() reading per turn", async () => {
    await nextTurn();
    const first = turnMonotonic();
    expect(turnMonotonic()).toBe(first);
    spinPast(Date.now() + 1);
    await nextTurn();
    expect(turnMonotonic()).toBeGreaterThan(first);
  });
});
