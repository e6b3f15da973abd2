import type { InferredPolicy } from "./infer.js";
import type { ProbeReport, RefillCheck } from "./probe.js";

/** JsonRequest is one request in `--json` output. `reset` and `retryAfter` are seconds, as headers give them. */
export interface JsonRequest {
  readonly n: number;
  readonly status: number;
  readonly remaining: number | null;
  readonly reset: number | null;
  readonly retryAfter: number | null;
}

/** JsonPoint is one request of a rate run: `t` is milliseconds from the run's first request. */
export interface JsonPoint {
  readonly t: number;
  readonly status: number;
  readonly remaining: number | null;
}

/** JsonReport is the object `floodgate probe --json` prints, shaped as DESIGN.md says. */
export interface JsonReport {
  readonly url: string;
  readonly requests: readonly JsonRequest[];
  readonly totals: { readonly allowed: number; readonly blocked: number };
  readonly policy: InferredPolicy;
  readonly refill: RefillCheck;
  /** Rate mode only. */
  readonly series?: readonly JsonPoint[];
}

/** toJson picks the public fields of a report, in a fixed order. */
export function toJson(report: ProbeReport): JsonReport {
  const base = {
    url: report.url,
    requests: report.requests.map(({ n, status, remaining, reset, retryAfter }) => ({
      n,
      status,
      remaining,
      reset,
      retryAfter,
    })),
    totals: { allowed: report.totals.allowed, blocked: report.totals.blocked },
    policy: report.policy,
    refill: report.refill,
  };
  if (report.rate === null) return base;
  return {
    ...base,
    series: report.requests.map(({ t, status, remaining }) => ({ t, status, remaining })),
  };
}
