import { performance } from "node:perf_hooks";
import { type Clock, turnMonotonic, turnNow } from "./clock.js";
import {
  BLOCK_STARTED,
  type Decision,
  decide,
  RepeatMemo,
  type StoreReply,
} from "./core/decision.js";
import { ConfigError, CostError } from "./core/errors.js";
import { assertKey, boundKey } from "./core/key.js";
import {
  checkAmount,
  checkCost,
  MAX_INTERVAL,
  type Policy,
  type PolicyInput,
  policies as toPolicies,
  windowOf,
} from "./core/policy.js";
import { type AdjustOperation, LimiterEvents, outcomeOf } from "./events.js";
import { attachLogger, type Logger } from "./logger.js";
import { type TopKey, TopLimited } from "./metrics/top-keys.js";
import { MemoryStore } from "./stores/memory-store.js";
import type { Store } from "./stores/store.js";
import { StoreTimeoutError } from "./stores/store-errors.js";
import { Waiters, type WaitOptions } from "./waiters.js";

export type { WaitOptions } from "./waiters.js";

/**
 * StoreErrorMode says who decides while the store fails (error, timeout, or
 * breaker open): `"insurance"` an in-process memory limiter with the same
 * policies (divided by `instances`), `"allow"` let every request through,
 * `"deny"` refuse every request (`reason: "fail-closed"`, `retryAfter` = the
 * time until the store is tried again).
 */
export type StoreErrorMode = "insurance" | "allow" | "deny";

/** BreakerState: `"closed"` calls go to the store; `"open"` they do not; `"half-open"` one probe is out. */
export type BreakerState = "closed" | "open" | "half-open";

/** LimiterStats counts what a RateLimiter did with its store since it was built. */
export interface LimiterStats {
  /** Calls sent to the store. */
  storeCalls: number;
  /** Calls that failed with an error (including "not connected"). */
  storeErrors: number;
  /** Calls answered by the fallback because the store missed its deadline. */
  storeTimeouts: number;
  /** Replies that arrived after their deadline (already answered by the fallback). */
  lateReplies: number;
  /** Decisions made by `onStoreError` (insurance, fail-open, fail-closed). */
  fallbacks: number;
  /** Denials answered locally from a denial the store gave earlier. */
  cached: number;
  breaker: BreakerState;
  /** Times the breaker opened. */
  breakerOpens: number;
  /** Refunds, settles and blocks the store failed or missed the deadline of (never retried). */
  settleErrors: number;
}

