import { describe, expect, it } from "vitest";
import {
  type Decision,
  RateLimiter,
  type Reservation,
  type Settlement,
  type Store,
} from "../src/index.js";
import vectors from "./vectors.json" with { type: "json" };

/**
 * StoreFactory builds a fresh, empty store whose clock reads `now()`. Every
 * store (memory, Redis, ...) runs the same contract through it.
 */
export type StoreFactory = (now: () => number) => Store | Promise<Store>;

interface Step {
  at: number;
  key: string;
  cost?: number;
  actual?: number;
  ms?: number;
  op?: "consume" | "peek" | "reset" | "refund" | "reserve" | "settle" | "cancel" | "block";
  expect?: Partial<Record<keyof Decision | keyof Settlement, unknown>>;
}

/** storeContract runs the shared test vectors and behaviours against one store. */
export function storeContract(name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    for (const c of vectors.cases) {
      it(`vectors: ${c.name}`, async () => {
        let t = 0;
        const store = await factory(() => t);
        const limiter = new RateLimiter({ policies: c.policies, store });
        let reservation: Reservation | undefined;
        try {
          for (const [i, step] of (c.steps as Step[]).entries()) {
            t = step.at;
            const where = `${c.name}, step ${i} at ${step.at}`;
            if (step.op === "reset") {
              await limiter.reset(step.key);
              continue;
            }
            if (step.op === "block") {
              await limiter.block(step.key, step.ms as number);
              continue;
            }
            const options = { cost: step.cost ?? 1 };
            if (step.op === "refund" || step.op === "settle" || step.op === "cancel") {
              const settled =
                step.op === "refund"
                  ? await limiter.refund(step.key, options)
                  : step.op === "settle"
                    ? await (reservation as Reservation).settle(step.actual as number)
                    : await (reservation as Reservation).cancel();
              expect(settled, where).toMatchObject(step.expect ?? {});
              continue;
            }
            let d: Decision;
            if (step.op === "reserve") {
              reservation = await limiter.reserve(step.key, options);
              d = reservation.decision;
            } else {
              d =
                step.op === "peek"
                  ? await limiter.peek(step.key, options)
                  : await limiter.consume(step.key, options);
            }
            const { policies, ...top } = step.expect ?? {};
            expect(d, where).toMatchObject(top);
            if (policies) {
              expect(d.policies, `${c.name}, step ${i} policies`).toMatchObject(policies as object);
            }
          }
        } finally {
          await limiter.close();
        }
      });
    }

    it("keeps keys that differ only in case or whitespace apart", async () => {
      const store = await factory(() => 0);
      const limiter = new RateLimiter({
        policy: { capacity: 1, refillRate: 1, interval: 1000 },
        store,
      });
      for (const key of ["a", "A", " a", "a ", "", "{a}", "a:b", "ü", "\u0000"]) {
        expect((await limiter.consume(key)).allowed, JSON.stringify(key)).toBe(true);
      }
      expect((await limiter.consume("a")).allowed).toBe(false);
      await limiter.close();
    });

    it("keeps policies with different names apart for one key", async () => {
      let t = 0;
      const store = await factory(() => t);
      const a = new RateLimiter({
        policy: { name: "a", capacity: 1, refillRate: 1, interval: 1000 },
        store,
      });
      const b = new RateLimiter({
        policy: { name: "b", capacity: 2, refillRate: 1, interval: 1000 },
        store,
      });
      expect((await a.consume("k")).allowed).toBe(true);
      expect((await a.consume("k")).allowed).toBe(false);
      expect(await b.consume("k")).toMatchObject({ allowed: true, remaining: 1 });
      t = 1000;
      expect(await a.consume("k")).toMatchObject({ allowed: true, remaining: 0 });
      await store.close?.();
    });
  });
}
