// Property: the gateway's decision over several descriptors is the naive
// model's (every bucket advanced by DESIGN.md's prose, the request allowed
// only if every bucket holds the cost, then all charged), for any sequence of
// requests, costs and clock steps. Memory store, fixed instants.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildConfig, parseConfigFile } from "../../src/gateway/config.js";
import { Engine, type Verdict } from "../../src/gateway/engine.js";
import type { Entry } from "../../src/gateway/match.js";
import { GatewayMetrics } from "../../src/gateway/metrics.js";
import { RateLimiter } from "../../src/limiter.js";
import { MemoryStore } from "../../src/stores/memory-store.js";

const CONFIG = `domain: p
descriptors:
  - key: a
    rate_limit: { unit: second, requests_per_unit: 2, burst: 5 }
  - key: b
    rate_limit: { unit: second, requests_per_unit: 1, burst: 3 }
  - key: g
    value: global
    rate_limit: { unit: minute, requests_per_unit: 4 }
`;
const RULES: Record<string, { capacity: number; rate: number; interval: number }> = {
  a: { capacity: 5, rate: 2, interval: 1000 },
  b: { capacity: 3, rate: 1, interval: 1000 },
  g: { capacity: 4, rate: 4, interval: 60_000 },
};
const DESCRIPTORS: Entry[][] = [
  [{ key: "a", value: "x" }],
  [{ key: "a", value: "y" }],
  [{ key: "b", value: "x" }],
  [{ key: "b", value: "y" }],
  [{ key: "g", value: "global" }],
];

class Model {
  readonly #buckets = new Map<string, { tokens: number; refilledAt: number }>();

  decide(
    ids: readonly number[],
    cost: number,
    now: number,
  ): { allowed: boolean; remaining: number[] } {
    const states = ids.map((i) => {
      const e = (DESCRIPTORS[i] as Entry[])[0] as Entry;
      const r = RULES[e.key] as (typeof RULES)[string];
      const id = `${e.key}=${e.value}`;
      let b = this.#buckets.get(id);
      if (b === undefined) {
        b = { tokens: r.capacity, refilledAt: now };
        this.#buckets.set(id, b);
      }
      while (b.refilledAt + r.interval <= now && b.tokens < r.capacity) {
        b.tokens = Math.min(r.capacity, b.tokens + r.rate);
        b.refilledAt += r.interval;
      }
      if (b.tokens === r.capacity) b.refilledAt = now;
      return { b, r };
    });
    const allowed = states.every(({ b, r }) => b.tokens >= cost && cost <= r.capacity);
    if (allowed) for (const { b } of states) b.tokens -= cost;
    return { allowed, remaining: states.map(({ b }) => b.tokens) };
  }
}

describe("gateway decisions", () => {
  it("equal the naive model for any requests, costs and clock steps", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            ids: fc.uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 5 }),
            cost: fc.integer({ min: 1, max: 3 }),
            step: fc.oneof(
              fc.constant(0),
              fc.integer({ min: 0, max: 1500 }),
              fc.integer({ min: 0, max: 70_000 }),
            ),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        (requests) => {
          let now = 1_000_000;
          const clock = () => now;
          const limiter = new RateLimiter({
            policy: { capacity: 1, refillRate: 1, interval: 1000 },
            store: new MemoryStore({ clock }),
            clock,
          });
          const engine = new Engine(
            limiter,
            buildConfig([parseConfigFile("p.yaml", CONFIG)]),
            { shadow: false, local: true },
            new GatewayMetrics(),
          );
          const model = new Model();
          for (const { ids, cost, step } of requests) {
            now += step;
            const v = engine.decide(
              "p",
              ids.map((i) => DESCRIPTORS[i] as Entry[]),
              cost,
            ) as Verdict;
            const m = model.decide(ids, cost, now);
            expect(v.code).toBe(m.allowed ? "OK" : "OVER_LIMIT");
            if (
              m.allowed ||
              ids.every(
                (i) =>
                  cost <= (RULES[(DESCRIPTORS[i] as Entry[])[0]?.key as string]?.capacity ?? 0),
              )
            ) {
              expect(v.statuses.map((s) => s.remaining)).toEqual(m.remaining);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
