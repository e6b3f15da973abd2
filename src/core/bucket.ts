import type { Policy } from "./policy.js";

/**
 * BucketState is one bucket: whole `tokens` and `refilledAt`, the epoch ms up
 * to which refills have been counted. Functions here mutate it in place so a
 * store can reuse one scratch object and allocate nothing per decision.
 */
export interface BucketState {
  tokens: number;
  refilledAt: number;
}

/**
 * refill brings `state` up to `now`: whole intervals only (a partial interval
 * is never lost), capped at capacity, and a clock that went backwards adds
 * nothing. A `refilledAt` more than one interval ahead of `now` (the clock
 * stepped back) is clamped to `now`, so a step back can hold a client for
 * one interval, not for the length of the step. A full bucket is a new
 * bucket: its `refilledAt` becomes `now`.
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
 * `cost` tokens; 0 when it already does.
 */
export function retryAfter(p: Policy, state: BucketState, cost: number, now: number): number {
  if (state.tokens >= cost) return 0;
  return (
    state.refilledAt +
    p.interval -
    now +
    (Math.ceil((cost - state.tokens) / p.refillRate) - 1) * p.interval
  );
}

/**
 * untilFull is the milliseconds from `now` until the refilled `state` is full
 * again: how long a store must remember it (Redis PEXPIRE), 0 when full.
 */
export function untilFull(p: Policy, state: BucketState, now: number): number {
  const missing = p.capacity - state.tokens;
  if (missing <= 0) return 0;
  return state.refilledAt - now + Math.ceil(missing / p.refillRate) * p.interval;
}
