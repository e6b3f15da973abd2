import { performance } from "node:perf_hooks";
import { type Clock, turnNow } from "./clock.js";
import { type Decision, decide, RepeatMemo } from "./core/decision.js";
import { ClosedError, ConfigError, CostError, WaitTimeoutError } from "./core/errors.js";
import { checkCost, type Policy, type PolicyInput, policies as toPolicies } from "./core/policy.js";
import { LimiterEvents, outcomeOf } from "./events.js";
import { attachLogger, type Logger } from "./logger.js";
import { Guard, type LimiterStats, type StoreErrorMode } from "./stores/guard.js";
import { MemoryStore } from "./stores/memory-store.js";
import type { Store } from "./stores/store.js";
import { type TopKey, TopLimited } from "./top-keys.js";

export type { BreakerState, LimiterStats, StoreErrorMode } from "./stores/guard.js";

/** Decider answers one checked request; the limiter picks one when it is built. */
type Decider = (
  key: string,
  cost: number,
  spend: boolean,
  list: readonly Policy[],
) => Decision | Promise<Decision>;

export interface RateLimiterOptions {
  /** The limits every key is held to; a request passes only if all of them have room. */
  policies?: readonly PolicyInput[];
  /** Shorthand for `policies: [policy]`. */
  policy?: PolicyInput;
  /** Where buckets live. Default: a new MemoryStore (using `clock`). */
  store?: Store;
  /** Returns epoch ms; default `Date.now` read once per event-loop turn (see README, "Clock"). Used by the default MemoryStore and by `wait`. */
  clock?: Clock;
  /**
   * What decides while a network store (RedisStore) fails or misses its
   * deadline: `"insurance"` (default), `"allow"` or `"deny"`. See StoreErrorMode.
   */
  onStoreError?: StoreErrorMode;
  /**
   * Instances sharing the store, integer >= 1. The insurance fallback gives
   * this instance 1/instances of every policy (and of the tokens the store
   * last reported for a key), so all of them together stay near the shared
   * limit while the store is down. Default: learned through the store
   * (`Store.members`, refreshed every 5 s), 1 for a store that cannot tell.
   */
  instances?: number;
  /**
   * With a network store, answer a client that the store has denied locally
   * (for the same cost and policies) until the `retryAfter` it was given
   * (counted from when the call was sent):
   * no other instance can add tokens sooner, so this is exact; a `reset` made
   * on another instance is seen here once that wait ends. Default true.
   */
  cacheDenials?: boolean;
  /**
   * A pino-style logger (`info`, `warn`, `error` taking fields and a message).
   * floodgate logs store errors, the breaker, the fallback and evicted
   * throttled clients: each kind at most once per `logInterval`, never per request.
   */
  logger?: Logger;
  /** Milliseconds between two log lines of one kind, integer >= 1. Default 60000. */
  logInterval?: number;
  /**
   * The summary behind `topLimited()`: `size` keys kept (default 100) over
   * windows of `window` ms (default 60000), or `false` to keep none.
   */
  topLimited?: { size?: number; window?: number } | false;
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

const OPTIONS = new Set([
  "policies",
  "policy",
  "store",
  "clock",
  "onStoreError",
  "instances",
  "cacheDenials",
  "logger",
  "logInterval",
  "topLimited",
]);
const MODES: readonly StoreErrorMode[] = ["insurance", "allow", "deny"];
/** The stats of a limiter whose store answers in process: nothing to guard. */
const NO_STATS: LimiterStats = Object.freeze({
  storeCalls: 0,
  storeErrors: 0,
  storeTimeouts: 0,
  lateReplies: 0,
  lateLoop: 0,
  fallbacks: 0,
  cached: 0,
  storeEvictions: 0,
  breaker: "closed",
  breakerOpens: 0,
});

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
    const clock = options.clock ?? turnNow;
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
    this.#observability(options, clock, store);
    const { onStoreError = "insurance", instances, cacheDenials = true } = options;
    if (!MODES.includes(onStoreError)) {
      throw new ConfigError(
        "onStoreError",
        onStoreError,
        `must be one of ${MODES.map((m) => `"${m}"`).join(", ")}`,
        'choose what decides while the store is down, e.g. onStoreError: "insurance"',
      );
    }
    if (
      instances !== undefined &&
      (!Number.isInteger(instances) || instances < 1 || instances > 10_000)
    ) {
      throw new ConfigError(
        "instances",
        instances,
        "must be an integer from 1 to 10000",
        "give the number of instances sharing the store, e.g. instances: 4, or leave it out to learn it through the store",
      );
    }
    if (typeof cacheDenials !== "boolean") {
      throw new ConfigError(
        "cacheDenials",
        cacheDenials,
        "must be true or false",
        "leave it out (true), or pass false to ask the store on every request",
      );
    }
    this.onStoreError = onStoreError;
    this.#instances = instances ?? 1;
    const timeout = (store as Store).timeout;
    // What decides is picked here, once: the hot path never asks what the store is.
    const repeats = this.#repeats;
    if (timeout !== undefined) {
      if (typeof timeout !== "number" || !(timeout > 0)) {
        throw new ConfigError(
          "store.timeout",
          timeout,
          "must be a number of milliseconds > 0",
          "set the store's timeout option, e.g. new RedisStore({ client, timeout: 50 })",
        );
      }
      const guard = new Guard({
        store,
        timeout,
        clock,
        onStoreError,
        instances,
        cacheDenials,
        events: this.events,
      });
      this.#guard = guard;
      this.#sync = false;
      this.#decider = (key, cost, spend, list) => guard.decide(key, cost, spend, list);
    } else if (store instanceof MemoryStore) {
      // A MemoryStore answers at once, never with a promise.
      this.#sync = true;
      this.#decider = (key, cost, spend, list) =>
        repeats.decide(key, list, store.consume(key, list, cost, spend), cost);
    } else {
      this.#sync = false;
      this.#decider = (key, cost, spend, list) => {
        const reply = store.consume(key, list, cost, spend);
        if (reply instanceof Promise) return reply.then((r) => decide(list, r, cost, "store"));
        return repeats.decide(key, list, reply, cost);
      };
    }
  }

  /** What decides while the store fails; see StoreErrorMode. */
  readonly onStoreError: StoreErrorMode;
  /** Instances sharing the store, as given or as last learned through it; the insurance fallback gets 1/instances of each policy. */
  get instances(): number {
    return this.#guard?.instances ?? this.#instances;
  }
  readonly #instances: number;
  /** Decisions come back at once, never as a promise (a MemoryStore decides). */
  readonly #sync: boolean;
  readonly #decider: Decider;
  /** Set for a store with a timeout: what protects decisions from it. */
  readonly #guard: Guard | undefined;
  /** events: listen here for decisions, limited requests, store errors, the breaker, evictions, the fallback. */
  readonly events = new LimiterEvents();
  #top: TopLimited | undefined;
  readonly #repeats = new RepeatMemo();
  #lastDecision: Decision | undefined;
  #lastPromise: Promise<Decision> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Waits asleep in `wait`: close() ends them. */
  readonly #sleepers = new Set<(error: Error) => void>();

  /** stats counts store calls, failures, fallbacks, cached denials and lost buckets, and gives the breaker's state. */
  stats(): LimiterStats {
    return this.#guard?.stats() ?? { ...NO_STATS };
  }

  /** consume spends `cost` tokens (default 1) from every policy's bucket for `key`, all or nothing. */
  consume(key: string, options?: ConsumeOptions): Promise<Decision> {
    try {
      const d = this.check(key, costOf(options), true, this.policies);
      // A repeated denial is the same frozen Decision (RepeatMemo): its settled promise can be shared too.
      if (d === this.#lastDecision) return this.#lastPromise as Promise<Decision>;
      const promise = Promise.resolve(d);
      if (this.#sync ? !(d as Decision).allowed : !(d instanceof Promise) && !d.allowed) {
        this.#lastDecision = d as Decision;
        this.#lastPromise = promise;
      }
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** peek tells what `consume` would decide for `key` now, without spending anything. */
  peek(key: string, options?: ConsumeOptions): Promise<Decision> {
    try {
      return Promise.resolve(this.check(key, costOf(options), false, this.policies));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** reset forgets `key`: its next request sees full buckets. */
  async reset(key: string): Promise<void> {
    if (this.#closed) throw new ClosedError("the RateLimiter");
    assertKey(key);
    if (this.#guard !== undefined) return this.#guard.reset(key, this.policies);
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
    const cost = costOf(options);
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
      await sleep(decision.retryAfter, signal, this.#sleepers);
    }
  }

  /**
   * close stops every timer the limiter opened (deadlines, the heartbeat),
   * rejects the calls still waiting for the store and the waits asleep in
   * `wait` with ClosedError, then closes the store. From then on every call
   * rejects with ClosedError. Closing twice is the same as once.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#guard?.close();
      const closed = new ClosedError("the RateLimiter");
      for (const stop of this.#sleepers) stop(closed);
      this.#sleepers.clear();
      this.#closing = (async () => {
        await this.store.close?.();
      })();
    }
    return this.#closing;
  }

  /**
   * check decides one request: synchronously when the store is synchronous
   * (the memory store), so HTTP adapters can skip a promise on the hot path.
   * Throws CostError for a bad cost and TypeError for a key that is not a string.
   * `shadow` says the caller lets a denied request through (shadow mode), so
   * it is reported as `shadow_limited` rather than `limited`.
   * @internal
   */
  check(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    shadow = false,
  ): Decision | Promise<Decision> {
    if (!spend || !(this.events.observing || this.#top !== undefined)) {
      return this.#decide(key, cost, spend, list);
    }
    if (this.#sync && !this.events.wants["store-call"]) {
      const d = this.#decide(key, cost, spend, list) as Decision;
      return d.allowed && !this.events.observing ? d : this.#observe(key, d, shadow, -1);
    }
    const started = this.events.wants["store-call"] ? performance.now() : -1;
    const result = this.#decide(key, cost, spend, list);
    if (result instanceof Promise)
      return result.then((d) => this.#observe(key, d, shadow, started));
    return this.#observe(key, result, shadow, started);
  }

  /**
   * topLimited returns up to `n` (default 10) keys limited most in the last
   * one to two windows (see the `topLimited` option), most first; each
   * `count` may overstate by at most its `error`. Empty with `topLimited: false`.
   */
  topLimited(n = 10): TopKey[] {
    return this.#top?.top(n, this.clock()) ?? [];
  }

  /** observe reports one spending decision to listeners and to the top-limited summary. */
  #observe(key: string, d: Decision, shadow: boolean, started: number): Decision {
    const events = this.events;
    if (started >= 0 && d.reason === "store") {
      events.emit("store-call", (performance.now() - started) / 1000);
    }
    if (events.wants.decision) events.emit("decision", outcomeOf(d, shadow), d, key);
    if (!d.allowed) {
      // The decision's own instant: a second clock read costs the reject path as much as the store call.
      this.#top?.add(key, d.now);
      if (events.wants.limited) events.emit("limited", d.policy, key, d, shadow);
    }
    return d;
  }

  /** observability checks and sets up the logger, the top-limited summary and eviction events. */
  #observability(options: RateLimiterOptions, clock: Clock, store: Store): void {
    const { logger, logInterval = 60_000, topLimited = {} } = options;
    if (!Number.isInteger(logInterval) || logInterval < 1) {
      throw new ConfigError(
        "logInterval",
        logInterval,
        "must be an integer number of milliseconds >= 1",
        "pass logInterval: 60000 (one line per kind a minute)",
      );
    }
    if (logger !== undefined) {
      const bad = (["info", "warn", "error"] as const).find(
        (m) => typeof (logger as unknown as Record<string, unknown>)?.[m] !== "function",
      );
      if (bad !== undefined) {
        throw new ConfigError(
          "logger",
          logger,
          `must be a pino-style logger; its ${bad} is not a function`,
          "pass logger: pino(), or any object with info, warn and error methods",
        );
      }
      attachLogger(this.events, logger, logInterval, clock);
    }
    if (topLimited !== false) {
      const { size = 100, window = 60_000 } = topLimited ?? {};
      if (!Number.isInteger(size) || size < 1 || size > 10_000) {
        throw new ConfigError(
          "topLimited.size",
          size,
          "must be an integer from 1 to 10000",
          "pass topLimited: { size: 100 }, or topLimited: false to keep no summary",
        );
      }
      if (!Number.isInteger(window) || window < 1000) {
        throw new ConfigError(
          "topLimited.window",
          window,
          "must be an integer number of milliseconds >= 1000",
          "pass topLimited: { window: 60000 }",
        );
      }
      this.#top = new TopLimited(size, window);
    }
    if (store instanceof MemoryStore && store.onEvict === undefined) {
      const events = this.events;
      store.onEvict = (kind, policy, key) => {
        if (events.wants.eviction) events.emit("eviction", kind, policy, key);
      };
    }
  }

  /** decide is check without the reporting: the call's checks, then the decider picked at construction. */
  #decide(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
  ): Decision | Promise<Decision> {
    if (this.#closed) throw new ClosedError("the RateLimiter");
    assertKey(key);
    if (cost !== 1 || list.length > 1) {
      const problem = checkCost(cost, list);
      if (problem !== undefined) throw new CostError(cost, problem);
    }
    return this.#decider(key, cost, spend, list);
  }
}

/**
 * costOf is a call's cost: 1 when left out. Anything given, null included,
 * goes to the cost check: a silent default would hide a caller's bug.
 */
function costOf(options: ConsumeOptions | undefined): number {
  const cost = options?.cost;
  return cost === undefined ? 1 : cost;
}

function assertKey(key: unknown): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`floodgate: the client key must be a string, got ${typeof key}`);
  }
}

/** sleep resolves after `ms`; it rejects when `signal` aborts or when the limiter closes (through `sleepers`). */
function sleep(
  ms: number,
  signal: AbortSignal | undefined,
  sleepers: Set<(error: Error) => void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const stop = (error: unknown) => {
      clearTimeout(timer);
      sleepers.delete(stop);
      signal?.removeEventListener("abort", onAbort);
      reject(error);
    };
    const onAbort = () => stop(signal?.reason);
    const timer = setTimeout(() => {
      sleepers.delete(stop);
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    sleepers.add(stop);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
