/**
 * Issue 15: refunds, reservations with bounded debt, blocks, through the
 * RateLimiter API: validation, settle-once, events, failures that never
 * reach the request path, and the worked examples of DESIGN.md and the docs.
 */
import { describe, expect, it } from "vitest";
import type { Policy } from "../src/core/policy.js";
import {
  ConfigError,
  CostError,
  MemoryStore,
  RateLimiter,
  type Store,
  type StoreReply,
} from "../src/index.js";

const T0 = 1_700_000_000_000;

function memory(policy: ConstructorParameters<typeof RateLimiter>[0]["policy"]) {
  const clock = { t: T0 };
  const limiter = new RateLimiter({ ...(policy ? { policy } : {}), clock: () => clock.t });
  return { limiter, clock };
}

/** A network-like store: answers consume from memory; adjust and block fail or hang as told. */
class FlakyStore implements Store {
  readonly timeout = 20;
  readonly inner = new MemoryStore({ clock: () => T0 });
  adjustCalls = 0;
  mode: "fail" | "hang" | "ok" = "fail";
  consume(key: string, list: readonly Policy[], cost: number, spend: boolean): Promise<StoreReply> {
    return Promise.resolve([...this.inner.consume(key, list, cost, spend)]);
  }
  adjust(key: string, list: readonly Policy[], delta: number): Promise<StoreReply> {
    this.adjustCalls++;
    if (this.mode === "fail") return Promise.reject(new Error("connection reset"));
    if (this.mode === "hang") return new Promise(() => {});
    return Promise.resolve(this.inner.adjust(key, list, delta));
  }
  reset(key: string, list: readonly Policy[]): void {
    this.inner.reset(key, list);
  }
}

describe("reservations", () => {
  it("DESIGN's example: capacity 1000, maxDebt 5000, 1000 reserved and settled at 3000 leaves 2000 of debt", async () => {
    const { limiter, clock } = memory({
      capacity: 1000,
      refillRate: 100,
      interval: 1000,
      maxDebt: 5000,
    });
    const r = await limiter.reserve("user", { cost: 1000 });
    expect(r.decision).toMatchObject({ allowed: true, remaining: 0 });
    expect(await r.settle(3000)).toEqual({ extra: 2000, dropped: 0, applied: true });
    // -2000 tokens: the next request waits (refilledAt + interval - now) + (ceil((1 + 2000) / 100) - 1) * interval.
    const next = await limiter.consume("user");
    expect(next).toMatchObject({ allowed: false, remaining: 0, retryAfter: 1000 + 20 * 1000 });
    clock.t += 20_999;
    expect(await limiter.consume("user")).toMatchObject({ allowed: false, retryAfter: 1 });
    clock.t += 1;
    expect(await limiter.consume("user")).toMatchObject({ allowed: true, remaining: 99 });
  });

  it("settles once: later settles and cancels change nothing and give the first answer", async () => {
    const { limiter } = memory({ capacity: 10, refillRate: 1, interval: 1000 });
    const r = await limiter.reserve("k", { cost: 4 });
    const first = await r.settle(6);
    expect(first).toEqual({ extra: 2, dropped: 0, applied: true });
    expect(await r.settle(0)).toBe(first);
    expect(await r.cancel()).toBe(first);
    expect((await limiter.peek("k")).remaining).toBe(4);
  });

  it("rejects a bad actual with CostError, and the reservation can still be settled", async () => {
    const { limiter } = memory({ capacity: 10, refillRate: 1, interval: 1000 });
    const r = await limiter.reserve("k", { cost: 4 });
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, "3" as unknown as number]) {
      await expect(r.settle(bad)).rejects.toBeInstanceOf(CostError);
    }
    expect(await r.settle(4)).toEqual({ extra: 0, dropped: 0, applied: true });
    expect((await limiter.peek("k")).remaining).toBe(6);
  });

  it("a denied reservation settles nothing; one never settled keeps its estimate spent", async () => {
    const { limiter } = memory({ capacity: 5, refillRate: 1, interval: 1000 });
    const kept = await limiter.reserve("k", { cost: 5 });
    expect(kept.decision.allowed).toBe(true);
    const denied = await limiter.reserve("k", { cost: 1 });
    expect(denied.decision.allowed).toBe(false);
    expect(await denied.settle(5)).toEqual({ extra: 0, dropped: 0, applied: false });
    expect(await denied.cancel()).toEqual({ extra: 0, dropped: 0, applied: false });
    expect((await limiter.peek("k")).remaining).toBe(0);
  });

  it("rejects a reservation above capacity like consume, with CostError", async () => {
    const { limiter } = memory({ capacity: 5, refillRate: 1, interval: 1000 });
    await expect(limiter.reserve("k", { cost: 6 })).rejects.toBeInstanceOf(CostError);
  });
});

