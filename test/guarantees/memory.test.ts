import v8 from "node:v8";
import vm from "node:vm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryStore, RateLimiter } from "../../src/index.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

describe("guarantee: each wall-clock jump of +-1 h grants at most one full bucket", () => {
  it("holds for random traffic around one or two jumps (property)", async () => {
    const HOUR = 3_600_000;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          capacity: fc.integer({ min: 1, max: 20 }),
          refillRate: fc.integer({ min: 1, max: 5 }),
          interval: fc.integer({ min: 10, max: 1000 }),
        }),
        fc.array(
          fc.record({ dt: fc.integer({ min: 0, max: 300 }), cost: fc.integer({ min: 1, max: 3 }) }),
          {
            minLength: 1,
            maxLength: 120,
          },
        ),
        fc.array(fc.record({ at: fc.nat(), jump: fc.constantFrom(HOUR, -HOUR) }), { maxLength: 2 }),
        async (p, steps, jumps) => {
          let wall = 1_700_000_000_000;
          let honest = 0;
          const limiter = new RateLimiter({
            policy: p,
            store: new MemoryStore({ clock: () => wall }),
          });
          let admitted = 0;
          for (const [i, s] of steps.entries()) {
            for (const j of jumps) if (j.at % steps.length === i) wall += j.jump;
            wall += s.dt;
            honest += s.dt;
            const cost = Math.min(s.cost, p.capacity);
            if ((await limiter.consume("client", { cost })).allowed) admitted += cost;
          }
          const fair = p.capacity + p.refillRate * Math.ceil(honest / p.interval);
          const forward = jumps.filter((j) => j.jump > 0).length;
          expect(admitted).toBeLessThanOrEqual(fair + forward * p.capacity);
        },
      ),
      { numRuns: process.env.CI ? 2000 : 300 },
    );
  });
});

describe("guarantee: a flood of unique clients stays under maxKeys and never frees a throttled client", () => {
  it("1,000,000 unique clients through a store capped at 100,000 keys", async () => {
    let t = 1_700_000_000_000;
    const store = new MemoryStore({ clock: () => t, maxKeys: 100_000 });
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 1, interval: 60_000 },
      store,
    });
    await limiter.consume("abuser", { cost: 10 });
    expect((await limiter.consume("abuser")).allowed).toBe(false);
    const before = heap();
    let maxTracked = 0;
    for (let i = 0; i < 1_000_000; i++) {
      if (i % 1000 === 0) t += 1;
      await limiter.consume(`203.0.113.${i}`);
      if (i % 50_000 === 0) maxTracked = Math.max(maxTracked, store.stats().trackedKeys);
    }
    const stats = store.stats();
    expect(Math.max(maxTracked, stats.trackedKeys)).toBeLessThanOrEqual(100_000);
    expect(stats.evictions.throttled).toBe(0);
    expect(stats.evictions.active).toBeGreaterThan(0);
    const d = await limiter.consume("abuser");
    expect(d.allowed).toBe(false);
    // 100k buckets of about 90 B plus the store's scratch: far under 32 MB of growth.
    const grown = heap() - before;
    console.log(
      `flood: 1e6 clients, maxKeys 1e5: peak tracked ${maxTracked}, heap +${(grown / 2 ** 20).toFixed(1)} MiB, evictions ${JSON.stringify(stats.evictions)}`,
    );
    expect(grown).toBeLessThan(32 * 2 ** 20);
  });
});
