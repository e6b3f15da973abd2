import { describe, expect, it } from "vitest";
import { readRateLimitHeaders, resetSeconds, retryAfterSeconds } from "./rate-limit-headers.js";

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0, 300);
const NOW_S = Math.floor(NOW / 1000);

function read(headers: Record<string, string>) {
  return readRateLimitHeaders(new Headers(headers), NOW);
}

describe("readRateLimitHeaders", () => {
  it.each([
    {
      case: "DESIGN's IETF example: the tighter of two policies",
      headers: {
        "RateLimit-Policy": '"burst";q=10;w=5, "daily";q=1000;w=86400',
        RateLimit: '"burst";r=9;t=1, "daily";r=999;t=87',
      },
      want: { limit: 10, remaining: 9, reset: 1, window: 5 },
    },
    {
      case: "the daily policy is tighter",
      headers: {
        "RateLimit-Policy": '"burst";q=10;w=5, "daily";q=1000;w=86400',
        RateLimit: '"burst";r=9;t=1, "daily";r=3;t=87',
      },
      want: { limit: 1000, remaining: 3, reset: 87, window: 86400 },
    },
    {
      case: "draft-08 token ids",
      headers: { "RateLimit-Policy": "default;q=100;w=60", RateLimit: "default;r=50;t=30" },
      want: { limit: 100, remaining: 50, reset: 30, window: 60 },
    },
    {
      case: "parameters in any order, extra ones ignored",
      headers: {
        "RateLimit-Policy": '"p";w=10;qu="requests";q=20;pk=:AQID:',
        RateLimit: '"p";t=4;pk=:AQID:;r=0',
      },
      want: { limit: 20, remaining: 0, reset: 4, window: 10 },
    },
    {
      case: "a RateLimit without a matching policy still gives remaining",
      headers: { RateLimit: '"other";r=2;t=1', "RateLimit-Policy": '"p";q=5;w=1' },
      want: { limit: 5, remaining: 2, reset: 1, window: 1 },
    },
    {
      case: "legacy headers alone, reset in Unix seconds",
      headers: {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": String(NOW_S + 2),
      },
      want: { limit: 10, remaining: 0, reset: 2, window: null },
    },
    {
      case: "legacy reset as a delay",
      headers: {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Reset": "42",
      },
      want: { limit: 60, remaining: 59, reset: 42, window: null },
    },
    {
      case: "legacy reset in Unix milliseconds",
      headers: { "X-RateLimit-Limit": "60", "X-RateLimit-Reset": String(NOW + 1500) },
      want: { limit: 60, remaining: null, reset: 2, window: null },
    },
    {
      case: "both: legacy limit and remaining, IETF reset",
      headers: {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": String(NOW_S + 9),
        "RateLimit-Policy": '"burst";q=10;w=5',
        RateLimit: '"burst";r=4;t=1',
      },
      want: { limit: 10, remaining: 4, reset: 1, window: 5 },
    },
    {
      case: "draft-07 dictionary",
      headers: { RateLimit: "limit=10, remaining=9, reset=1" },
      want: { limit: 10, remaining: 9, reset: 1, window: null },
    },
    {
      case: "drafts up to -06: one header per field",
      headers: {
        "RateLimit-Limit": "10, 10;w=5",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "3",
      },
      want: { limit: 10, remaining: 7, reset: 3, window: 5 },
    },
    {
      case: "header names in any case",
      headers: { "x-ratelimit-limit": "3", "ratelimit-policy": '"a";q=3;w=1' },
      want: { limit: 3, remaining: null, reset: null, window: 1 },
    },
  ])("$case", ({ headers, want }) => {
    const got = read(headers);
    expect({
      limit: got.limit,
      remaining: got.remaining,
      reset: got.reset,
      window: got.window,
    }).toEqual(want);
    expect(got.invalid).toEqual([]);
    expect(got.found.length).toBeGreaterThan(0);
  });

  it("lists every announced policy", () => {
    expect(
      read({ "RateLimit-Policy": '"burst";q=10;w=5, "daily";q=1000;w=86400, "noq";w=1' }).policies,
    ).toEqual([
      { name: "burst", limit: 10, window: 5 },
      { name: "daily", limit: 1000, window: 86400 },
    ]);
  });

  it.each([
    [{ "RateLimit-Policy": '"burst";q=10,' }, ["RateLimit-Policy"]],
    [{ "RateLimit-Policy": '"burst";w=5' }, ["RateLimit-Policy"]],
    [{ RateLimit: "r=oops" }, ["RateLimit"]],
    [{ RateLimit: '"burst";r=-1;t=1' }, ["RateLimit"]],
    [
      { "X-RateLimit-Limit": "ten", "X-RateLimit-Remaining": "-1" },
      ["X-RateLimit-Limit", "X-RateLimit-Remaining"],
    ],
    [
      { "RateLimit-Limit": "(1 2)", "RateLimit-Remaining": "x" },
      ["RateLimit-Limit", "RateLimit-Remaining"],
    ],
  ])("ignores unreadable %j and names it", (headers, invalid) => {
    const got = read(headers);
    expect(got.invalid).toEqual(invalid);
    expect([got.limit, got.remaining, got.reset]).toEqual([null, null, null]);
  });

  // What the probe needs from the structured-field parser (RFC 9651): a
  // header that is not a valid List is ignored as a whole, never half read.
  it.each([
    ['"burst";q=10;w=5 "daily";q=1000', "a missing comma"],
    ['"burst;q=10', "an open string"],
    ['"burst";Q=10', "an upper-case parameter key"],
    ['"burst";q=', "a parameter with no value"],
    ['"burst";q=1234567890123456', "an integer of 16 digits"],
    ['"burst";q=10;w=1.2345', "a decimal with 4 fractional digits"],
    ['"bu\\nrst";q=10', "an unknown escape"],
    ['"burst";q=10;', "a trailing semicolon"],
    ['"burst";q=10, "daily";q=1000,', "a trailing comma after a valid member"],
  ])("ignores RateLimit-Policy %j (%s) as a whole", (value) => {
    const got = read({ "RateLimit-Policy": value, RateLimit: '"burst";r=9;t=1' });
    expect(got.invalid).toEqual(["RateLimit-Policy"]);
    expect(got.policies).toEqual([]);
    expect(got.remaining).toBe(9);
  });

  it("reads names as Strings, Tokens or Integers; an inner list or a boolean names nothing", () => {
    const got = read({
      "RateLimit-Policy": '"burst";q=10, default;q=20, 7;q=30, ?1;q=40, (1);q=50',
    });
    expect(got.policies.map((p) => p.name)).toEqual(["burst", "default", "7"]);
  });

  it("reads a structured field with spaces around it and between members", () => {
    const got = read({ "RateLimit-Policy": '  "a";q=1 ,\t"b"; q=2  ' });
    expect(got.policies).toEqual([
      { name: "a", limit: 1, window: null },
      { name: "b", limit: 2, window: null },
    ]);
  });

  it("finds nothing in a response without rate-limit headers", () => {
    const got = read({ "Content-Type": "application/json", "Retry-After": "5" });
    expect(got.found).toEqual([]);
    expect(got.retryAfter).toBe(5);
  });
});

