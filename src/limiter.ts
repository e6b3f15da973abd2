import { type Decision, decide } from "./core/decision.js";
import { ConfigError, CostError, WaitTimeoutError } from "./core/errors.js";
import { checkCost, type Policy, type PolicyInput, policies as toPolicies } from "./core/policy.js";
import { MemoryStore } from "./stores/memory-store.js";
import type { Clock, Store } from "./stores/store.js";

export interface RateLimiterOptions {
  /** The limits every key is held to; a request passes only if all of them have room. */
  policies?: readonly PolicyInput[];
  /** Shorthand for `policies: [policy]`. */
  policy?: PolicyInput;
  /** Where buckets live. Default: a new MemoryStore (using `clock`). */
  store?: Store;
  /** Returns epoch ms; default `Date.now`. Used by the default MemoryStore and by `wait`. */
  clock?: Clock;
}

export interface ConsumeOptions {
  /** Tokens this request spends: a whole number from 1 to the smallest capacity. Default 1. */
  cost?: number;
}

export interface WaitOptions extends ConsumeOptions {
  /** Aborts the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Most milliseconds to wait; a longer wait rejects at once with WaitTimeoutError. Default: no limit. */
  maxWait?: number;
}

const OPTIONS = new Set(["policies", "policy", "store", "clock"]);

/**
 * RateLimiter holds every key to its policies. It validates its options when
 * built and throws ConfigError naming the option, the value and the fix.
 */
export class RateLimiter {
  readonly policies: readonly Policy[];
  readonly store: Store;
  readonly clock: Clock;

  constructor(options: RateLimiterOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError(
        "options",
        options,
        "must be an object",
        "new RateLimiter({ policy: { capacity: 10, refillRate: 2, interval: 1000 } })",
      );
    }
    for (const key of Object.keys(options)) {
      if (!OPTIONS.has(key)) {
        throw new ConfigError(
          key,
          (options as Record<string, unknown>)[key],
          "is not a RateLimiter option",
          `use one of ${[...OPTIONS].join(", ")}`,
        );
      }
    }
    if (options.policies !== undefined && options.policy !== undefined) {
      throw new ConfigError(
        "policy",
        options.policy,
        "cannot be given together with policies",
        "pass either policy: {...} or policies: [...]",
      );
    }
    this.policies =
      options.policy !== undefined
        ? toPolicies(options.policy, "policy")
        : toPolicies(options.policies, "policies");
    const clock = options.clock ?? Date.now;
    if (typeof clock !== "function") {
      throw new ConfigError(
        "clock",
        clock,
        "must be a function returning epoch milliseconds",
        "pass clock: () => Date.now(), or a fake clock in tests",
      );
    }
    this.clock = clock;
    const store = options.store ?? new MemoryStore({ clock });
    if (typeof store !== "object" || store === null || typeof store.consume !== "function") {
      throw new ConfigError(
        "store",
        store,
        "must be a Store (an object with consume and reset)",
        "pass new MemoryStore() or new RedisStore({ client })",
      );
    }
    this.store = store;
  }

  /** consume spends `cost` tokens (default 1) from every policy's bucket for `key`, all or nothing. */
  consume(key: string, options?: ConsumeOptions): Promise<Decision> {
    try {
      return Promise.resolve(this.check(key, options?.cost ?? 1, true, this.policies));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** peek tells what `consume` would decide for `key` now, without spending anything. */
  peek(key: string, options?: ConsumeOptions): Promise<Decision> {
    try {
      return Promise.resolve(this.check(key, options?.cost ?? 1, false, this.policies));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** reset forgets `key`: its next request sees full buckets. */
  async reset(key: string): Promise<void> {
    assertKey(key);
    await this.store.reset(key, this.policies);
  }

  /**
   * wait resolves once `cost` tokens have been spent for `key`, sleeping as long
   * as needed (for throttling outbound calls). It rejects with
   * WaitTimeoutError at once when the wait would pass `maxWait`, and with the
   * signal's reason when aborted.
   */
  async wait(key: string, options: WaitOptions = {}): Promise<Decision> {
    const { signal, maxWait = Number.POSITIVE_INFINITY } = options;
    const cost = options.cost ?? 1;
    if (typeof maxWait !== "number" || Number.isNaN(maxWait) || maxWait < 0) {
      throw new ConfigError(
        "maxWait",
        maxWait,
        "must be a number of milliseconds >= 0",
        "pass maxWait: 5000, or leave it out to wait as long as needed",
      );
    }
    const start = this.clock();
    for (;;) {
      signal?.throwIfAborted();
      const decision = await this.check(key, cost, true, this.policies);
      if (decision.allowed) return decision;
      const waited = this.clock() - start;
      if (waited + decision.retryAfter > maxWait) {
        throw new WaitTimeoutError(key, cost, decision.retryAfter, maxWait);
      }
      await sleep(decision.retryAfter, signal);
    }
  }

  /** close releases the store. */
  async close(): Promise<void> {
    await this.store.close?.();
  }

  /**
   * check decides one request: synchronously when the store is synchronous
   * (the memory store), so HTTP adapters can skip a promise on the hot path.
   * Throws CostError for a bad cost and TypeError for a key that is not a string.
   * @internal
   */
  check(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
  ): Decision | Promise<Decision> {
    assertKey(key);
    if (cost !== 1 || list.length > 1) {
      const problem = checkCost(cost, list);
      if (problem !== undefined) throw new CostError(cost, problem);
    }
    const reply = this.store.consume(key, list, cost, spend);
    if (reply instanceof Promise) {
      return reply.then((r) => decide(list, r, cost, "store"));
    }
    return decide(list, reply, cost, "store");
  }
}

function assertKey(key: unknown): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`floodgate: the client key must be a string, got ${typeof key}`);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