export interface RateLimiterOptions {
  /** The limits every key is held to; a request passes only if all of them have room. */
  policies?: readonly PolicyInput[];
  /** Shorthand for `policies: [policy]`. */
  policy?: PolicyInput;
  /** Where buckets live. Default: a new MemoryStore (using `clock`). */
  store?: Store;
  /** Returns epoch ms; default a clock that never jumps, read once per event-loop turn (see turnNow). Used by the default MemoryStore and the top-limited summary. */
  clock?: Clock;
  /**
   * What decides while a network store (RedisStore) fails or misses its
   * deadline: `"insurance"` (default), `"allow"` or `"deny"`. See StoreErrorMode.
   */
  onStoreError?: StoreErrorMode;
  /**
   * Instances expected to share the store, integer >= 1 (default 1). The
   * insurance limiter gives this instance 1/instances of every policy, so all
   * of them together stay near the shared limit while the store is down.
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

/**
 * Settlement says what a refund or a settle charged after the fact.
 */
export interface Settlement {
  /** Tokens charged beyond the estimate (negative: given back); 0 when nothing was applied. */
  readonly extra: number;
  /** Of `extra`, the most tokens a policy did not charge because they went beyond its maxDebt. */
  readonly dropped: number;
  /**
   * False when nothing reached the store: the reservation was denied (it
   * settles nothing), its estimate was decided without the store
   * (`reason: "fail-open"`), or the store failed (counted in `stats()` and
   * emitted as `settle-error`, never thrown).
   */
  readonly applied: boolean;
}

/**
 * Reservation is an estimate spent by `limiter.reserve`, settled once the
 * real cost is known. Only the first `settle` or `cancel` counts; later
 * calls change nothing and resolve to the first one's Settlement. One never
 * settled keeps its estimate spent: nothing leaks, nothing needs cleaning.
 */
export interface Reservation {
  /** The decision on the estimate, as `consume` gives it. */
  readonly decision: Decision;
  /** The estimate spent (when allowed). */
  readonly cost: number;
  /**
   * settle charges `actual - cost` more (debt allowed down to each policy's
   * maxDebt) or, when negative, gives it back. `actual` is a whole number
   * from 0 to Number.MAX_SAFE_INTEGER; anything else rejects with CostError.
   */
  settle(actual: number): Promise<Settlement>;
  /** cancel gives the whole estimate back: `settle(0)`. */
  cancel(): Promise<Settlement>;
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
/** Consecutive failures that open the breaker. */
const BREAKER_FAILURES = 3;
/**
 * ...lasting at least this many ms. One stall (a GC pause, a starved core)
 * can time out every call in flight at once; that is not an outage, and
 * opening for a second would hand a second of decisions to the fallback.
 * A store that keeps failing still opens the breaker within ~250 ms.
 */
const BREAKER_SPAN = 200;
/** Milliseconds between probes while the breaker is open: at most one a second. */
const PROBE_EVERY = 1000;
/** Most denials cached; past it, expired ones go, then the oldest. */
const MAX_CACHED = 100_000;

/** Call is one store call in flight, waiting for its reply or its deadline. */
interface Call {
  done: boolean;
  readonly deadline: number;
  readonly sentAt: number;
  readonly probe: boolean;
  readonly key: string;
  readonly cost: number;
  readonly spend: boolean;
  readonly list: readonly Policy[];
  readonly resolve: (decision: Decision) => void;
}

/** Denial is a store's denial of `cost` for one key, in force until `until` (the cache's clock). */
interface Denial {
  /** The cache answers until then: the denial's wait, or the end of the block that gave it. */
  readonly until: number;
  /**
   * Milliseconds the bucket still waits after `until`: a block cached only
   * to its end (a request after it must reach the store, which may block
   * again) may deny with a longer bucket wait. 0 for other denials.
   */
  readonly beyond: number;
  readonly cost: number;
  readonly list: readonly Policy[];
  readonly decision: Decision;
  /** The last answer given from this denial: repeated while its retryAfter stays the same. */
  last: Decision | undefined;
  /** `last` has been given out more than once (and is frozen). */
  shared: boolean;
}

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
    this.#sync = store instanceof MemoryStore;
    this.#observability(options, clock, store);
    const { onStoreError = "insurance", instances = 1, cacheDenials = true } = options;
    if (!MODES.includes(onStoreError)) {
      throw new ConfigError(
        "onStoreError",
        onStoreError,
        `must be one of ${MODES.map((m) => `"${m}"`).join(", ")}`,
        'choose what decides while the store is down, e.g. onStoreError: "insurance"',
      );
    }
    if (!Number.isInteger(instances) || instances < 1 || instances > 10_000) {
      throw new ConfigError(
        "instances",
        instances,
        "must be an integer from 1 to 10000",
        "give the number of instances sharing the store, e.g. instances: 4",
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
    this.instances = instances;
    const timeout = (store as Store).timeout;
    if (timeout !== undefined) {
      if (typeof timeout !== "number" || !(timeout > 0)) {
        throw new ConfigError(
          "store.timeout",
          timeout,
          "must be a number of milliseconds > 0",
          "set the store's timeout option, e.g. new RedisStore({ client, timeout: 50 })",
        );
      }
      this.#timeout = timeout;
      this.#remote = true;
      this.#cacheClock = store.clock ?? turnMonotonic;
      if (cacheDenials) this.#denials = new Map();
      if (onStoreError === "insurance")
        this.#insurance = new MemoryStore({ clock, maxKeys: 100_000 });
    }
  }

  /** What decides while the store fails; see StoreErrorMode. */
  readonly onStoreError: StoreErrorMode;
  /** Instances expected to share the store; the insurance limiter gets 1/instances of each policy. */
  readonly instances: number;
  readonly #remote: boolean = false;
  /** The store is a MemoryStore: it always answers at once, never with a promise. */
  readonly #sync: boolean;
  /** events: listen here for decisions, limited requests, store errors, the breaker, evictions, the fallback. */
  readonly events = new LimiterEvents();
  #top: TopLimited | undefined;
  #fallingBack = false;
  #timeout = 0;
  #cacheClock: Clock = turnMonotonic;
  readonly #repeats = new RepeatMemo();
  readonly #waiters = new Waiters(this);
  #lastDecision: Decision | undefined;
  #lastPromise: Promise<Decision> | undefined;
  #denials: Map<string, Denial> | undefined;
  #insurance: MemoryStore | undefined;
  /** This limiter's policies and those adopted from the HTTP layer, once any were; see adopt. */
  #every: readonly Policy[] | undefined;
  readonly #scaled = new WeakMap<readonly Policy[], readonly Policy[]>();
  #queue: Call[] = [];
  #head = 0;
  #armed = false;
  #breaker: BreakerState = "closed";
  #failures = 0;
  #streakStart = 0;
  #nextProbe = 0;
  #stats = {
    storeCalls: 0,
    storeErrors: 0,
    storeTimeouts: 0,
    lateReplies: 0,
    fallbacks: 0,
    cached: 0,
    breakerOpens: 0,
    settleErrors: 0,
  };

