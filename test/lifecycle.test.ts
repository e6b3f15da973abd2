/**
 * Issue 13 item 5, the limiter's side: after close() every call rejects with
 * ClosedError (never a decision from a fresh bucket), calls and waits in
 * progress reject too, the store is closed once, and closing twice is fine.
 */
import { describe, expect, it } from "vitest";
import {
  ClosedError,
  MemoryStore,
  type Policy,
  RateLimiter,
  type Store,
  type StoreReply,
} from "../src/index.js";

const policy = { capacity: 2, refillRate: 1, interval: 1000 };

/** HangingStore is a network store that never answers, and counts its close() and heartbeats. */
class HangingStore implements Store {
  readonly timeout = 60_000;
  closes = 0;
  beats = 0;
  consume(_key: string, _list: readonly Policy[]): Promise<StoreReply> {
    return new Promise(() => {});
  }
  reset(): void {}
  members(): Promise<number> {
    this.beats++;
    return Promise.resolve(1);
  }
  close(): void {
    this.closes++;
  }
}

const closed = { name: "ClosedError", code: "ERR_FLOODGATE_CLOSED" };

describe("RateLimiter after close()", () => {
  it("consume, peek, wait and reset reject with ClosedError; the store is closed once", async () => {
    let closes = 0;
    const store = new MemoryStore({ clock: () => 0 });
    const close = store.close.bind(store);
    store.close = () => {
      closes++;
      close();
    };
    const limiter = new RateLimiter({ policy, store });
    expect((await limiter.consume("a")).allowed).toBe(true);
    await Promise.all([limiter.close(), limiter.close()]);
    await limiter.close();
    expect(closes).toBe(1);
    await expect(limiter.consume("a")).rejects.toMatchObject(closed);
    await expect(limiter.peek("a")).rejects.toMatchObject(closed);
    await expect(limiter.wait("a")).rejects.toBeInstanceOf(ClosedError);
    await expect(limiter.reset("a")).rejects.toMatchObject(closed);
    expect(() => limiter.check("a", 1, true, limiter.policies)).toThrow(ClosedError);
  });

  it("a wait asleep rejects at close, without waiting for its timer", async () => {
    let now = 0;
    const limiter = new RateLimiter({ policy, clock: () => now });
    await limiter.consume("a", { cost: 2 });
    const waiting = limiter.wait("a");
    now += 1;
    await new Promise((r) => setImmediate(r));
    await limiter.close();
    await expect(waiting).rejects.toMatchObject(closed);
  });

  it("calls waiting for a network store reject at close; the store is closed", async () => {
    const store = new HangingStore();
    const limiter = new RateLimiter({ policy, store });
    const pending = limiter.consume("a");
    await new Promise((r) => setImmediate(r));
    expect(store.beats).toBe(1);
    await limiter.close();
    await expect(pending).rejects.toMatchObject(closed);
    expect(store.closes).toBe(1);
  });
});
