import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide } from "../core/decision.js";
import { policies as toPolicies } from "../core/policy.js";
import type { RateLimitOutcome } from "../http/handler.js";
import { HEADER, headerList, policySet } from "../http/headers.js";
import { merge, type Stacked } from "./stack.js";

/**
 * textMerge is how stacked headers were merged before decisions were: by
 * reading the header text back. Kept here as the reference the merge of
 * decisions must match byte for byte.
 */
function textMerge(earlier: readonly string[], current: readonly string[], limited: boolean) {
  const find = (list: readonly string[], name: string) => {
    for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
    return undefined;
  };
  const joined = (a: string | undefined, b: string | undefined) =>
    a === undefined ? b : b === undefined ? a : `${a}, ${b}`;
  const mine = find(current, HEADER.remaining);
  const theirs = find(earlier, HEADER.remaining);
  const legacy =
    mine === undefined || (theirs !== undefined && !limited && Number(theirs) <= Number(mine))
      ? earlier
      : current;
  const out: string[] = [];
  const limit = find(legacy, HEADER.limit);
  if (limit !== undefined) {
    out.push(HEADER.limit, limit, HEADER.remaining, find(legacy, HEADER.remaining) as string);
    out.push(HEADER.reset, find(legacy, HEADER.reset) as string);
  }
  const policy = joined(find(earlier, HEADER.policy), find(current, HEADER.policy));
  if (policy !== undefined) out.push(HEADER.policy, policy);
  const state = joined(find(earlier, HEADER.rateLimit), find(current, HEADER.rateLimit));
  if (state !== undefined) out.push(HEADER.rateLimit, state);
  const retry = find(current, HEADER.retryAfter) ?? find(earlier, HEADER.retryAfter);
  if (retry !== undefined) out.push(HEADER.retryAfter, retry);
  return out;
}

const policyArb = fc.record({
  capacity: fc.integer({ min: 1, max: 50 }),
  refillRate: fc.integer({ min: 1, max: 50 }),
  interval: fc.integer({ min: 1, max: 120_000 }),
});

/** One stacked limiter: its policies, a store reply, and its header settings. */
const limiterArb = fc.record({
  policies: fc.array(policyArb, { minLength: 1, maxLength: 3 }),
  shares: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(120_000)), {
    minLength: 3,
    maxLength: 3,
  }),
  allowed: fc.boolean(),
  legacy: fc.boolean(),
  ietf: fc.boolean(),
});

describe("stacked limiters: decisions merged, then formatted", () => {
  it("writes byte for byte what merging the header text gave, for random stacks of 1 to 4", () => {
    let stacks = 0;
    let names = 0;
    fc.assert(
      fc.property(
        fc.array(limiterArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (limiters, now) => {
          let stack: Stacked | undefined;
          let text: readonly string[] | undefined;
          for (const l of limiters) {
            const list = toPolicies(l.policies.map((p) => ({ ...p, name: `p${names++}` })));
            const reply: number[] = [now, l.allowed ? 1 : 0];
            list.forEach((p, i) => {
              const [t, ago] = l.shares[i] as [number, number];
              reply.push(Math.floor(t * p.capacity), now - (ago % p.interval));
            });
            const decision = decide(list, reply, 1, "store");
            const set = policySet(list);
            const limited = !decision.allowed;
            const headers =
              l.legacy || l.ietf || limited
                ? headerList(set, decision, l.legacy, l.ietf, limited)
                : [];
            const outcome: RateLimitOutcome = {
              decision,
              limited,
              headers,
              response: undefined,
              set,
              legacy: l.legacy,
              ietf: l.ietf,
              sent: undefined,
            };
            stack = merge(stack, outcome);
            text = text === undefined ? headers : textMerge(text, headers, limited);
            expect(stack.headers).toEqual(text);
          }
          stacks++;
        },
      ),
      { numRuns: 3000 },
    );
    expect(stacks).toBe(3000);
  });

  it("returns the first limiter's outcome itself: one limiter on a request allocates nothing", () => {
    const list = toPolicies([{ capacity: 2, refillRate: 1, interval: 1000 }]);
    const decision = decide(list, [0, 1, 1, 0], 1, "store");
    const set = policySet(list);
    const outcome: RateLimitOutcome = {
      decision,
      limited: false,
      headers: headerList(set, decision, true, true, false),
      response: undefined,
      set,
      legacy: true,
      ietf: true,
      sent: undefined,
    };
    expect(merge(undefined, outcome)).toBe(outcome);
  });
});
