import { describe, expect, it } from "vitest";
import { type BucketState, refill, retryAfter, untilFull } from "./bucket.js";
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
