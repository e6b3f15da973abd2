import { performance } from "node:perf_hooks";
import { type Clock, checkClock, turnNow } from "./clock.js";
import {
  BLOCK_STARTED,
  type Decision,
  decide,
  RepeatMemo,
  type StoreReply,
} from "./core/decision.js";
import { ClosedError, ConfigError, CostError, describe } from "./core/errors.js";
import { assertKey, boundKey } from "./core/key.js";
import { assertCallOptions, checkOptions } from "./core/options.js";
import {
  checkAmount,
  checkCost,
  MAX_INTERVAL,
  type Policy,
  type PolicyInput,
  policies as toPolicies,
} from "./core/policy.js";
import { isThenable } from "./core/thenable.js";
import { type AdjustOperation, LimiterEvents, outcomeOf, reportBlock } from "./events.js";
import { attachLogger, type Logger } from "./logger.js";
import { Guard, IDLE_STATS, type LimiterStats, type StoreErrorMode } from "./stores/guard.js";
import { MemoryStore } from "./stores/memory-store.js";
import type { Store } from "./stores/store.js";
import { type TopKey, TopLimited } from "./top-keys.js";
import { Waiters, type WaitOptions } from "./waiters.js";

export type { BreakerState, LimiterStats, StoreErrorMode } from "./stores/guard.js";
export type { WaitOptions } from "./waiters.js";

/** Decider answers one checked request; the limiter picks one when it is built. */
type Decider = (
  key: string,
  cost: number,
  spend: boolean,
  list: readonly Policy[],
) => Decision | Promise<Decision>;

export interface RateLimiterOptions {
  /** The limits every key is held to; a request passes only if all of them have room. */
  policies?: readonly PolicyInput[] | undefined;
  /** Shorthand for `policies: [policy]`. */
  policy?: PolicyInput | undefined;
  /** Where buckets live. Default: a new MemoryStore (using `clock`). */
  store?: Store | undefined;
  /** Returns epoch ms; default a clock that never jumps, read once per event-loop turn (see turnNow). Used by the default MemoryStore and the top-limited summary. */
  clock?: Clock | undefined;
  /**
   * What decides while a network store (RedisStore) fails or misses its
   * deadline: `"insurance"` (default), `"allow"` or `"deny"`. See StoreErrorMode.
   */
  onStoreError?: StoreErrorMode | undefined;
  /**
   * Instances sharing the store, integer >= 1. The insurance fallback gives
   * this instance 1/instances of every policy (and of the tokens the store
   * last reported for a key), so all of them together stay near the shared
   * limit while the store is down. Default: learned through the store
   * (`Store.members`, refreshed every 5 s), 1 for a store that cannot tell.
   */
  instances?: number | undefined;
  /**
   * With a network store, answer a client that the store has denied locally
   * (for the same cost and policies) until the `retryAfter` it was given
   * (counted from when the call was sent):
   * no other instance can add tokens sooner, so this is exact; a `reset` made
   * on another instance is seen here once that wait ends. Default true.
   */
  cacheDenials?: boolean | undefined;
  /**
   * A pino-style logger (`info`, `warn`, `error` taking fields and a message).
   * floodgate logs store errors, the breaker, the fallback and evicted
   * throttled clients: each kind at most once per `logInterval`, never per request.
   */
  logger?: Logger | undefined;
  /** Milliseconds between two log lines of one kind, integer >= 1. Default 60000. */
  logInterval?: number | undefined;
  /**
   * The summary behind `topLimited()`: `size` keys kept (default 100) over
   * windows of `window` ms (default 60000), or `false` to keep none.
   */
  topLimited?: { size?: number | undefined; window?: number | undefined } | false | undefined;
}

export interface ConsumeOptions {
  /** Tokens this request spends: a whole number from 1 to the smallest capacity. Default 1. */
  cost?: number | undefined;
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

/**
 * RateLimiter holds every key to its policies. It validates its options when
 * built and throws ConfigError naming the option, the value and the fix.
 */
export class RateLimiter {
  readonly policies: readonly Policy[];
  readonly store: Store;
  readonly clock: Clock;

