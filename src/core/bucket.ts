import type { Policy } from "./policy.js";

/**
 * BucketState is one bucket: whole `tokens` and `refilledAt`, the epoch ms up
 * to which refills have been counted. Functions here mutate it in place so a
 * store can reuse one scratch object and allocate nothing per decision.
 * `tokens` lies in [-maxDebt, capacity]; every value here, and every
 * intermediate, stays an integer below 2^53, so the arithmetic is exact.
 */
export interface BucketState {
  tokens: number;
  refilledAt: number;
}

const MAX = Number.MAX_SAFE_INTEGER;

/**
 * refill brings `state` up to `now`: whole intervals only (a partial interval
 * is never lost), capped at capacity, and a clock that went backwards adds
 * nothing. A `refilledAt` more than one interval ahead of `now` (the clock
 * stepped back) is clamped to `now`, so a step back can hold a client for
 * one interval, not for the length of the step. A full bucket is a new
 * bucket: its `refilledAt` becomes `now`.
 * Exact up to 2^53: `tokens + n * refillRate` rounds only past 2^53, and
 * rounding never takes a sum at or above capacity below it (capacity is a
 * double), while a sum below capacity is below 2^53, so exact.
 */
export function refill(p: Policy, state: BucketState, now: number): void {
  const elapsed = now - state.refilledAt;
  if (elapsed >= p.interval) {
    const n = Math.floor(elapsed / p.interval);
    state.tokens = Math.min(p.capacity, state.tokens + n * p.refillRate);
    state.refilledAt += n * p.interval;
  } else if (elapsed < -p.interval) {
    state.refilledAt = now;
  }
  if (state.tokens >= p.capacity) {
    state.tokens = p.capacity;
    state.refilledAt = now;
  }
}

/**
 * retryAfter is the milliseconds from `now` until the refilled `state` holds
 * `cost` tokens; 0 when it already does. It counts any debt (negative
 * tokens) and saturates at Number.MAX_SAFE_INTEGER.
 */
export function retryAfter(p: Policy, state: BucketState, cost: number, now: number): number {
  if (state.tokens >= cost) return 0;
  return Math.min(
    MAX,
    state.refilledAt +
      p.interval -
      now +
      (Math.ceil((cost - state.tokens) / p.refillRate) - 1) * p.interval,
  );
}

/**
 * untilFull is the milliseconds from `now` until the refilled `state` is full
 * again: how long a store must remember it (Redis PEXPIRE), 0 when full.
 * Saturates at Number.MAX_SAFE_INTEGER.
 */
export function untilFull(p: Policy, state: BucketState, now: number): number {
  const missing = p.capacity - state.tokens;
  if (missing <= 0) return 0;
  return Math.min(MAX, state.refilledAt - now + Math.ceil(missing / p.refillRate) * p.interval);
}

/**
 * adjust charges `delta` tokens to the refilled `state` after the fact:
 * positive takes them (down to -maxDebt at most), negative gives them back
 * (up to capacity at most: a bucket so refilled is full, so new). Returns
 * the tokens dropped beyond maxDebt. |delta| <= Number.MAX_SAFE_INTEGER.
 */
export function adjust(p: Policy, state: BucketState, delta: number, now: number): number {
  if (delta >= 0) {
    const room = state.tokens + p.maxDebt;
    if (delta <= room) {
      state.tokens -= delta;
      return 0;
    }
    // A bucket already deeper than maxDebt (the policy was changed) is left as it is.
    if (room <= 0) return delta;
    // 0 - maxDebt, not -maxDebt: no -0 when maxDebt is 0.
    state.tokens = 0 - p.maxDebt;
    return delta - room;
  }
  if (-delta >= p.capacity - state.tokens) {
    state.tokens = p.capacity;
    state.refilledAt = now;
  } else {
    state.tokens -= delta;
  }
  return 0;
}
