import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { MemoryStore, RateLimiter } from "../../src/index.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

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
