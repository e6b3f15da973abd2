import type { Outcome } from "../events.js";

/** SeriesGroup is how a chart groups outcomes: what passed, what was denied, what shadow mode let through. */
export type SeriesGroup = "allowed" | "limited" | "shadow";

const GROUP: Record<Outcome, number> = {
  allowed: 0,
  fallback_allowed: 0,
  limited: 1,
  fallback_limited: 1,
  shadow_limited: 2,
};

/** PolicySeries is one policy's decisions per second, oldest first; the last entry is the current second. */
export interface PolicySeries {
  allowed: number[];
  limited: number[];
  shadow: number[];
}

/** Policies with a series of their own; decisions of further policies are added up under OTHER. */
const MAX_POLICIES = 32;
const OTHER = "_other";

/**
 * DecisionSeries counts decisions per policy and per second over the last
 * `seconds` seconds, in a ring of fixed size: memory is seconds x policies,
 * whatever the traffic.
 */
export class DecisionSeries {
  readonly seconds: number;
  /** stamps[i] is the second (epoch ms / 1000, floored) slot i holds. */
  readonly #stamps: Float64Array;
  readonly #counts = new Map<string, Uint32Array[]>();

  constructor(seconds = 300) {
    this.seconds = seconds;
    this.#stamps = new Float64Array(seconds).fill(-1);
  }

  /** add counts one decision of `policy` with `outcome` at `now` (epoch ms). */
  add(policy: string, outcome: Outcome, now: number): void {
    const second = Math.floor(now / 1000);
    const slot = this.#slot(second);
    let counts = this.#counts.get(policy);
    if (counts === undefined) {
      if (this.#counts.size >= MAX_POLICIES && policy !== OTHER) {
        this.add(OTHER, outcome, now);
        return;
      }
      counts = [0, 1, 2].map(() => new Uint32Array(this.seconds));
      this.#counts.set(policy, counts);
    }
    const row = counts[GROUP[outcome]] as Uint32Array;
    row[slot] = (row[slot] as number) + 1;
  }

  /** snapshot returns every policy's last `seconds` seconds up to `now`, oldest first. */
  snapshot(now: number): Record<string, PolicySeries> {
    const last = Math.floor(now / 1000);
    const n = this.seconds;
    // No prototype: a policy may be named "__proto__", which would set the
    // prototype of a plain object (and vanish from the JSON) instead of a key.
    const out: Record<string, PolicySeries> = Object.create(null);
    for (const [policy, counts] of this.#counts) {
      const series: PolicySeries = { allowed: [], limited: [], shadow: [] };
      const rows = [series.allowed, series.limited, series.shadow];
      for (let second = last - n + 1; second <= last; second++) {
        const slot = ((second % n) + n) % n;
        const live = this.#stamps[slot] === second;
        for (let g = 0; g < 3; g++) {
          (rows[g] as number[]).push(live ? ((counts[g] as Uint32Array)[slot] as number) : 0);
        }
      }
      out[policy] = series;
    }
    return out;
  }

  /** slot returns the ring index of `second`, clearing it when it held an older second. */
  #slot(second: number): number {
    const n = this.seconds;
    const slot = ((second % n) + n) % n;
    if (this.#stamps[slot] !== second) {
      // A clock that went back writes into the slot it finds: counts stay bounded either way.
      this.#stamps[slot] = second;
      for (const counts of this.#counts.values()) for (const row of counts) row[slot] = 0;
    }
    return slot;
  }
}
