import type { Observation } from "./probe.js";

/** TimeBucket counts the requests sent in one stretch of a run. */
export interface TimeBucket {
  /** Seconds from the run's start to the bucket's start. */
  readonly start: number;
  /** Length of the bucket in seconds. */
  readonly length: number;
  readonly allowed: number;
  readonly blocked: number;
  /** Remaining tokens of the first and last response in the bucket, null when none had the header. */
  readonly firstRemaining: number | null;
  readonly lastRemaining: number | null;
}

/**
 * timeBuckets groups requests by the second they were sent in, or by several
 * seconds at once so that a long run still gives at most `most` buckets.
 * `duration` (seconds) makes quiet seconds at the end show as empty buckets.
 */
export function timeBuckets(
  requests: readonly Observation[],
  duration: number,
  most = 30,
): TimeBucket[] {
  const lastT = requests.reduce((m, o) => Math.max(m, o.t), 0) / 1000;
  const seconds = Math.max(1, Math.ceil(Math.max(duration, lastT + 0.001)));
  const length = Math.ceil(seconds / most);
  const count = Math.ceil(seconds / length);
  const rows = Array.from({ length: count }, (_, i) => ({
    start: i * length,
    length,
    allowed: 0,
    blocked: 0,
    firstRemaining: null as number | null,
    lastRemaining: null as number | null,
  }));
  for (const o of requests) {
    const row = rows[Math.min(count - 1, Math.floor(o.t / 1000 / length))];
    if (row === undefined) continue;
    if (o.status === 429) row.blocked++;
    else row.allowed++;
    if (o.remaining !== null) {
      row.firstRemaining ??= o.remaining;
      row.lastRemaining = o.remaining;
    }
  }
  return rows;
}

/**
 * remainingLine samples the remaining tokens seen over the run into `width`
 * columns (the last value seen by each column's end), for a line chart. A
 * column before any value is null.
 */
export function remainingLine(
  requests: readonly Observation[],
  duration: number,
  width: number,
): (number | null)[] {
  const end = Math.max(duration * 1000, ...requests.map((o) => o.t + 1));
  const out: (number | null)[] = new Array(width).fill(null);
  let last: number | null = null;
  let i = 0;
  const sorted = [...requests].sort((a, b) => a.t - b.t || a.n - b.n);
  for (let c = 0; c < width; c++) {
    const until = ((c + 1) * end) / width;
    while (i < sorted.length && (sorted[i] as Observation).t < until) {
      const r = (sorted[i] as Observation).remaining;
      if (r !== null) last = r;
      i++;
    }
    out[c] = last;
  }
  return out;
}
