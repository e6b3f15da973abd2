import type { Observation, RefillCheck } from "./probe.js";
import type { HeaderPolicy } from "./rate-limit-headers.js";

/** ObservedPolicy is what the probe worked out from statuses and timing alone, headers aside. */
export interface ObservedPolicy {
  /** Requests allowed before the first 429; null when none was blocked. */
  readonly burst: number | null;
  /** Estimated capacity: the burst less the tokens that came back while it ran; null when unknown. */
  readonly capacity: number | null;
  /** Estimated tokens per second flowing back; null when the run could not show it. */
  readonly refillPerSecond: number | null;
}

/** InferredPolicy is the limit as the headers announce it and as the probe saw it. */
export interface InferredPolicy {
  /** Capacity from `X-RateLimit-Limit` or the IETF quota `q`; null when no header gave it. */
  readonly limit: number | null;
  /** Seconds to refill from empty (IETF `w`); null when not announced. */
  readonly window: number | null;
  /** Tokens per second the headers imply (`limit / window`); null without a window. */
  readonly refillPerSecond: number | null;
  /** Every policy `RateLimit-Policy` named. */
  readonly policies: readonly HeaderPolicy[];
  readonly observed: ObservedPolicy;
}

// A steady-state stretch shorter than this says too little about the refill rate.
const MIN_STEADY_MS = 500;

/**
 * inferPolicy combines what the headers announce with what the run showed.
 * `steady` says the requests were spread over time (rate mode) rather than
 * sent back to back.
 */
export function inferPolicy(
  requests: readonly Observation[],
  refill: RefillCheck,
  steady: boolean,
): InferredPolicy {
  const headers = requests.map((o) => o.headers);
  const limit = headers.find((h) => h.limit !== null)?.limit ?? null;
  const window = headers.find((h) => h.window !== null)?.window ?? null;
  const policies = headers.find((h) => h.policies.length > 0)?.policies ?? [];
  return {
    limit,
    window,
    refillPerSecond: limit !== null && window !== null ? round(limit / window) : null,
    policies,
    observed: steady ? observeSteady(requests) : observeBurst(requests, refill),
  };
}

/**
 * observeBurst reads a back-to-back burst: the requests allowed before the
 * first 429 are the capacity (too little time passes for a refill to matter),
 * and the refill check shows the rate, unless the bucket filled up while the
 * probe waited.
 */
export function observeBurst(
  requests: readonly Observation[],
  refill: RefillCheck,
): ObservedPolicy {
  const first = requests.findIndex((o) => o.status === 429);
  const burst = first < 0 ? null : first;
  const full = burst !== null && refill.allowed >= burst;
  const stopped = refill.blocked > 0;
  return {
    burst,
    // A first request already blocked means the bucket was empty: no capacity to read.
    capacity: burst === 0 ? null : burst,
    refillPerSecond:
      refill.waited > 0 && refill.allowed > 0 && stopped && !full
        ? round(refill.allowed / refill.waited)
        : null,
  };
}

/**
 * observeSteady reads traffic sent faster than the refill rate. The bucket is
 * empty at every 429, so the requests allowed between the first and the last
 * 429 are exactly the tokens that came back in that time: that gives the rate.
 * The capacity is then the burst less the tokens that came back before the
 * first 429.
 */
export function observeSteady(requests: readonly Observation[]): ObservedPolicy {
  const blocked = requests.filter((o) => o.status === 429);
  const first = blocked[0];
  const last = blocked[blocked.length - 1];
  if (first === undefined || last === undefined) {
    return { burst: null, capacity: null, refillPerSecond: null };
  }
  const burst = requests.filter((o) => o.n < first.n && o.status !== 429).length;
  const span = last.t - first.t;
  let refillPerSecond: number | null = null;
  if (span >= MIN_STEADY_MS) {
    const between = requests.filter(
      (o) => o.n > first.n && o.n < last.n && o.status !== 429,
    ).length;
    refillPerSecond = round((between * 1000) / span);
  }
  const capacity =
    burst === 0
      ? null
      : refillPerSecond === null
        ? burst
        : Math.max(1, Math.min(burst, Math.round(burst - (refillPerSecond * first.t) / 1000)));
  return { burst, capacity, refillPerSecond };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
