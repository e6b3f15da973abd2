import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryStore, RateLimiter } from "../src/index.js";
import { policiesArb, policyArb, stepArb } from "./helpers/sequences.js";

const runsFor = (n: number) => ({ numRuns: process.env.CI ? n : Math.ceil(n / 4) });

describe("invariants", () => {
  it("never reports more tokens than capacity, and never admits more than capacity + refills", async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        fc.array(
          fc.record({ dt: fc.integer({ min: 0, max: 700 }), cost: fc.integer({ min: 1, max: 4 }) }),
          { maxLength: 80 },
        ),
        async (p, steps) => {
          let t = 0;
          const limiter = new RateLimiter({
            policy: p,
            store: new MemoryStore({ clock: () => t }),
          });
          const admitted: { at: number; cost: number }[] = [];
          for (const s of steps) {
            t += s.dt;
            const cost = Math.min(s.cost, p.capacity);
            const d = await limiter.consume("k", { cost });
            expect(d.remaining).toBeLessThanOrEqual(p.capacity);
            expect(d.remaining).toBeGreaterThanOrEqual(0);
            if (d.allowed) admitted.push({ at: t, cost });
          }
          // Over every window [t0, t1], admitted cost <= capacity + refillRate * ceil((t1 - t0) / interval).
          for (let i = 0; i < admitted.length; i++) {
            let spent = 0;
            for (let j = i; j < admitted.length; j++) {
              const a = admitted[i] as { at: number };
              const b = admitted[j] as { at: number; cost: number };
              spent += b.cost;
              const refills = Math.ceil((b.at - a.at) / p.interval);
              expect(spent).toBeLessThanOrEqual(p.capacity + p.refillRate * refills);
            }
          }
        },
      ),
      runsFor(1000),
    );
  });

  it("a denied request changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(policiesArb, fc.array(stepArb, { maxLength: 40 }), async (ps, steps) => {
        let t = 0;
        const limiter = new RateLimiter({
          policies: ps,
          store: new MemoryStore({ clock: () => t }),
        });
        const minCapacity = Math.min(...ps.map((p) => p.capacity));
        for (const s of steps) {
          t += Math.max(0, s.dt);
          const cost = Math.min(s.cost, minCapacity);
          const before = await limiter.peek(s.key, { cost: 1 });
          const d = await limiter.consume(s.key, { cost });
          if (!d.allowed) {
            const after = await limiter.peek(s.key, { cost: 1 });
            expect(after.policies).toEqual(before.policies);
          }
        }
      }),
      runsFor(1000),
    );
  });
});