  /** stats counts store calls, failures, fallbacks and cached denials, and gives the breaker's state. */
  stats(): LimiterStats {
    return { ...this.#stats, breaker: this.#breaker };
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

  /**
   * refund gives `cost` tokens (default 1, any whole number up to
   * Number.MAX_SAFE_INTEGER) back to every policy's bucket for `key`, never
   * above capacity: a refund to a full bucket changes nothing. It never
   * rejects for a store failure (see Settlement.applied); a bad key or cost
   * rejects with TypeError or CostError.
   */
  refund(key: string, options?: ConsumeOptions): Promise<Settlement> {
    try {
      assertKey(key);
      const bounded = boundKey(key);
      const cost = costOf(options);
      const problem = checkAmount(cost, 1);
      if (problem !== undefined) throw new CostError(cost, problem);
      const done = this.#adjust(bounded, -cost, "refund", this.store, this.policies);
      return done.then((settlement) => {
        if (settlement.applied) this.#waiters.wake(bounded);
        return settlement;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * reserve decides and spends `cost` (the estimate) exactly like `consume`,
   * and returns a Reservation to settle with the real cost once known.
   */
  async reserve(key: string, options?: ConsumeOptions): Promise<Reservation> {
    const cost = costOf(options);
    const decision = await this.check(key, cost, true, this.policies);
    let settled: Promise<Settlement> | undefined;
    const insured = decision.reason === "insurance";
    const settle = (actual: number): Promise<Settlement> => {
      if (settled !== undefined) return settled;
      const problem = checkAmount(actual, 0);
      if (problem !== undefined) return Promise.reject(new CostError(actual, problem));
      if (!decision.allowed || decision.reason === "fail-open") settled = NOTHING;
      else if (actual === cost) settled = Promise.resolve({ extra: 0, dropped: 0, applied: true });
      else {
        // An estimate the insurance limiter spent is settled there, where it was charged.
        const store = insured ? (this.#insurance as MemoryStore) : this.store;
        const list = insured ? this.#scale(this.policies) : this.policies;
        settled = this.#adjust(key, actual - cost, "settle", store, list);
      }
      return settled;
    };
    return { decision, cost, settle, cancel: () => settle(0) };
  }

  /**
   * block keeps `key` out for `ms` milliseconds (1 ms to 365 days) from the
   * store's now, on every instance sharing the store: its requests are denied
   * with `reason: "blocked"` and nothing is spent. A block in force that ends
   * later is kept; `reset(key)` lifts it. Rejects when the store fails.
   */
  async block(key: string, ms: number): Promise<void> {
    assertKey(key);
    key = boundKey(key);
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_INTERVAL) {
      throw new RangeError(
        `floodgate: block(key, ms) takes whole milliseconds from 1 to ${MAX_INTERVAL}, got ${String(ms)}`,
      );
    }
    const store = this.store;
    if (store.block === undefined) throw noSupport("block", store);
    this.#denials?.delete(key);
    try {
      const reply = await this.#within(store.block(key, this.policies, ms));
      const until = reply[2 + 2 * this.policies.length] as number;
      if (this.events.wants.block) this.events.emit("block", key, until, undefined);
    } catch (error) {
      this.#adjustFailed(error, "block", key);
      throw error;
    }
  }

  /**
   * adjust charges `delta` after the fact to `store`, once: a failure is
   * counted and emitted, and the promise still resolves (applied false).
   */
  #adjust(
    key: string,
    delta: number,
    operation: "refund" | "settle",
    store: Store,
    list: readonly Policy[],
  ): Promise<Settlement> {
    if (store.adjust === undefined) return Promise.reject(noSupport(operation, store));
    this.#denials?.delete(key);
    const done = (reply: StoreReply): Settlement => {
      const dropped = reply[1] as number;
      const events = this.events;
      if (operation === "refund") {
        if (events.wants.refund) events.emit("refund", key, -delta);
      } else if (events.wants.settle) events.emit("settle", key, delta, dropped);
      return { extra: delta, dropped, applied: true };
    };
    const failed = (error: unknown): Settlement => {
      this.#adjustFailed(error, operation, key);
      return FAILED;
    };
    try {
      const reply = store.adjust(key, list, delta);
      if (!(reply instanceof Promise)) return Promise.resolve(done(reply));
      return this.#within(reply).then(done, failed);
    } catch (error) {
      return Promise.resolve(failed(error));
    }
  }

  #adjustFailed(error: unknown, operation: AdjustOperation, key: string): void {
    this.#stats.settleErrors++;
    if (this.events.wants["settle-error"]) this.events.emit("settle-error", error, operation, key);
  }

  /** within rejects with StoreTimeoutError when a network store misses its deadline. */
  async #within<T>(work: T | Promise<T>): Promise<T> {
    if (!this.#remote || !(work instanceof Promise)) return work;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreTimeoutError(this.#timeout)), this.#timeout);
    });
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
      work.catch(() => {});
    }
  }

  /** blockStarted tells listeners that a denial started a block (a policy's blockFor). */
  #blockStarted(key: string, list: readonly Policy[], reply: StoreReply, cost: number): void {
    let policy: Policy | undefined;
    for (let i = 0; i < list.length; i++) {
      const p = list[i] as Policy;
      if (p.blockFor > 0 && (reply[2 + 2 * i] as number) < cost) {
        if (policy === undefined || p.blockFor > policy.blockFor) policy = p;
      }
    }
    this.events.emit("block", key, reply[2 + 2 * list.length] as number, policy?.name);
  }