describe("retryAfterSeconds and resetSeconds", () => {
  it.each([
    ["1", 1],
    [" 120 ", 120],
    // HTTP dates have whole seconds: 12:00:03 is 2.7 s after NOW, rounded up.
    [new Date(NOW + 2700).toUTCString(), 3],
    [new Date(NOW - 5000).toUTCString(), 0],
    ["soon", null],
    ["1.5", null],
    ["-1", null],
    // Date.parse reads each of these as a day in 2001 (a wait of 0 s): no HTTP date.
    ["soon 5", null],
    ["-5", null],
    ["1 2", null],
    ["NaN", null],
    ["1e20", null],
    [`1${"0".repeat(400)}`, null],
    ["100000000000000000000", 1e20],
    ["Sunday, 06-Nov-94 08:49:37 GMT", 0],
    ["Sun Nov  6 08:49:37 1994", 0],
    ["Fri, 31 Dec 9999 23:59:59 GMT", Math.ceil((253402300799000 - NOW) / 1000)],
  ])("Retry-After %j is %j s", (value, want) => {
    expect(retryAfterSeconds(value, NOW)).toBe(want);
  });

  it("names a number too large to be one (400 digits) and an unreadable Retry-After as unreadable", () => {
    const huge = `1${"0".repeat(400)}`;
    const got = read({
      "X-RateLimit-Limit": huge,
      "X-RateLimit-Remaining": huge,
      "X-RateLimit-Reset": huge,
      "Retry-After": "soon 5",
    });
    expect([got.limit, got.remaining, got.reset, got.retryAfter]).toEqual([null, null, null, null]);
    expect(got.invalid).toEqual([
      "X-RateLimit-Limit",
      "X-RateLimit-Remaining",
      "X-RateLimit-Reset",
      "Retry-After",
    ]);
  });

  it.each([
    [null, null],
    [0, 0],
    [7, 7],
    [NOW_S + 1, 1],
    [NOW_S - 10, 0],
    [NOW + 999, 1],
  ])("X-RateLimit-Reset %j is %j s", (value, want) => {
    expect(resetSeconds(value, NOW)).toBe(want);
  });
});
