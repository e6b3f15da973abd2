import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.js";
import { checkAmount, checkCost, parseDuration, policies, policy } from "./policy.js";

const ok = { capacity: 10, refillRate: 2, interval: 1000 };

describe("policy validation", () => {
  it("accepts a policy and derives the time to refill from empty", () => {
    expect(policy(ok)).toEqual({
      name: "default",
      ...ok,
      window: 5000,
      maxDebt: 10,
      blockFor: 0,
    });
    expect(policy({ capacity: 5, refillRate: 2, interval: "1s" }).window).toBe(3000);
  });
  it("takes a policy kept in a const, where TypeScript widens its interval to string", () => {
    const login = { name: "login", capacity: 5, refillRate: 1, interval: "1m" };
    expect(policy(login).interval).toBe(60_000);
    const typo = { capacity: 5, refillRate: 1, interval: "1 minute" };
    expect(() => policy(typo)).toThrow(/interval/);
  });

  it.each([
    ["capacity", 0],
    ["capacity", -1],
    ["capacity", 2.5],
    ["capacity", Number.NaN],
    ["capacity", Number.POSITIVE_INFINITY],
    ["capacity", 2 ** 53],
    ["capacity", "10"],
    ["refillRate", 0],
    ["refillRate", 0.5],
    ["interval", 0],
    ["interval", 1.5],
    ["interval", -1000],
    ["interval", "soon"],
    ["interval", Number.NaN],
    ["maxDebt", -1],
    ["maxDebt", 1.5],
    ["maxDebt", "5"],
    ["maxDebt", Number.MAX_SAFE_INTEGER],
    ["blockFor", 0],
    ["blockFor", -5],
    ["blockFor", 2.5],
    ["blockFor", "forever"],
    ["blockFor", 366 * 86_400_000],
  ])("rejects %s = %s naming the option, the value and the fix", (field, value) => {
    const error = (() => {
      try {
        policy({ ...ok, [field]: value }, "policies[0]");
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.option).toBe(`policies[0].${field}`);
    expect(e.code).toBe("ERR_FLOODGATE_CONFIG");
    expect(e.message).toContain(`"policies[0].${field}"`);
    expect(e.message).toContain("Fix:");
  });

  it("takes capacity, refill and debt up to Number.MAX_SAFE_INTEGER, no further", () => {
    const max = Number.MAX_SAFE_INTEGER;
    const big = policy({ capacity: max, refillRate: max, interval: 1000, maxDebt: 0 });
    expect(big).toMatchObject({ capacity: max, refillRate: max, maxDebt: 0, window: 1000 });
    expect(() => policy({ capacity: max, refillRate: 1, interval: 1000 })).toThrow(
      /"policy.maxDebt" must be an integer from 0 to 0/,
    );
    // The time to refill from empty saturates rather than passing 2^53.
    expect(
      policy({ capacity: 2 ** 52, refillRate: 1, interval: 86_400_000, maxDebt: 0 }).window,
    ).toBe(max);
    expect(policy({ ...ok, maxDebt: 0, blockFor: "1m" })).toMatchObject({
      maxDebt: 0,
      blockFor: 60_000,
    });
  });

  it("rejects bad names and unknown fields", () => {
    expect(() => policy({ ...ok, name: "" })).toThrow(/policy.name/);
    expect(() => policy({ ...ok, name: "has space" })).toThrow(/"has space"/);
    expect(() => policy({ ...ok, name: "x".repeat(65) })).toThrow(/1 to 64/);
    expect(() => policy({ ...ok, burst: 5 } as never)).toThrow(
      /"policy.burst" is not a policy option/,
    );
    expect(() => policy(null as never)).toThrow(/must be an object/);
  });

  it("requires a non-empty list with distinct names", () => {
    expect(() => policies(undefined)).toThrow(/is required/);
    expect(() => policies([])).toThrow(/1 to 16/);
    expect(() => policies([ok, ok])).toThrow(/policies\[1\].name.*repeats/);
    expect(policies(ok).map((p) => p.name)).toEqual(["default"]);
  });

  it("parses durations", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("2s")).toBe(2000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("1d")).toBe(86_400_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("1 week")).toBeNaN();
    expect(parseDuration(null)).toBeNaN();
  });

  it("reads a decimal duration exactly: every whole number of ms it names is accepted", () => {
    // Before: 4.35 * 3_600_000 in doubles is 15_659_999.999999998, refused as not whole
    // (142 of the 2,997 durations 0.1 to 99.9 s, m and h).
    expect(policy({ ...ok, interval: "4.35h" }).interval).toBe(15_660_000);
    expect(parseDuration("1.10s")).toBe(1100);
    expect(parseDuration("0.001s")).toBe(1);
    expect(Number.isInteger(parseDuration("0.5ms"))).toBe(false);
    expect(Number.isInteger(parseDuration("1.0001s"))).toBe(false);
    const units = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])),
        fc.integer({ min: 1, max: 99_999 }),
        fc.integer({ min: 0, max: 3 }),
        (unit, digits, places) => {
          // digits / 10^places of `unit`, written in decimal: "4.35h".
          const text = (digits / 10 ** places).toFixed(places);
          const exact = (digits * units[unit]) / 10 ** places;
          const ms = parseDuration(`${text}${unit}`);
          if (Number.isInteger(exact)) expect(ms).toBe(exact);
          else expect(Number.isInteger(ms)).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("refuses name: null rather than reading it as the default, and shows at most 100 characters of a value", () => {
    expect(() => policy({ ...ok, name: null as never })).toThrow(/"policy.name" .* got null/);
    let message = "";
    try {
      policy({ ...ok, name: "n".repeat(1_000_000) });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('"policy.name"');
    expect(message).toContain("(1000000 characters)");
    expect(message.length).toBeLessThan(400);
  });

  it("says why when the default maxDebt (capacity) does not fit under 2^53", () => {
    const capacity = 2 ** 52 + 1;
    expect(() => policy({ capacity, refillRate: 1, interval: 1000 })).toThrow(
      /"policy.maxDebt" .*left out, it defaults to capacity 4503599627370497, which does not fit.*Fix: give it explicitly, e.g. maxDebt: 0/,
    );
    expect(policy({ capacity, refillRate: 1, interval: 1000, maxDebt: 0 }).maxDebt).toBe(0);
  });

  it("checks a cost against every capacity", () => {
    const list = policies([ok, { name: "small", capacity: 3, refillRate: 1, interval: 1000 }]);
    expect(checkCost(3, list)).toBeUndefined();
    expect(checkCost(4, list)).toMatch(/"small" capacity 3/);
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "1"]) {
      expect(checkCost(bad, list)).toMatch(/whole number >= 1/);
    }
  });

  it("checks an amount given after the fact against 2^53, not capacity", () => {
    expect(checkAmount(Number.MAX_SAFE_INTEGER, 1)).toBeUndefined();
    expect(checkAmount(0, 0)).toBeUndefined();
    for (const bad of [0, -1, 1.5, 2 ** 53, Number.NaN, "1", null]) {
      expect(checkAmount(bad, 1), String(bad)).toMatch(/whole number from 1/);
    }
  });
});