  /**
   * reset forgets `key`: its next request sees full buckets and any block is
   * lifted, under this limiter's policies and every policy the HTTP layer has
   * charged through it (tiers, route policies).
   */
  async reset(key: string): Promise<void> {
    assertKey(key);
    key = boundKey(key);
    const every = this.#every ?? this.policies;
    this.#denials?.delete(key);
    this.#insurance?.reset(key, this.#scale(every));
    const done = this.store.reset(key, every);
    if (!this.#remote || !(done instanceof Promise)) {
      await done;
      this.#waiters.wake(key);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreTimeoutError(this.#timeout)), this.#timeout);
    });
    try {
      await Promise.race([done, late]);
      this.#waiters.wake(key);
    } finally {
      clearTimeout(timer);
      done.catch(() => {});
    }
  }

  /**
   * wait resolves once `cost` tokens have been spent for `key`, sleeping as long
   * as needed (for throttling outbound calls). Waiters on one key are served
   * in arrival order (see Waiters). It rejects with WaitTimeoutError as soon as
   * the wait is known to pass `maxWait`, with the signal's reason when aborted,
   * and with ClosedError when the limiter closes.
   */
  wait(key: string, options?: WaitOptions): Promise<Decision> {
    return this.#waiters.wait(key, options);
  }

