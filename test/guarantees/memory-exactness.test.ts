/**
 * Issue 8 item 1, the memory half at full size: 10,000 random sequences
 * (time moving forward, back and far ahead; costs; one to three policies;
 * peeks; several keys) through a RateLimiter on MemoryStore, every decision
 * compared with the naive reference model (test/reference-model.ts).
 * (test/properties.test.ts checks invariants on the same kind of sequences.)
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryStore, RateLimiter } from "../../src/index.js";
import { policiesArb, stepArb } from "../helpers/sequences.js";
import { ReferenceLimiter } from "../reference-model.js";

describe("guarantee: the memory store agrees with the reference model", () => {
  it("10,000 random sequences, every decision identical", () => {
    let sequences = 0;
    let decisions = 0;
    fc.assert(
      fc.property(
        policiesArb,
        fc.array(stepArb, { maxLength: 60, size: "medium" }),
        (ps, steps) => {
          let t = 1_700_000_000_000;
          const limiter = new RateLimiter({
            policies: ps,
            store: new MemoryStore({ clock: () => t }),
          });
          const ref = new ReferenceLimiter(ps);
          const minCapacity = Math.min(...ps.map((p) => p.capacity));
          for (const s of steps) {
            t += s.dt;
            const cost = Math.min(s.cost, minCapacity);
            const d = limiter.check(s.key, cost, !s.peek, limiter.policies) as Awaited<
              ReturnType<RateLimiter["consume"]>
            >;
            expect({
              allowed: d.allowed,
              policy: d.policy,
              remaining: d.remaining,
              resetAt: d.resetAt,
              retryAfter: d.retryAfter,
            }).toEqual(ref.decide(s.key, cost, t, !s.peek));
            decisions++;
          }
          sequences++;
        },
      ),
      { numRuns: 10_000 },
    );
    console.log(
      `guarantee: memory exactness: ${sequences} random sequences, ${decisions} decisions, 100% identical to the reference model`,
    );
  });
});
