import type { Clock } from "../clock.js";
import type { StoreReply } from "../core/decision.js";
import type { Policy } from "../core/policy.js";

/**
 * Store keeps buckets. `consume` charges `cost` to `key`'s bucket under every
 * policy, all or nothing (with `spend` false it only looks), and answers a
 * StoreReply read from the store's own clock. A synchronous store (the memory
 * store) may return the reply directly; it stays valid until the next call.
 */
export interface Store {
  consume(
    key: string,
    policies: readonly Policy[],
    cost: number,
    spend: boolean,
  ): StoreReply | Promise<StoreReply>;
  /**
   * Charges `delta` tokens to `key`'s bucket under every policy after the
   * fact, in one atomic call: positive takes them, down to `-maxDebt` at
   * most (what would go deeper is dropped), negative gives them back, up to
   * capacity. Replies `[now, dropped, tokens_0, refilledAt_0, ...]`, where
   * `dropped` is the most tokens any policy dropped. Never retried by the
   * limiter (a lost reply after the store applied it would charge twice).
   * Optional: without it `refund` and `Reservation.settle` reject.
   */
  adjust?(
    key: string,
    policies: readonly Policy[],
    delta: number,
  ): StoreReply | Promise<StoreReply>;
  /**
   * Blocks `key` under every policy for `ms` from the store's now (a block
   * in force that ends later is kept), in one atomic call; replies as a
   * consume the block denies. Optional: without it `block` rejects.
   */
  block?(key: string, policies: readonly Policy[], ms: number): StoreReply | Promise<StoreReply>;
  /** Forgets `key`'s buckets, and any block, under the given policies: the client starts full. */
  reset(key: string, policies: readonly Policy[]): void | Promise<void>;
  /** Releases what the store holds. */
  close?(): void | Promise<void>;
  /**
   * Set by stores that answer over the network (RedisStore): milliseconds a
   * RateLimiter waits for a reply before following `onStoreError`. With it the
   * limiter also runs a circuit breaker and caches denials locally.
   */
  readonly timeout?: number;
  /** False when a call could not be sent now (no connection): the limiter then sends no probe. */
  available?(): boolean;
  /**
   * True for an error about one key's data rather than the store's health
   * (Redis `WRONGTYPE`: a key of another type where a bucket should be). The
   * limiter still answers that call by `onStoreError`, but the store did
   * answer, so such an error never counts towards opening the breaker.
   */
  keyError?(error: unknown): boolean;
  /**
   * The clock the store decides by, when it reads one in this process (a
   * MemoryStore, a RedisStore with an injected test clock). Absent for a store
   * whose clock is remote (Redis `TIME`); the limiter then times cached
   * denials with its own monotonic clock.
   */
  readonly clock?: Clock | undefined;
  /**
   * Set by stores shared by several processes (RedisStore): marks the
   * instance `id` as live for `ttlMs` and resolves to the number of instances
   * marked live (at least 1), so a limiter learns how many share the store.
   */
  members?(id: string, ttlMs: number): Promise<number>;
}