  /**
   * adopt makes `reset` forget a key's buckets under `list` too: the HTTP
   * layer calls it once per policy list it charges through this limiter (a
   * tier, a route's policy). Buckets are kept per policy name, so a name
   * already known adds nothing; the HTTP layer bounds how many names a store
   * sees. @internal
   */
  adopt(list: readonly Policy[]): void {
    const every = this.#every ?? this.policies;
    const fresh = list.filter((p) => !every.some((q) => q.name === p.name));
    if (fresh.length > 0) this.#every = Object.freeze([...every, ...fresh]);
  }

  /** close releases the store. */
  async close(): Promise<void> {
    this.#waiters.close();
    await this.store.close?.();
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
    key = boundKey(key);
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

  /** reportFailure tells listeners of a failed store call. */
  #reportFailure(timedOut: boolean, error: unknown): void {
    if (!this.events.wants["store-error"]) return;
    if (timedOut) this.events.emit("store-error", new StoreTimeoutError(this.#timeout), "timeout");
    else this.events.emit("store-error", error, "error");
  }

  /** fellBack tells listeners, once per outage, that onStoreError decides; `active` false when it ends. */
  #fellBack(active: boolean): void {
    this.#fallingBack = active;
    if (this.events.wants.insurance) this.events.emit("insurance", active, this.onStoreError);
  }

  /** decide is check without the reporting. */
  #decide(
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
    if (this.#remote) return this.#remoteCheck(key, cost, spend, list);
    const reply = this.store.consume(key, list, cost, spend);
    if (this.#sync) {
      if ((reply as StoreReply)[1] === BLOCK_STARTED && this.events.wants.block) {
        this.#blockStarted(key, list, reply as StoreReply, cost);
      }
      return this.#repeats.decide(key, list, reply as StoreReply, cost);
    }
    if (reply instanceof Promise) {
      return reply.then((r) => {
        if (r[1] === BLOCK_STARTED && this.events.wants.block)
          this.#blockStarted(key, list, r, cost);
        return decide(list, r, cost, "store");
      });
    }
    if (reply[1] === BLOCK_STARTED && this.events.wants.block) {
      this.#blockStarted(key, list, reply, cost);
    }
    return this.#repeats.decide(key, list, reply, cost);
  }

  /**
   * remoteCheck decides with a network store: a cached denial if one is in
   * force, the fallback while the breaker is open, else the store within its
   * deadline.
   */
  #remoteCheck(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
  ): Decision | Promise<Decision> {
    const denials = this.#denials;
    if (denials !== undefined) {
      const hit = denials.get(key);
      if (hit !== undefined) {
        const now = this.#cacheClock();
        if (hit.until <= now) denials.delete(key);
        else if (hit.list === list && cost === hit.cost) {
          this.#stats.cached++;
          return cachedDecision(hit, now);
        }
      }
    }
    let probe = false;
    if (this.#breaker !== "closed") {
      const now = performance.now();
      if (this.#breaker === "half-open" || now < this.#nextProbe) {
        return this.#fallback(key, cost, spend, list);
      }
      // Nothing is sent while the client has no connection, so no probe is spent.
      if ((this.store as Store).available?.() === false)
        return this.#fallback(key, cost, spend, list);
      this.#breaker = "half-open";
      this.#nextProbe = now + PROBE_EVERY;
      probe = true;
    }
    const sentAt = this.#cacheClock();
    const started = performance.now();
    this.#stats.storeCalls++;
    let reply: StoreReply | Promise<StoreReply>;
    try {
      reply = this.store.consume(key, list, cost, spend);
    } catch (error) {
      this.#failed(probe, false, error);
      return this.#fallback(key, cost, spend, list);
    }
    if (!(reply instanceof Promise)) {
      this.#succeeded();
      return this.#stored(key, cost, spend, list, sentAt, reply);
    }
    return new Promise<Decision>((resolve) => {
      const call: Call = {
        done: false,
        deadline: started + this.#timeout,
        sentAt,
        probe,
        key,
        cost,
        spend,
        list,
        resolve,
      };
      this.#queue.push(call);
      if (!this.#armed) this.#arm();
      reply.then(
        (r) => {
          if (call.done) {
            this.#stats.lateReplies++;
            return;
          }
          call.done = true;
          this.#succeeded();
          resolve(this.#stored(key, cost, spend, list, sentAt, r));
        },
        (error: unknown) => {
          if (call.done) return;
          call.done = true;
          this.#failed(probe, false, error);
          resolve(this.#fallback(key, cost, spend, list));
        },
      );
    });
  }

  /** stored turns a store reply into a decision, caching a denial. */
  #stored(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    sentAt: number,
    reply: StoreReply,
  ): Decision {
    if (reply[1] === BLOCK_STARTED && this.events.wants.block) {
      this.#blockStarted(key, list, reply, cost);
    }
    const decision = decide(list, reply, cost, "store");
    const denials = this.#denials;
    if (denials === undefined) return decision;
    if (!decision.allowed) {
      // A consume that a peek's denial would answer must reach the store, where it starts a block.
      if (!spend && list.some((p) => p.blockFor > 0)) return decision;
      if (denials.size >= MAX_CACHED) this.#trimDenials(denials);
      let beyond = 0;
      if (decision.reason === "blocked") {
        const left = (reply[2 + 2 * list.length] as number) - decision.now;
        if (decision.retryAfter > left) beyond = decision.retryAfter - left;
      }
      denials.set(key, {
        until: sentAt + decision.retryAfter - beyond,
        beyond,
        cost,
        list,
        decision,
        last: undefined,
        shared: false,
      });
    } else if (denials.size !== 0) {
      // This instance just spent tokens, so a cached wait (for another cost) is now too short.
      denials.delete(key);
    }
    return decision;
  }

  #trimDenials(denials: Map<string, Denial>): void {
    const now = this.#cacheClock();
    for (const [key, d] of denials) if (d.until <= now) denials.delete(key);
    if (denials.size < MAX_CACHED * 0.9) return;
    let drop = denials.size - MAX_CACHED / 2;
    for (const key of denials.keys()) {
      if (drop-- <= 0) break;
      denials.delete(key);
    }
  }

  #succeeded(): void {
    this.#failures = 0;
    if (this.#breaker !== "closed") {
      this.#breaker = "closed";
      if (this.events.wants["breaker-close"]) this.events.emit("breaker-close");
    }
    if (this.#fallingBack) this.#fellBack(false);
  }

  #failed(probe: boolean, timedOut: boolean, error?: unknown): void {
    this.#reportFailure(timedOut, error);
    if (timedOut) this.#stats.storeTimeouts++;
    else this.#stats.storeErrors++;
    const now = performance.now();
    if (this.#failures++ === 0) this.#streakStart = now;
    if (
      probe ||
      (this.#breaker === "closed" &&
        this.#failures >= BREAKER_FAILURES &&
        now - this.#streakStart >= BREAKER_SPAN)
    ) {
      if (this.#breaker === "closed") {
        this.#stats.breakerOpens++;
        if (this.events.wants["breaker-open"]) this.events.emit("breaker-open", this.#failures);
        this.#nextProbe = performance.now() + PROBE_EVERY;
      }
      this.#breaker = "open";
    }
  }

  /**
   * arm sets one timer for the oldest call in flight; every call has the same
   * timeout, so deadlines come in the order calls were sent.
   */
  #arm(): void {
    const queue = this.#queue;
    while (this.#head < queue.length && (queue[this.#head] as Call).done) this.#head++;
    if (this.#head >= queue.length) {
      this.#queue = [];
      this.#head = 0;
      return;
    }
    this.#armed = true;
    const wait = (queue[this.#head] as Call).deadline - performance.now();
    setTimeout(this.#onTimer, Math.max(1, Math.ceil(wait))).unref();
  }

  /**
   * The timer only schedules the check: timers run before the event loop
   * reads sockets, so a reply that already arrived while the loop was busy
   * would lose to its deadline. setImmediate runs after that read, so a reply
   * that has arrived wins.
   */
  readonly #onTimer = (): void => {
    setImmediate(this.#expire);
  };

  readonly #expire = (): void => {
    const now = performance.now();
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const call = queue[this.#head] as Call;
      if (!call.done) {
        if (call.deadline > now) break;
        call.done = true;
        this.#failed(call.probe, true);
        call.resolve(this.#fallback(call.key, call.cost, call.spend, call.list));
      }
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    this.#armed = false;
    this.#arm();
  };

  /** fallback decides by `onStoreError` while the store cannot. */
  #fallback(key: string, cost: number, spend: boolean, list: readonly Policy[]): Decision {
    this.#stats.fallbacks++;
    if (!this.#fallingBack) this.#fellBack(true);
    if (this.#insurance !== undefined) {
      const scaled = this.#scale(list);
      return decide(scaled, this.#insurance.consume(key, scaled, cost, spend), cost, "insurance");
    }
    const now = this.clock();
    const allow = this.onStoreError === "allow";
    const reply: number[] = [now, allow ? 1 : 0];
    for (const p of list) reply.push(allow ? p.capacity - cost : 0, now);
    const decision = decide(list, reply, cost, allow ? "fail-open" : "fail-closed");
    if (allow) return decision;
    // Retry when the store is tried again, not when an empty bucket would refill.
    const retryAfter =
      this.#breaker === "closed"
        ? PROBE_EVERY
        : Math.max(1, Math.ceil(this.#nextProbe - performance.now()));
    return { ...decision, retryAfter };
  }

  /** scale divides each policy by `instances` for the insurance limiter. */
  #scale(list: readonly Policy[]): readonly Policy[] {
    const n = this.instances;
    if (n === 1) return list;
    let scaled = this.#scaled.get(list);
    if (scaled === undefined) {
      scaled = list.map((p) => {
        const capacity = Math.max(1, Math.floor(p.capacity / n));
        const exact = p.refillRate % n === 0;
        const refillRate = exact ? p.refillRate / n : p.refillRate;
        const interval = exact ? p.interval : p.interval * n;
        return Object.freeze({
          name: p.name,
          capacity,
          refillRate,
          interval,
          window: windowOf(capacity, refillRate, interval),
          maxDebt: Math.floor(p.maxDebt / n),
          blockFor: p.blockFor,
        });
      });
      this.#scaled.set(list, scaled);
    }
    return scaled;
  }
}

/** NOTHING settles a reservation that spent nothing in the store. */
const NOTHING: Promise<Settlement> = Promise.resolve(
  Object.freeze({ extra: 0, dropped: 0, applied: false }),
);
const FAILED: Settlement = Object.freeze({ extra: 0, dropped: 0, applied: false });

function noSupport(operation: AdjustOperation, store: Store): ConfigError {
  return new ConfigError(
    "store",
    store,
    `has no ${operation === "block" ? "block" : "adjust"} method, so ${operation} cannot work`,
    "use MemoryStore or RedisStore, or implement Store.adjust and Store.block",
  );
}

/** cachedDecision answers from a denial still in force; only the wait has moved on. */
function cachedDecision(hit: Denial, now: number): Decision {
  const retryAfter = Math.ceil(hit.until - now) + hit.beyond;
  // Within one millisecond the answer is the same: give the same frozen Decision (see RepeatMemo).
  if (hit.last !== undefined && hit.last.retryAfter === retryAfter) {
    // Frozen once it is handed out twice, as RepeatMemo does.
    if (!hit.shared) {
      Object.freeze(hit.last);
      hit.shared = true;
    }
    return hit.last;
  }
  const d = hit.decision;
  // Spelled out in decide's field order, so cached answers share one hidden class with the store's.
  hit.shared = false;
  hit.last = {
    allowed: d.allowed,
    policy: d.policy,
    limit: d.limit,
    remaining: d.remaining,
    resetAt: d.resetAt,
    retryAfter,
    policies: d.policies,
    // A block replayed from the cache is still a block (Retry-After is its time left).
    reason: d.reason === "blocked" ? "blocked" : "cached",
    // The store's clock has moved on by as much as the wait has shrunk.
    now: d.now + d.retryAfter - retryAfter,
  };
  return hit.last;
}

/**
 * costOf is a call's cost: 1 when left out. Anything given, null included,
 * goes to the cost check: a silent default would hide a caller's bug.
 */
function costOf(options: ConsumeOptions | undefined): number {
  const cost = options?.cost;
  return cost === undefined ? 1 : cost;
}
