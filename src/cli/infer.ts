import type { HeaderPolicy, RateLimitHeaders } from "./rate-limit-headers.js";

/** Observation is one request the probe sent and what came back. Header values are in seconds. */
export interface Observation {
  /** 1-based position in the run. */
  readonly n: number;
  /** Milliseconds from the run's first request to this one being sent. */
  readonly t: number;
  readonly status: number;
  readonly remaining: number | null;
  /** Seconds until the next refill, as the headers said. */
  readonly reset: number | null;
  /** Seconds from Retry-After. */
  readonly retryAfter: number | null;
  readonly headers: RateLimitHeaders;
}

/** RefillCheck is the result of waiting and then sending until the first 429. */
export interface RefillCheck {
  /** Seconds waited after the run. */
  readonly waited: number;
  readonly allowed: number;
  readonly blocked: number;
}

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
 * `perSecond` is the rate of a steady run (rate mode); null for a burst sent
 * back to back.
 */
export function inferPolicy(
  requests: readonly Observation[],
  refill: RefillCheck,
  perSecond: number | null,
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
    observed:
      perSecond === null
        ? observeBurst(requests, refill)
        : observeSteady(requests, 1000 / perSecond),
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
 * observeSteady reads traffic sent faster than the refill rate, one request
 * every `gap` milliseconds. The bucket is empty at every 429, so the requests
 * allowed between the first and the last 429 are exactly the tokens that came
 * back in that time. When those arrive in clumps (a bucket that refills
 * several tokens every interval), the clumps give the interval and the tokens
 * per refill, and so how many refills fell inside the opening burst; the
 * capacity is the burst less those. Without clumps the refill is smooth and
 * the rate times the burst's length is close enough.
 */
export function observeSteady(requests: readonly Observation[], gap: number): ObservedPolicy {
  const sorted = [...requests].sort((a, b) => a.n - b.n);
  const first = sorted.findIndex((o) => o.status === 429);
  let last = first;
  for (let i = sorted.length - 1; i > first; i--) {
    if ((sorted[i] as Observation).status === 429) {
      last = i;
      break;
    }
  }
  if (first < 0) return { burst: null, capacity: null, refillPerSecond: null };
  const burst = first;
  const tFirst = (sorted[first] as Observation).t;
  const span = (sorted[last] as Observation).t - tFirst;
  if (burst === 0) {
    return { burst, capacity: null, refillPerSecond: null };
  }
  if (span < MIN_STEADY_MS) return { burst, capacity: burst, refillPerSecond: null };

  // Clumps: runs of allowed requests between the first and the last 429, by start time and size.
  const clumps: { start: number; size: number }[] = [];
  let between = 0;
  for (let i = first + 1; i < last; i++) {
    const o = sorted[i] as Observation;
    if (o.status === 429) continue;
    between++;
    const previous = sorted[i - 1] as Observation;
    const open = clumps[clumps.length - 1];
    if (previous.status !== 429 && open !== undefined) open.size++;
    else clumps.push({ start: o.t, size: 1 });
  }
  const firstClump = clumps[0];
  const lastClump = clumps[clumps.length - 1];
  if (clumps.length >= 2 && firstClump !== undefined && lastClump !== undefined) {
    const interval = (lastClump.start - firstClump.start) / (clumps.length - 1);
    const perRefill = between / clumps.length;
    // The bucket's refill clock starts at the first request, so refills fall
    // at whole intervals from it; the first clump comes at most one gap after
    // the refill that made it, and one refill falls between the first 429 and it.
    const refills = Math.max(0, Math.round((firstClump.start - gap / 2) / interval) - 1);
    return {
      burst,
      capacity: Math.max(1, Math.round(burst - refills * perRefill)),
      refillPerSecond: round((perRefill * 1000) / interval),
    };
  }
  const refillPerSecond = round((between * 1000) / span);
  return {
    burst,
    capacity: Math.max(1, Math.min(burst, Math.round(burst - (refillPerSecond * tFirst) / 1000))),
    refillPerSecond,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
