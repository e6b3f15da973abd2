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
  /** Forgets `key`'s buckets under the given policies: the client starts full. */
  reset(key: string, policies: readonly Policy[]): void | Promise<void>;
  /** Releases what the store holds. */
  close?(): void | Promise<void>;
}

/** Clock returns the current time in epoch milliseconds. */
export type Clock = () => number;
