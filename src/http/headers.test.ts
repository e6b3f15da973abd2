import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRateLimitList } from "../../test/ratelimit-fields.js";
import type { Decision } from "../core/decision.js";
import type { PolicyInput } from "../core/policy.js";
import { RateLimiter } from "../limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
import { headerList, policySet, retryAfterSeconds } from "./headers.js";

const T0 = 1_700_000_000_500;

function setup(policies: PolicyInput[]) {
  let t = T0;
  const limiter = new RateLimiter({ policies, store: new MemoryStore({ clock: () => t }) });
  const set = policySet(limiter.policies);
  return {
    set,
    at(ms: number) {
      t = ms;
    },
    consume: (cost = 1) => limiter.check("client", cost, true, limiter.policies) as Decision,
  };
}

function asMap(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i] as string] = list[i + 1] as string;
  return out;
}

describe("response headers", () => {
  it("give the tutorial's burst: remaining 9..0, then Retry-After 1", () => {
    const { set, consume } = setup([
      { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
    ]);
    for (let i = 9; i >= 0; i--) {
      const d = consume();
      expect(asMap(headerList(set, d, true, true, false))).toEqual({
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": String(i),
        // resetAt is T0 + 1000 = ...001.5 s: rounded up.
        "x-ratelimit-reset": "1700000002",
        "ratelimit-policy": '"burst";q=10;w=5',
        ratelimit: `"burst";r=${i};t=1`,
      });
    }
    const denied = consume();
    expect(denied.allowed).toBe(false);
    expect(asMap(headerList(set, denied, true, true, true))).toMatchObject({
      "x-ratelimit-remaining": "0",
      "retry-after": "1",
    });
  });

  it("list every policy in the IETF fields, and parse back as structured fields", () => {
    const { set, consume, at } = setup([
      { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
      { name: "daily", capacity: 1000, refillRate: 1000, interval: "1d" },
      { name: "fast", capacity: 3, refillRate: 1, interval: 100 },
    ]);
    consume();
    at(T0 + 60_000);
    const headers = asMap(headerList(set, consume(), false, true, false));
    expect(Object.keys(headers)).toEqual(["ratelimit-policy", "ratelimit"]);
    expect(parseRateLimitList(headers["ratelimit-policy"] as string)).toEqual([
      { id: "burst", params: { q: 10, w: 5 } },
      { id: "daily", params: { q: 1000, w: 86_400 } },
      { id: "fast", params: { q: 3, w: 1 } },
    ]);
    // At T0 + 60 s the daily bucket (refilled at T0) refills at T0 + 1 d.
    expect(parseRateLimitList(headers.ratelimit as string)).toEqual([
      { id: "burst", params: { r: 9, t: 1 } },
      { id: "daily", params: { r: 998, t: 86_400 - 60 } },
      { id: "fast", params: { r: 2, t: 1 } },
    ]);
  });

  it("send only what the mode asks for, and Retry-After on every 429", () => {
    const { set, consume } = setup([{ capacity: 1, refillRate: 1, interval: 1000 }]);
    const allowed = consume();
    const denied = consume();
    expect(Object.keys(asMap(headerList(set, allowed, true, false, false)))).toEqual([
      "x-ratelimit-limit",
      "x-ratelimit-remaining",
      "x-ratelimit-reset",
    ]);
    expect(headerList(set, allowed, false, false, false)).toEqual([]);
    expect(headerList(set, denied, false, false, true)).toEqual(["retry-after", "1"]);
  });

  it("give Retry-After in whole seconds, at least 1, never before the tokens are back", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 50 })), {
          minLength: 1,
          maxLength: 30,
        }),
        (capacity, refillRate, interval, steps) => {
          const { set, consume, at } = setup([
            { name: "a", capacity, refillRate, interval },
            { name: "b", capacity: capacity + 5, refillRate: 1, interval: interval * 3 },
          ]);
          let t = T0;
          for (const [dt, rawCost] of steps) {
            t += dt;
            at(t);
            const cost = Math.min(rawCost, capacity);
            const d = consume(cost);
            const headers = asMap(headerList(set, d, true, true, !d.allowed));
            for (const value of Object.values(headers)) expect(value).toMatch(/^[\x20-\x7e]+$/);
            expect(headers["x-ratelimit-reset"]).toBe(String(Math.ceil(d.resetAt / 1000)));
            expect(headers["x-ratelimit-limit"]).toBe(String(d.limit));
            const members = parseRateLimitList(headers.ratelimit as string);
            expect(members.map((m) => m.id)).toEqual(["a", "b"]);
            for (const [i, m] of members.entries()) {
              const s = d.policies[i] as Decision["policies"][number];
              expect(m.params.r).toBe(s.remaining);
              expect((m.params.t as number) * 1000).toBeGreaterThanOrEqual(s.resetAt - t);
              expect((m.params.t as number) * 1000).toBeLessThan(s.resetAt - t + 1000);
            }
            if (!d.allowed) {
              const seconds = Number(headers["retry-after"]);
              expect(Number.isInteger(seconds) && seconds >= 1).toBe(true);
              expect(seconds * 1000).toBeGreaterThanOrEqual(d.retryAfter);
              expect(seconds * 1000).toBeLessThan(Math.max(d.retryAfter, 1000) + 1000);
              const denying = members.find((m) => m.id === d.policy) as (typeof members)[number];
              expect(seconds).toBeGreaterThanOrEqual(denying.params.t as number);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("answer a run of denials of one policy as freshly built headers would, whatever the header mode", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 1500 }),
            fc.integer({ min: 1, max: 5 }),
            fc.boolean(),
            fc.boolean(),
            fc.boolean(),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        (capacity, interval, steps) => {
          const { set, consume, at } = setup([{ name: "a", capacity, refillRate: 1, interval }]);
          let t = T0;
          for (const [dt, cost, legacy, ietf, twice] of steps) {
            t += dt;
            at(t);
            for (let i = twice ? 2 : 1; i > 0; i--) {
              const d = consume(Math.min(cost, capacity));
              const expected = headerList(policySet(set.list), d, legacy, ietf, !d.allowed);
              expect(headerList(set, d, legacy, ietf, !d.allowed)).toEqual(expected);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("give clients with the same numbers one list, and a client with other numbers its own", () => {
    let t = T0;
    const limiter = new RateLimiter({
      policy: { name: "a", capacity: 5, refillRate: 1, interval: 1000 },
      store: new MemoryStore({ clock: () => t }),
    });
    const set = policySet(limiter.policies);
    const consume = (key: string) => limiter.check(key, 1, true, limiter.policies) as Decision;
    const first = headerList(set, consume("one"), true, true, false);
    const same = headerList(set, consume("two"), true, true, false);
    expect(same).toBe(first);
    const other = headerList(set, consume("two"), true, true, false);
    expect(asMap(other)).toMatchObject({ "x-ratelimit-remaining": "3", ratelimit: '"a";r=3;t=1' });
    expect(asMap(first)).toMatchObject({ "x-ratelimit-remaining": "4", ratelimit: '"a";r=4;t=1' });
    t += 1500;
    const later = headerList(set, consume("three"), true, true, false);
    expect(later).not.toBe(first);
    expect(asMap(later)["x-ratelimit-reset"]).toBe(String(Math.ceil((t + 1000) / 1000)));
    expect(headerList(set, consume("four"), false, true, false)).toEqual([
      "ratelimit-policy",
      '"a";q=5;w=5',
      "ratelimit",
      '"a";r=4;t=1',
    ]);
  });

  it("never let Retry-After fall below the denying policy's next refill", () => {
    const d = {
      retryAfter: 10,
      resetAt: 2_500,
      now: 0,
    } as Decision;
    expect(retryAfterSeconds(d)).toBe(3);
    expect(retryAfterSeconds({ ...d, resetAt: -5, retryAfter: 0 })).toBe(1);
  });
});
