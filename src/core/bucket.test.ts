import { describe, expect, it } from "vitest";
import { adjust, type BucketState, refill, retryAfter, untilFull } from "./bucket.js";
import { policy } from "./policy.js";

const p = policy({ capacity: 10, refillRate: 2, interval: 1000 });
const at = (tokens: number, refilledAt: number): BucketState => ({ tokens, refilledAt });

describe("refill at fixed instants", () => {
  it.each([
    // tokens, refilledAt, now -> tokens, refilledAt
    [0, 0, 999, 0, 0],
    [0, 0, 1000, 2, 1000],
    [0, 0, 1999, 2, 1000],
    [0, 0, 2500, 4, 2000],
    [3, 0, 4000, 10, 4000],
    [9, 0, 1000, 10, 1000],
    [0, 0, 10 ** 12, 10, 10 ** 12],
    [5, 5000, 4000, 5, 5000],
    [10, 5000, 4000, 10, 4000],
    // More than one interval ahead (the clock stepped back): clamped to now, nothing added.
    [5, 5000, 3999, 5, 3999],
    [0, 3_600_000, 0, 0, 0],
  ])(
    "(%i tokens, refilled at %i) at %i -> %i tokens, refilled at %i",
    (t, r, now, tokens, refilledAt) => {
      const s = at(t, r);
      refill(p, s, now);
      expect(s).toEqual({ tokens, refilledAt });
    },
  );
});

describe("retryAfter", () => {
  it.each([
    // tokens, refilledAt, cost, now -> ms
    [0, 0, 1, 0, 1000],
    [0, 0, 2, 0, 1000],
    [0, 0, 3, 0, 2000],
    [0, 0, 10, 500, 4500],
    [1, 0, 2, 999, 1],
    [2, 0, 2, 0, 0],
    [0, 5000, 1, 4000, 2000],
  ])("(%i tokens, refilled at %i) cost %i at %i -> %i ms", (t, r, cost, now, ms) => {
    expect(retryAfter(p, at(t, r), cost, now)).toBe(ms);
  });
});

describe("untilFull", () => {
  it.each([
    [10, 0, 0, 0],
    [9, 0, 0, 1000],
    [8, 0, 0, 1000],
    [7, 0, 0, 2000],
    [0, 0, 0, 5000],
    [0, 0, 999, 4001],
  ])("(%i tokens, refilled at %i) at %i -> %i ms", (t, r, now, ms) => {
    expect(untilFull(p, at(t, r), now)).toBe(ms);
  });
});

describe("debt", () => {
  const d = policy({ capacity: 1000, refillRate: 100, interval: 1000, maxDebt: 5000 });

  it.each([
    // tokens, delta -> tokens, dropped
    [0, 2000, -2000, 0],
    [1000, 3000, -2000, 0],
    [-4000, 1500, -5000, 500],
    [-5000, 1, -5000, 1],
    [0, 5000, -5000, 0],
    [-2000, -500, -1500, 0],
    [-2000, -5000, 1000, 0],
    [900, -Number.MAX_SAFE_INTEGER, 1000, 0],
    [0, Number.MAX_SAFE_INTEGER, -5000, Number.MAX_SAFE_INTEGER - 5000],
    // A bucket deeper than maxDebt (the policy was changed since) is left as it is.
    [-6000, 10, -6000, 10],
    [-6000, 0, -6000, 0],
  ])("%i tokens adjusted by %i -> %i tokens, %i dropped", (t, delta, tokens, dropped) => {
    const s = at(t, 0);
    expect(adjust(d, s, delta, 500)).toBe(dropped);
    expect(s.tokens).toBe(tokens);
    // A refund that fills the bucket makes it new.
    expect(s.refilledAt).toBe(tokens === d.capacity ? 500 : 0);
  });

  it("refills a bucket in debt at the usual rate, and counts the debt in retryAfter", () => {
    const s = at(-2000, 0);
    // DESIGN's formula: (refilledAt + interval - now) + (ceil((c - tokens) / refillRate) - 1) * interval
    expect(retryAfter(d, s, 1, 0)).toBe(1000 + 20 * 1000);
    refill(d, s, 20_999);
    expect(s).toEqual({ tokens: 0, refilledAt: 20_000 });
    refill(d, s, 21_000);
    expect(s).toEqual({ tokens: 100, refilledAt: 21_000 });
    expect(untilFull(d, at(-2000, 0), 0)).toBe(30_000);
  });

  it("stays exact near 2^53 and saturates derived times", () => {
    const max = Number.MAX_SAFE_INTEGER;
    const big = policy({ capacity: max - 10, refillRate: 3, interval: 1000, maxDebt: 10 });
    const s = at(-10, 0);
    refill(big, s, 5000);
    expect(s).toEqual({ tokens: 5, refilledAt: 5000 });
    expect(retryAfter(big, at(-10, 0), max - 10, 0)).toBe(max);
    expect(untilFull(big, at(-10, 0), 0)).toBe(max);
    // A refill step that passes 2^53 fills the bucket, exactly.
    const huge = policy({ capacity: max - 1, refillRate: max - 1, interval: 1, maxDebt: 1 });
    const h = at(-1, 0);
    refill(huge, h, 3);
    expect(h).toEqual({ tokens: max - 1, refilledAt: 3 });
    const h2 = at(-1, 0);
    refill(huge, h2, 1);
    expect(h2).toEqual({ tokens: max - 2, refilledAt: 1 });
    expect(adjust(huge, h2, -1, 1)).toBe(0);
    expect(h2.tokens).toBe(max - 1);
  });
});
