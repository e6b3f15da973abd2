/**
 * Random traffic for property tests: policy lists named p0, p1, ... and
 * steps that move time (sometimes backwards, sometimes far ahead) and spend
 * or peek a cost on one of a few keys. Shared so every property test draws
 * from the same space.
 */
import fc from "fast-check";
import type { RefPolicy } from "../reference-model.js";

export const policyArb = fc.record({
  capacity: fc.integer({ min: 1, max: 12 }),
  refillRate: fc.integer({ min: 1, max: 5 }),
  interval: fc.integer({ min: 1, max: 2000 }),
});

export const policiesArb = fc
  .array(policyArb, { minLength: 1, maxLength: 3 })
  .map((ps) => ps.map((p, i) => ({ ...p, name: `p${i}` })) as RefPolicy[]);

/** A step moves time by `dt` ms and spends (or peeks) `cost` on one of a few keys. */
export const stepArb = fc.record({
  dt: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 1500 }) },
    { weight: 1, arbitrary: fc.integer({ min: -3000, max: 0 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 50_000 }) },
  ),
  key: fc.constantFrom("a", "b", "c"),
  cost: fc.integer({ min: 1, max: 12 }),
  peek: fc.boolean(),
});
