import { describe, expect, it } from "vitest";
import { policies } from "../src/core/policy.js";
import { MemoryStore, RateLimiter } from "../src/index.js";
import { storeContract } from "./store-contract.js";

storeContract("MemoryStore", (now) => new MemoryStore({ clock: now }));

describe("MemoryStore bounds", () => {
  const policy = { capacity: 10, refillRate: 1, interval: 1000 };

  it("does not keep a bucket that is full again", async () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    const limiter = new RateLimiter({ policy, store });
    for (let i = 0; i < 100; i++) await limiter.consume(`k${i}`);
    expect(store.stats().trackedKeys).toBe(100);
    t = 1000;
    await limiter.peek("k0");
    expect(store.stats().trackedKeys).toBe(99);
    await limiter.peek("never-seen");
    expect(store.stats().trackedKeys).toBe(99);
  });

  it("sweeps buckets that refilled instead of growing", async () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t, maxKeys: 1000 });
    const limiter = new RateLimiter({ policy, store });
    for (let round = 0; round < 20; round++) {
      t = round * 10_000;
      for (let i = 0; i < 500; i++) await limiter.consume(`r${round}-${i}`);
    }
    const stats = store.stats();
    expect(stats.trackedKeys).toBeLessThanOrEqual(1000);
    expect(stats.evictions.active + stats.evictions.throttled).toBe(0);
    expect(stats.evictions.full).toBeGreaterThan(0);
  });

  // The store's own API, as a caller that names a policy per client uses it
  // (the gateway on a fallback store: every bucket of a domain under one key).
  const named = (i: number) =>
    policies({ name: `b${i}`, capacity: 2, refillRate: 1, interval: 1000 }, "policy");

  it("drops the table of a policy whose buckets are all full again", () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    for (let i = 0; i < 5000; i++) store.consume("domain", named(i), 1, true);
    expect(store.stats()).toMatchObject({ trackedKeys: 5000, policies: 5000 });
    t = 1000; // every bucket so far is full again
    for (let i = 5000; i < 9000; i++) store.consume("domain", named(i), 1, true);
    const stats = store.stats();
    // The trim at 8192 tables dropped the 5000 refilled ones; the 4000 new ones hold a bucket each.
    expect(stats).toMatchObject({ trackedKeys: 4000, policies: 4000 });
    expect(stats.evictions).toMatchObject({ active: 0, throttled: 0 });
  });

  it("keeps at most 65,536 policies' tables, evicting the oldest whole", () => {
    const evicted: string[] = [];
    const store = new MemoryStore({
      clock: () => 0,
      onEvict: (_kind, policy) => void evicted.push(policy),
    });
    for (let i = 0; i < 70_000; i++) store.consume("domain", named(i), 1, true);
    const stats = store.stats();
    expect(stats.policies).toBeLessThanOrEqual(65_536);
    expect(stats.trackedKeys).toBe(stats.policies);
    expect(stats.evictions.active).toBe(70_000 - stats.policies);
    expect(evicted.length).toBe(stats.evictions.active);
    expect(evicted[0]).toBe("b0");
    // The newest client's bucket is still there: its second token goes, the third is denied.
    const last = named(69_999);
    expect(Array.from(store.consume("domain", last, 1, true)).slice(1, 3)).toEqual([1, 0]);
    expect(store.consume("domain", last, 1, true)[1]).toBe(0);
  });

  it("at maxKeys evicts the fullest buckets and keeps throttled clients", async () => {
    const t = 0;
    const store = new MemoryStore({ clock: () => t, maxKeys: 64 });
    const limiter = new RateLimiter({ policy, store });
    for (let i = 0; i < 10; i++) await limiter.consume("abuser");
    expect((await limiter.consume("abuser")).allowed).toBe(false);
    for (let i = 0; i < 1000; i++) await limiter.consume(`flood-${i}`);
    const stats = store.stats();
    expect(stats.trackedKeys).toBeLessThanOrEqual(64);
    expect(stats.evictions.throttled).toBe(0);
    expect(stats.evictions.active).toBeGreaterThan(0);
    expect((await limiter.consume("abuser")).allowed).toBe(false);
  });

  it("evicts a throttled client only when every bucket is throttled, and counts it", async () => {
    const store = new MemoryStore({ clock: () => 0, maxKeys: 64 });
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      store,
    });
    for (let i = 0; i < 64; i++) {
      await limiter.consume(`t${i}`);
      await limiter.consume(`t${i}`);
    }
    await limiter.consume("newcomer");
    expect(store.stats().evictions.throttled).toBeGreaterThan(0);
    expect(store.stats().trackedKeys).toBeLessThanOrEqual(64);
  });

  it("prefers the bucket closest to full among active ones", async () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t, maxKeys: 64 });
    const limiter = new RateLimiter({ policy, store });
    await limiter.consume("drained", { cost: 9 });
    for (let i = 0; i < 63; i++) await limiter.consume(`light-${i}`);
    t = 1;
    await limiter.consume("newcomer");
    expect(await limiter.peek("drained")).toMatchObject({ remaining: 1 });
  });

  it("rejects bad options with the option's name", () => {
    expect(() => new MemoryStore({ maxKeys: 0 })).toThrow(/MemoryStore.maxKeys/);
    expect(() => new MemoryStore({ maxKeys: 1.5 })).toThrow(/got 1.5/);
    expect(() => new MemoryStore({ clock: 5 as unknown as () => number })).toThrow(
      /MemoryStore.clock/,
    );
    expect(() => new MemoryStore({ max: 5 } as never)).toThrow(/"MemoryStore.max" is not/);
    expect(() => new MemoryStore({ maxkeys: 5 } as never)).toThrow(/did you mean maxKeys\?/);
    // Regression: null reached Object.keys and threw a TypeError instead of a ConfigError.
    expect(() => new MemoryStore(null as never)).toThrow(/"MemoryStore options" must be an object/);
  });

  it("close forgets everything, and the closed limiter decides nothing", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const limiter = new RateLimiter({ policy, store });
    await limiter.consume("a", { cost: 10 });
    await limiter.close();
    expect(store.stats().trackedKeys).toBe(0);
    await expect(limiter.consume("a")).rejects.toMatchObject({ code: "ERR_FLOODGATE_CLOSED" });
  });
});