describe("refund", () => {
  it("gives tokens back up to capacity, and validates the key and the amount", async () => {
    const { limiter } = memory({ capacity: 10, refillRate: 1, interval: 1000 });
    await limiter.consume("k", { cost: 7 });
    expect(await limiter.refund("k", { cost: 5 })).toEqual({
      extra: -5,
      dropped: 0,
      applied: true,
    });
    expect((await limiter.peek("k")).remaining).toBe(8);
    await limiter.refund("k", { cost: Number.MAX_SAFE_INTEGER });
    expect((await limiter.peek("k")).remaining).toBe(10);
    for (const bad of [0, -3, 2.5, 2 ** 53, null]) {
      await expect(limiter.refund("k", { cost: bad as number })).rejects.toBeInstanceOf(CostError);
    }
    await expect(limiter.refund(7 as unknown as string)).rejects.toBeInstanceOf(TypeError);
  });

  it("counts only failures: refund after every successful login", async () => {
    const { limiter } = memory({ capacity: 5, refillRate: 5, interval: 900_000 });
    for (let i = 0; i < 100; i++) {
      expect((await limiter.consume("alice")).allowed).toBe(true);
      await limiter.refund("alice");
    }
    for (let i = 0; i < 5; i++) expect((await limiter.consume("alice")).allowed).toBe(true);
    expect((await limiter.consume("alice")).allowed).toBe(false);
  });
});

describe("blocks", () => {
  it("blockFor keeps a key out for exactly that long, without spending or extending", async () => {
    const { limiter, clock } = memory({
      capacity: 2,
      refillRate: 2,
      interval: 60_000,
      blockFor: 600_000,
    });
    await limiter.consume("ip");
    await limiter.consume("ip");
    expect(await limiter.consume("ip")).toMatchObject({
      allowed: false,
      reason: "blocked",
      retryAfter: 600_000,
    });
    clock.t += 300_000;
    expect(await limiter.consume("ip")).toMatchObject({
      allowed: false,
      reason: "blocked",
      retryAfter: 300_000,
    });
    clock.t += 300_000;
    expect(await limiter.consume("ip")).toMatchObject({
      allowed: true,
      reason: "store",
      remaining: 1,
    });
  });

  it("block(key, ms) validates ms; reset lifts a block", async () => {
    const { limiter } = memory({ capacity: 2, refillRate: 1, interval: 1000 });
    for (const bad of [0, -1, 1.5, 366 * 86_400_000, Number.NaN]) {
      await expect(limiter.block("k", bad)).rejects.toBeInstanceOf(RangeError);
    }
    await limiter.block("k", 5000);
    expect(await limiter.consume("k")).toMatchObject({
      allowed: false,
      reason: "blocked",
      retryAfter: 5000,
    });
    await limiter.reset("k");
    expect(await limiter.consume("k")).toMatchObject({ allowed: true, remaining: 1 });
  });

  it("a blocked key is never dropped as full nor evicted before unblocked ones", async () => {
    let t = T0;
    const store = new MemoryStore({ clock: () => t, maxKeys: 64 });
    const limiter = new RateLimiter({
      policy: { capacity: 5, refillRate: 5, interval: 1000 },
      store,
    });
    await limiter.block("banned", 3_600_000);
    // Hundreds of other clients pass through while the table is at maxKeys.
    for (let i = 0; i < 500; i++) {
      t += 1;
      await limiter.consume(`client-${i}`);
    }
    t += 10_000;
    expect(await limiter.consume("banned")).toMatchObject({ allowed: false, reason: "blocked" });
    expect(store.stats().evictions.throttled).toBe(0);
  });
});

