/**
 * Random sequences (time moving forward and back, costs, several policies
 * with debt and blocks, peeks, resets, charges and refunds after the fact,
 * blocks by hand) run against RedisStore with an injected clock and against
 * MemoryStore: every reply must be identical, and through the limiter (with
 * its cache of denials) every allowed/retryAfter too.
 */
import fc from "fast-check";
import type { Redis } from "ioredis";
import { expect } from "vitest";
import { policies as toPolicies } from "../../src/core/policy.js";
import { MemoryStore, type PolicyInput, RateLimiter, RedisStore } from "../../src/index.js";

const policyArb = fc.record({
  capacity: fc.integer({ min: 1, max: 20 }),
  refillRate: fc.integer({ min: 1, max: 10 }),
  interval: fc.integer({ min: 1, max: 5000 }),
  maxDebt: fc.integer({ min: 0, max: 40 }),
  blockFor: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 6000 }) },
  ),
});

const stepArb = fc.record({
  advance: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 3000 }) },
    { weight: 1, arbitrary: fc.integer({ min: -2000, max: 0 }) },
  ),
  key: fc.constantFrom("a", "b", "{a}"),
  cost: fc.integer({ min: 1, max: 20 }),
  delta: fc.integer({ min: -60, max: 60 }),
  op: fc.constantFrom(
    "consume",
    "consume",
    "consume",
    "peek",
    "reset",
    "adjust",
    "adjust",
    "block",
  ),
});

let runs = 0;

export async function redisAgreesWithMemory(client: Redis, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      fc.array(policyArb, { minLength: 1, maxLength: 3 }),
      fc.array(stepArb, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 2 ** 41 }),
      async (inputs, steps, start) => {
        const named: PolicyInput[] = inputs.map(({ blockFor, ...p }, i) => ({
          ...p,
          name: `p${i}`,
          ...(blockFor > 0 ? { blockFor } : {}),
        }));
        const list = toPolicies(named);
        const minCap = Math.min(...named.map((p) => p.capacity));
        let t = start;
        const prefix = `prop${++runs}`;
        const redis = new RedisStore({ client, prefix, now: () => t, timeout: 5000 });
        const memory = new MemoryStore({ clock: () => t });
        const viaRedis = new RateLimiter({
          policies: named,
          store: new RedisStore({ client, prefix: `${prefix}l`, now: () => t, timeout: 5000 }),
          onStoreError: "deny",
        });
        const viaMemory = new RateLimiter({
          policies: named,
          store: new MemoryStore({ clock: () => t }),
        });
        // A cached denial stands until its wait is over, which assumes a clock
        // that never steps back (Redis TIME); once this test's clock has, only
        // the stores themselves are compared.
        let steppedBack = false;
        for (const [i, s] of steps.entries()) {
          t += s.advance;
          if (s.advance < 0) steppedBack = true;
          const cost = ((s.cost - 1) % minCap) + 1;
          if (s.op === "reset") {
            await redis.reset(s.key, list);
            memory.reset(s.key, list);
            await viaRedis.reset(s.key);
            await viaMemory.reset(s.key);
            continue;
          }
          if (s.op === "adjust" || s.op === "block") {
            const fromRedis =
              s.op === "adjust"
                ? await redis.adjust(s.key, list, s.delta)
                : await redis.block(s.key, list, Math.abs(s.delta) * 100 + 1);
            const fromMemory =
              s.op === "adjust"
                ? memory.adjust(s.key, list, s.delta)
                : memory.block(s.key, list, Math.abs(s.delta) * 100 + 1);
            expect(Array.from(fromRedis), `step ${i} (${s.op}) at ${t}`).toEqual(
              Array.from(fromMemory),
            );
            if (s.op === "block") {
              await viaRedis.block(s.key, Math.abs(s.delta) * 100 + 1);
              await viaMemory.block(s.key, Math.abs(s.delta) * 100 + 1);
            } else if (s.delta < 0) {
              await viaRedis.refund(s.key, { cost: -s.delta });
              await viaMemory.refund(s.key, { cost: -s.delta });
            } else if (s.delta > 0) {
              const a = await viaRedis.reserve(s.key, { cost: 1 });
              const b = await viaMemory.reserve(s.key, { cost: 1 });
              expect(a.decision.allowed, `step ${i} reserve`).toBe(b.decision.allowed);
              expect(await a.settle(s.delta + 1), `step ${i} settle`).toEqual(
                await b.settle(s.delta + 1),
              );
            }
            continue;
          }
          const spend = s.op === "consume";
          const fromRedis = Array.from(await redis.consume(s.key, list, cost, spend));
          const fromMemory = Array.from(memory.consume(s.key, list, cost, spend));
          expect(fromRedis, `step ${i} at ${t}`).toEqual(fromMemory);
          if (steppedBack) continue;
          const a = spend
            ? await viaRedis.consume(s.key, { cost })
            : await viaRedis.peek(s.key, { cost });
          const b = spend
            ? await viaMemory.consume(s.key, { cost })
            : await viaMemory.peek(s.key, { cost });
          expect(["store", "cached", "blocked"], `step ${i} reason`).toContain(a.reason);
          expect(
            { allowed: a.allowed, retryAfter: a.retryAfter, blocked: a.reason === "blocked" },
            `limiter step ${i} at ${t}`,
          ).toEqual({
            allowed: b.allowed,
            retryAfter: b.retryAfter,
            blocked: b.reason === "blocked",
          });
        }
        await client.del(
          ...list.flatMap((p) =>
            ["a", "b", "{a}"].flatMap((k) => [
              `${prefix}:{${k}}:${p.name}`,
              `${prefix}l:{${k}}:${p.name}`,
            ]),
          ),
        );
      },
    ),
    { numRuns },
  );
}