  constructor(options: RateLimiterOptions) {
    checkOptions(options, OPTIONS, {
      name: "options",
      kind: "RateLimiter",
      prefix: "",
      example: "new RateLimiter({ policy: { capacity: 10, refillRate: 2, interval: 1000 } })",
    });
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
    if (options.clock !== undefined) checkClock(clock, "clock");
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
      // Optimised code reads an element of a frozen array through a generic
      // call (Node 20), so the store and decide index an unfrozen copy of
      // this limiter's own policies: the same Policy objects, never handed out.
      const own = this.policies;
      const plain = [...own];
      this.#decider = (key, cost, spend, given) => {
        const list = given === own ? plain : given;
        const reply = store.consume(key, list, cost, spend);
        // An allowed decision is always new: RepeatMemo only remembers denials.
        return reply[1] === 1
          ? decide(list, reply, cost, "store")
          : this.#denied(key, list, reply, cost);
      };
    } else {
      this.#sync = false;
      this.#decider = (key, cost, spend, list) => {
        const reply = store.consume(key, list, cost, spend);
        // Any thenable, not only this realm's Promise: a store may use another promise library.
        if (isThenable(reply)) {
          return this.#tracked(reply).then((r) => {
            if (r[1] === BLOCK_STARTED) reportBlock(this.events, key, list, r, cost);
            return decide(list, r, cost, "store");
          });
        }
        return this.#denied(key, list, reply, cost);
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
  readonly #waiters = new Waiters(this);
  /** This limiter's policies and those adopted from the HTTP layer, once any were; see adopt. */
  #every: readonly Policy[] | undefined;
  /** Refunds, settles and blocks that failed or missed the store's deadline. */
  #settleErrors = 0;
  /** Rejects each store call in flight to a store without a deadline; see tracked. */
  readonly #inFlight = new Set<(error: unknown) => void>();

  /** stats counts store calls, failures, fallbacks, cached denials and lost buckets, and gives the breaker's state. */
  stats(): LimiterStats {
    const stats = this.#guard?.stats() ?? { ...IDLE_STATS };
    stats.settleErrors = this.#settleErrors;
    return stats;
  }

  /** consume spends `cost` tokens (default 1) from every policy's bucket for `key`, all or nothing. */
  consume(key: string, options?: ConsumeOptions): Promise<Decision> {
    try {
      const d = this.check(key, costOf(options), true, this.policies);
      // A repeated denial is the same frozen Decision (RepeatMemo): its settled promise can be shared too.
      if (d === this.#lastDecision) return this.#lastPromise as Promise<Decision>;
      const promise = Promise.resolve(d);
      if (!(d as Decision).allowed && (this.#sync || !(d instanceof Promise))) {
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
   * rejects with TypeError or CostError. `list` is for the HTTP layer, which
   * refunds under the policies it charged (a tier's, a route's); leave it out.
   */
  refund(
    key: string,
    options?: ConsumeOptions,
    list: readonly Policy[] = this.policies,
  ): Promise<Settlement> {
    try {
      assertKey(key);
      const bounded = boundKey(key);
      const cost = costOf(options);
      const problem = checkAmount(cost, 1);
      if (problem !== undefined) throw new CostError(cost, problem);
      if (this.#closed) throw new ClosedError("the RateLimiter");
      const done = this.#adjust(bounded, -cost, "refund", list);
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
    const bounded = boundKey(key);
    let settled: Promise<Settlement> | undefined;
    const insured = decision.reason === "insurance";
    const settle = (actual: number): Promise<Settlement> => {
      if (settled !== undefined) return settled;
      const problem = checkAmount(actual, 0);
      if (problem !== undefined) return Promise.reject(new CostError(actual, problem));
      if (!decision.allowed || decision.reason === "fail-open") settled = NOTHING;
      else if (actual === cost) settled = Promise.resolve({ extra: 0, dropped: 0, applied: true });
      // As refund: a closed limiter sends nothing more to the store it closed.
      else if (this.#closed) return Promise.reject(new ClosedError("the RateLimiter"));
      else {
        // An estimate the insurance fallback spent is settled there, where it was charged.
        settled =
          insured && this.#guard !== undefined
            ? Promise.resolve(
                this.#settled(
                  bounded,
                  actual - cost,
                  "settle",
                  this.#guard.adjustFallback(bounded, this.policies, actual - cost),
                ),
              )
            : this.#adjust(bounded, actual - cost, "settle", this.policies);
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
    if (this.#closed) throw new ClosedError("the RateLimiter");
    this.#guard?.forget(key);
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
   * adjust charges `delta` after the fact to the store, once: a failure is
   * counted and emitted, and the promise still resolves (applied false).
   */
  #adjust(
    key: string,
    delta: number,
    operation: "refund" | "settle",
    list: readonly Policy[],
  ): Promise<Settlement> {
    const store = this.store;
    if (store.adjust === undefined) return Promise.reject(noSupport(operation, store));
    this.#guard?.forget(key);
    const failed = (error: unknown): Settlement => {
      this.#adjustFailed(error, operation, key);
      return FAILED;
    };
    try {
      const reply = store.adjust(key, list, delta);
      if (!isThenable(reply)) return Promise.resolve(this.#settled(key, delta, operation, reply));
      return this.#within(reply).then((r) => this.#settled(key, delta, operation, r), failed);
    } catch (error) {
      return Promise.resolve(failed(error));
    }
  }

  /** settled reports a charge after the fact that the store (or the fallback) applied. */
  #settled(
    key: string,
    delta: number,
    operation: "refund" | "settle",
    reply: StoreReply,
  ): Settlement {
    const dropped = reply[1] as number;
    const events = this.events;
    if (operation === "refund") {
      if (events.wants.refund) events.emit("refund", key, -delta);
    } else if (events.wants.settle) events.emit("settle", key, delta, dropped);
    return { extra: delta, dropped, applied: true };
  }

  #adjustFailed(error: unknown, operation: AdjustOperation, key: string): void {
    this.#settleErrors++;
    if (this.events.wants["settle-error"]) this.events.emit("settle-error", error, operation, key);
  }

  /** within rejects with StoreTimeoutError when a network store misses its deadline. */
  #within<T>(work: T | PromiseLike<T>): Promise<T> {
    if (!isThenable(work)) return Promise.resolve(work);
    if (this.#guard === undefined) return this.#tracked(work);
    return this.#guard.within(Promise.resolve(work));
  }

  /**
   * tracked is a call to a store without a deadline (no Guard): close()
   * rejects it with ClosedError while it is in flight, and a reply that
   * arrives after close() is not used. Bounded by the calls in flight.
   */
  #tracked<T>(work: PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (error: unknown): void => {
        this.#inFlight.delete(fail);
        reject(error);
      };
      this.#inFlight.add(fail);
      Promise.resolve(work).then((value) => {
        this.#inFlight.delete(fail);
        if (this.#closed) reject(new ClosedError("the RateLimiter"));
        else resolve(value);
      }, fail);
    });
  }

  /**
   * reset forgets `key`: its next request sees full buckets and any block is
   * lifted, under this limiter's policies and every policy the HTTP layer has
   * charged through it (tiers, route policies). Waiters on the key ask again.
   */
  async reset(key: string): Promise<void> {
    if (this.#closed) throw new ClosedError("the RateLimiter");
    assertKey(key);
    key = boundKey(key);
    const every = this.#every ?? this.policies;
    if (this.#guard !== undefined) await this.#guard.reset(key, every);
    else await this.store.reset(key, every);
    this.#waiters.wake(key);
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
      for (const fail of [...this.#inFlight]) fail(closed);
      this.#waiters.close();
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
    key = boundKey(key);
    // The in-memory path with no listener first, kept small so that V8 inlines the store into it.
    if (this.#sync && spend && !this.events.observing) {
      const d = this.#decide(key, cost, true, list) as Decision;
      // Nobody listens: a denial only goes to the top-limited summary, at the decision's own instant.
      if (!d.allowed) this.#top?.add(key, d.now);
      return d;
    }
    return this.#checkObserved(key, cost, spend, list, shadow);
  }

  /** checkObserved is check for a peek, a network store, or a limiter someone listens to. */
  #checkObserved(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    shadow: boolean,
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
    if (!(Number.isInteger(n) && n >= 0) && n !== Number.POSITIVE_INFINITY) {
      throw new RangeError(
        `floodgate: topLimited(n) takes a whole number of keys >= 0 (or Infinity for all), got ${describe(n)}`,
      );
    }
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

  /** denied decides a synchronous store reply that is not an admission: a block started is reported, a repeat is remembered. */
  #denied(key: string, list: readonly Policy[], reply: StoreReply, cost: number): Decision {
    if (reply[1] === BLOCK_STARTED) reportBlock(this.events, key, list, reply, cost);
    return this.#repeats.decide(key, list, reply, cost);
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
    if (cost !== 1 || list.length > 1) assertCost(cost, list);
    return this.#decider(key, cost, spend, list);
  }
}

/** assertCost throws CostError for a cost the policies cannot take (kept apart: the hot path is cost 1, one policy). */
function assertCost(cost: number, list: readonly Policy[]): void {
  const problem = checkCost(cost, list);
  if (problem !== undefined) throw new CostError(cost, problem);
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

/**
 * costOf is a call's cost: 1 when left out. Anything given, null included,
 * goes to the cost check: a silent default would hide a caller's bug.
 */
function costOf(options: ConsumeOptions | undefined): number {
  if (options === undefined) return 1;
  assertCallOptions(options, "{ cost: 5 }");
  const cost = options.cost;
  return cost === undefined ? 1 : cost;
}
