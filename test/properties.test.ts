import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Decision, MemoryStore, RateLimiter, type Reservation } from "../src/index.js";
import { policiesArb, policyArb, stepArb } from "./helpers/sequences.js";
import { ReferenceLimiter } from "./reference-model.js";

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

/** Policies with debt and (sometimes) blocks, named p0, p1, ... */
const debtPoliciesArb = fc
  .array(
    fc.record({
      capacity: fc.integer({ min: 1, max: 12 }),
      refillRate: fc.integer({ min: 1, max: 5 }),
      interval: fc.integer({ min: 1, max: 2000 }),
      maxDebt: fc.integer({ min: 0, max: 30 }),
      blockFor: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 })),
    }),
    { minLength: 1, maxLength: 3 },
  )
  .map((ps) =>
    ps.map(({ blockFor, ...p }, i) => ({ ...p, name: `p${i}`, ...(blockFor ? { blockFor } : {}) })),
  );

/**
 * A step of traffic after the fact: settle the oldest open reservation,
 * refund, block, or decide. Time only moves forward here: once a clock steps
 * back, a block that had ended may or may not be remembered, depending on
 * whether its bucket was written since (both stores alike, checked in
 * test/redis-properties.test.ts); the model keeps no such detail.
 */
const debtStepArb = fc.record({
  dt: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 1500 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 50_000 }) },
  ),
  key: fc.constantFrom("a", "b"),
  cost: fc.integer({ min: 1, max: 12 }),
  amount: fc.integer({ min: 0, max: 60 }),
  op: fc.constantFrom(
    "consume",
    "consume",
    "peek",
    "reserve",
    "reserve",
    "settle",
    "settle",
    "refund",
    "block",
    "reset",
  ),
});

describe("debt, refunds, reservations and blocks", () => {
  it("the memory store agrees with the reference model on every decision and settle", async () => {
    await fc.assert(
      fc.asyncProperty(
        debtPoliciesArb,
        fc.array(debtStepArb, { maxLength: 50 }),
        async (ps, steps) => {
          let t = 1_700_000_000_000;
          const limiter = new RateLimiter({
            policies: ps,
            store: new MemoryStore({ clock: () => t }),
          });
          const ref = new ReferenceLimiter(ps);
          const minCapacity = Math.min(...ps.map((p) => p.capacity));
          const open: { key: string; r: Reservation }[] = [];
          for (const [i, s] of steps.entries()) {
            t += s.dt;
            const cost = Math.min(s.cost, minCapacity);
            const where = `step ${i} (${s.op}) at ${t}`;
            if (s.op === "reset") {
              await limiter.reset(s.key);
              ref.reset(s.key);
              continue;
            }
            if (s.op === "block") {
              await limiter.block(s.key, s.amount * 100 + 1);
              ref.block(s.key, s.amount * 100 + 1, t);
              continue;
            }
            if (s.op === "refund") {
              await limiter.refund(s.key, { cost: s.amount + 1 });
              ref.settle(s.key, -(s.amount + 1), t);
              continue;
            }
            if (s.op === "settle") {
              const next = open.shift();
              if (next === undefined) continue;
              const settled = await next.r.settle(s.amount);
              const extra = s.amount - next.r.cost;
              const dropped =
                next.r.decision.allowed && extra !== 0 ? ref.settle(next.key, extra, t) : 0;
              expect(settled.dropped, where).toBe(dropped);
              continue;
            }
            let d: Decision;
            if (s.op === "reserve") {
              const r = await limiter.reserve(s.key, { cost });
              open.push({ key: s.key, r });
              d = r.decision;
            } else {
              d = await (s.op === "peek"
                ? limiter.peek(s.key, { cost })
                : limiter.consume(s.key, { cost }));
            }
            const want = ref.decide(s.key, cost, t, s.op !== "peek");
            expect(
              {
                allowed: d.allowed,
                policy: d.policy,
                remaining: d.remaining,
                resetAt: d.resetAt,
                retryAfter: d.retryAfter,
                ...(d.reason === "blocked" ? { blocked: true } : {}),
              },
              where,
            ).toEqual(want);
          }
        },
      ),
      runsFor(2000),
    );
  });

  it("admitted cost + settled extra never exceeds capacity + refillRate x whole intervals + maxDebt", async () => {
    await fc.assert(
      fc.asyncProperty(
        debtPoliciesArb.map((ps) => ps[0] as (typeof ps)[number]),
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 700 }),
            cost: fc.integer({ min: 1, max: 12 }),
            actual: fc.integer({ min: 0, max: 40 }),
            op: fc.constantFrom("consume", "reserve", "settle", "settle"),
          }),
          { maxLength: 80 },
        ),
        async (p, steps) => {
          let t = 0;
          const limiter = new RateLimiter({
            policy: p,
            store: new MemoryStore({ clock: () => t }),
          });
          // Each entry: tokens taken from the bucket at `at` (negative: given back by a settle).
          const drawn: { at: number; tokens: number }[] = [];
          const open: Reservation[] = [];
          for (const s of steps) {
            t += s.dt;
            const cost = Math.min(s.cost, p.capacity);
            if (s.op === "settle") {
              const r = open.shift();
              if (r === undefined) continue;
              const settled = await r.settle(s.actual);
              if (settled.applied) drawn.push({ at: t, tokens: settled.extra - settled.dropped });
              continue;
            }
            let d: Decision;
            if (s.op === "reserve") {
              const r = await limiter.reserve("k", { cost });
              d = r.decision;
              if (d.allowed) open.push(r);
            } else {
              d = await limiter.consume("k", { cost });
            }
            expect(d.remaining).toBeGreaterThanOrEqual(0);
            expect(d.remaining).toBeLessThanOrEqual(p.capacity);
            if (d.allowed) drawn.push({ at: t, tokens: cost });
          }
          for (let i = 0; i < drawn.length; i++) {
            let spent = 0;
            for (let j = i; j < drawn.length; j++) {
              const a = drawn[i] as { at: number };
              const b = drawn[j] as { at: number; tokens: number };
              spent += b.tokens;
              const refills = Math.ceil((b.at - a.at) / p.interval);
              expect(spent).toBeLessThanOrEqual(p.capacity + p.refillRate * refills + p.maxDebt);
            }
          }
        },
      ),
      runsFor(1000),
    );
  });
});