describe("events and failures", () => {
  it("emits refund, settle (with dropped) and block events", async () => {
    const { limiter } = memory({
      capacity: 10,
      refillRate: 1,
      interval: 1000,
      maxDebt: 3,
      blockFor: 5000,
    });
    const seen: unknown[] = [];
    limiter.events.on("refund", (...a) => seen.push(["refund", ...a]));
    limiter.events.on("settle", (...a) => seen.push(["settle", ...a]));
    limiter.events.on("block", (...a) => seen.push(["block", ...a]));
    const r = await limiter.reserve("k", { cost: 10 });
    await r.settle(20);
    await limiter.refund("k", { cost: 2 });
    await limiter.consume("k");
    await limiter.block("other", 1000);
    expect(seen).toEqual([
      ["settle", "k", 10, 7],
      ["refund", "k", 2],
      ["block", "k", T0 + 5000, "default"],
      ["block", "other", T0 + 1000, undefined],
    ]);
  });

  it("a settle or refund the store fails is counted and emitted, never thrown, never retried", async () => {
    const store = new FlakyStore();
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 1, interval: 1000 },
      store,
    });
    const errors: unknown[] = [];
    limiter.events.on("settle-error", (error, operation, key) =>
      errors.push([operation, key, String(error)]),
    );
    const r = await limiter.reserve("k", { cost: 5 });
    expect(await r.settle(9)).toEqual({ extra: 0, dropped: 0, applied: false });
    expect(await limiter.refund("k")).toMatchObject({ applied: false });
    store.mode = "hang";
    expect(await limiter.refund("k")).toMatchObject({ applied: false });
    expect(store.adjustCalls).toBe(3);
    expect(limiter.stats().settleErrors).toBe(3);
    expect(errors).toEqual([
      ["settle", "k", "Error: connection reset"],
      ["refund", "k", "Error: connection reset"],
      ["refund", "k", expect.stringContaining("StoreTimeoutError")],
    ]);
    // The settle of a failed reservation is not tried again.
    expect(await r.settle(1)).toMatchObject({ applied: false });
    expect(store.adjustCalls).toBe(3);
    store.mode = "ok";
    expect(await limiter.refund("k", { cost: 3 })).toEqual({
      extra: -3,
      dropped: 0,
      applied: true,
    });
  });

  it("a store without adjust or block is a ConfigError naming the fix", async () => {
    const inner = new MemoryStore();
    const store: Store = {
      consume: (key, list, cost, spend) => inner.consume(key, list, cost, spend),
      reset: (key, list) => inner.reset(key, list),
    };
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 1, interval: 1000 },
      store,
    });
    await expect(limiter.refund("k")).rejects.toThrow(ConfigError);
    await expect(limiter.block("k", 10)).rejects.toThrow(/implement Store.adjust and Store.block/);
  });
});

describe("budgets past 1e9", () => {
  it("a 10,000,000,000-byte daily budget charges every byte exactly", async () => {
    const { limiter, clock } = memory({
      name: "bytes",
      capacity: 10_000_000_000,
      refillRate: 10_000_000_000,
      interval: "1d",
      maxDebt: 0,
    });
    let sent = 0;
    for (const size of [3_999_999_999, 4_000_000_000, 2_000_000_000]) {
      const r = await limiter.reserve("tenant", { cost: 1_000_000 });
      expect(r.decision.allowed).toBe(true);
      await r.settle(size);
      sent += size;
    }
    expect(sent).toBe(9_999_999_999);
    expect(await limiter.peek("tenant")).toMatchObject({ allowed: true, remaining: 1 });
    expect(await limiter.consume("tenant", { cost: 2 })).toMatchObject({
      allowed: false,
      retryAfter: 86_400_000,
    });
    clock.t += 86_400_000;
    expect(await limiter.consume("tenant", { cost: 10_000_000_000 })).toMatchObject({
      allowed: true,
      remaining: 0,
    });
  });
});
