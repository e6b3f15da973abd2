import { describe, expect, it } from "vitest";
import { RateLimiter } from "../index.js";
import { observeBurst, observeSteady } from "./infer.js";
import type { Observation } from "./probe.js";
import { readRateLimitHeaders } from "./rate-limit-headers.js";

const NO_HEADERS = readRateLimitHeaders(new Headers(), 0);

/** steadyRun sends one request every `gap` ms for `duration` ms to a fresh bucket, at exact instants. */
async function steadyRun(
  policy: { capacity: number; refillRate: number; interval: number },
  perSecond: number,
  seconds: number,
): Promise<Observation[]> {
  let now = 1_000_000;
  const start = now;
  const limiter = new RateLimiter({ policy, clock: () => now });
  const out: Observation[] = [];
  const count = Math.round(perSecond * seconds);
  for (let i = 0; i < count; i++) {
    now = start + Math.round((i * 1000) / perSecond);
    const d = await limiter.consume("probe");
    out.push({
      n: i + 1,
      t: now - start,
      status: d.allowed ? 200 : 429,
      remaining: d.remaining,
      reset: null,
      retryAfter: null,
      headers: NO_HEADERS,
    });
  }
  return out;
}

describe("observeSteady", () => {
  it.each([
    // capacity, refillRate, interval, rate, seconds
    [10, 2, 1000, 5, 10],
    [10, 2, 200, 40, 2],
    [10, 2, 1000, 20, 10],
    [100, 10, 1000, 50, 10],
    [5, 1, 100, 20, 3],
    [30, 5, 500, 25, 8],
    [10, 1, 50, 40, 3],
  ])(
    "capacity %i, %i per %i ms, probed at %i req/s for %i s",
    async (capacity, refillRate, interval, perSecond, seconds) => {
      const run = await steadyRun({ capacity, refillRate, interval }, perSecond, seconds);
      const o = observeSteady(run, 1000 / perSecond);
      const rate = (refillRate * 1000) / interval;
      expect(o.burst).toBeGreaterThanOrEqual(capacity);
      expect(Math.abs((o.capacity ?? 0) - capacity)).toBeLessThanOrEqual(
        Math.max(1, capacity * 0.1),
      );
      expect(Math.abs((o.refillPerSecond ?? 0) - rate)).toBeLessThanOrEqual(rate * 0.1);
    },
  );

  it("is exact for DESIGN's demo policy at 5 req/s", async () => {
    const run = await steadyRun({ capacity: 10, refillRate: 2, interval: 1000 }, 5, 10);
    expect(observeSteady(run, 200)).toEqual({ burst: 14, capacity: 10, refillPerSecond: 2 });
  });

  it("knows nothing when the run was never blocked", async () => {
    const run = await steadyRun({ capacity: 10, refillRate: 2, interval: 1000 }, 1, 10);
    expect(observeSteady(run, 1000)).toEqual({
      burst: null,
      capacity: null,
      refillPerSecond: null,
    });
  });

  it("has no capacity when the first request was already blocked", () => {
    const blocked = [1, 2, 3].map((n) => ({
      n,
      t: n * 400,
      status: 429,
      remaining: 0,
      reset: null,
      retryAfter: null,
      headers: NO_HEADERS,
    }));
    expect(observeSteady(blocked, 400)).toEqual({
      burst: 0,
      capacity: null,
      refillPerSecond: null,
    });
  });
});

describe("observeBurst", () => {
  const burst = (statuses: number[]): Observation[] =>
    statuses.map((status, i) => ({
      n: i + 1,
      t: i,
      status,
      remaining: null,
      reset: null,
      retryAfter: null,
      headers: NO_HEADERS,
    }));
  const tenThenFive = burst([...Array(10).fill(200), ...Array(5).fill(429)]);

  it.each([
    [
      { waited: 3, allowed: 6, blocked: 1 },
      { burst: 10, capacity: 10, refillPerSecond: 2 },
    ],
    // Full again: the refill was at least this fast, but how fast is unknown.
    [
      { waited: 30, allowed: 10, blocked: 1 },
      { burst: 10, capacity: 10, refillPerSecond: null },
    ],
    [
      { waited: 0, allowed: 0, blocked: 1 },
      { burst: 10, capacity: 10, refillPerSecond: null },
    ],
  ])("reads the refill check %j", (refill, want) => {
    expect(observeBurst(tenThenFive, refill)).toEqual(want);
  });

  it("has no burst when nothing was blocked", () => {
    expect(observeBurst(burst([200, 200]), { waited: 3, allowed: 3, blocked: 0 })).toEqual({
      burst: null,
      capacity: null,
      refillPerSecond: null,
    });
  });
});
