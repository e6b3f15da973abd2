import { describe, expect, it } from "vitest";
import { policy } from "../src/core/policy.js";
import { MemoryStore, RateLimiter } from "../src/index.js";
import { Table } from "../src/stores/memory-store.js";
import { ReferenceLimiter } from "./reference-model.js";

/**
 * The memory store's own hash index (open addressing, backward-shift
 * deletion, an overflow Map past the probe limit), checked against a Map.
 */
describe("MemoryStore index", () => {
  const p = policy({ capacity: 5, refillRate: 1, interval: 1000 });

  function check(table: Table, model: Map<string, number>): void {
    expect(table.size).toBe(model.size);
    for (const [key, slot] of model) expect(table.find(key, table.hash(key)), key).toBe(slot);
  }

  function churn(hash: (key: string) => number, seed: number): void {
    const table = new Table(p, hash);
    const model = new Map<string, number>();
    let x = seed;
    const random = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    for (let step = 0; step < 4000; step++) {
      const key = `k${random(300)}`;
      const slot = model.get(key);
      if (slot !== undefined && random(3) === 0) {
        table.remove(slot);
        model.delete(key);
      } else if (slot === undefined) {
        if (table.free < 0 && table.used === table.slots) table.resize(table.slots * 2);
        model.set(key, table.add(key, table.hash(key)));
      }
      if (step % 97 === 0) check(table, model);
    }
    check(table, model);
    for (const key of ["absent", "k-1", ""]) expect(table.find(key, table.hash(key))).toBe(-1);
  }

  it("finds every key after random adds, removes and growth", () => {
    const table = new Table(p);
    churn(table.hash, 1);
    churn(table.hash, 2);
  });

  it("stays correct when every key collides (probe limit, overflow Map)", () => {
    churn(() => 7, 3);
  });

  it("stays correct when keys share a few hashes (long runs, wrap-around)", () => {
    churn((key) => (key.length * 2_654_435_761) | 0, 4);
    churn((key) => -1 - (key.charCodeAt(key.length - 1) % 3), 5);
  });

  it("agrees with the reference model over many keys, drops and resets", async () => {
    const policies = [
      { name: "fast", capacity: 3, refillRate: 1, interval: 100 },
      { name: "slow", capacity: 8, refillRate: 2, interval: 1000 },
    ];
    let t = 1_000_000;
    const limiter = new RateLimiter({
      policies,
      store: new MemoryStore({ clock: () => t, maxKeys: 1 << 20 }),
    });
    const reference = new ReferenceLimiter(policies);
    // The model has no reset: a reset client continues under a new name there.
    const generation = new Map<string, number>();
    let x = 42;
    const random = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    for (let step = 0; step < 20_000; step++) {
      t += random(4) === 0 ? random(300) : 0;
      const key = `client-${random(2000)}`;
      if (random(50) === 0) {
        await limiter.reset(key);
        generation.set(key, (generation.get(key) ?? 0) + 1);
        continue;
      }
      const cost = 1 + random(2);
      const d = await limiter.consume(key, { cost });
      const r = reference.decide(`${key}#${generation.get(key) ?? 0}`, cost, t);
      expect(
        {
          allowed: d.allowed,
          remaining: d.remaining,
          resetAt: d.resetAt,
          retryAfter: d.retryAfter,
        },
        `step ${step}`,
      ).toEqual({
        allowed: r.allowed,
        remaining: r.remaining,
        resetAt: r.resetAt,
        retryAfter: r.retryAfter,
      });
    }
  });
});
