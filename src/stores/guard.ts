import { type Clock, turnMonotonic } from "../clock.js";
import { adjust, type BucketState, refill, untilFull } from "../core/bucket.js";
import { BLOCK_STARTED, charge, type Decision, decide, type StoreReply } from "../core/decision.js";
import { ClosedError } from "../core/errors.js";
import { ownCopy } from "../core/own-copy.js";
import { type Policy, windowOf } from "../core/policy.js";
import { isThenable } from "../core/thenable.js";
import { type FallbackMode, type LimiterEvents, reportBlock } from "../events.js";
import { MemoryStore } from "./memory-store.js";
import type { Store } from "./store.js";
import { StoreTimeoutError } from "./store-errors.js";

/**
 * StoreErrorMode says who decides while the store fails (error, timeout, or
 * breaker open): `"insurance"` an in-process limiter that continues each key
 * from the last state the store reported for it (a key the store never
 * reported starts with this instance's share: each policy divided by
 * `instances`), `"allow"` let every request through, `"deny"` refuse every
 * request (`reason: "fail-closed"`, `retryAfter` = the time until the store
 * is tried again).
 */
export type StoreErrorMode = FallbackMode;

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
  /**
   * Deadlines missed because this process's event loop ran late (the timer
   * fired more than half a timeout after it was due): not store failures.
   * Decisions' deadlines and those of resets, refunds, settles and blocks.
   */
  lateLoop: number;
  /** Decisions made by `onStoreError` (insurance, fail-open, fail-closed). */
  fallbacks: number;
  /** Denials answered locally from a denial the store gave earlier. */
  cached: number;
  /**
   * Buckets the store reported full although this process knew them
   * throttled and they could not have refilled yet: the store lost them
   * (Redis evicted the key under `maxmemory`), or another instance reset them.
   */
  storeEvictions: number;
  breaker: BreakerState;
  /** Times the breaker opened. */
  breakerOpens: number;
  /** Refunds, settles and blocks the store failed or missed the deadline of (never retried). */
  settleErrors: number;
}

/**
 * IDLE_STATS is what a limiter has done with its store before its first call,
 * and all a limiter whose store answers in process (nothing to guard) reports.
 */
export const IDLE_STATS: Readonly<LimiterStats> = Object.freeze({
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
  settleErrors: 0,
});

/** GuardTimers is the time a Guard runs on: real timers by default, a fake in tests. */
export interface GuardTimers {
  /** Monotonic milliseconds (`performance.now()`). */
  now(): number;
  /** Runs `fn` after `ms` milliseconds without keeping the process alive; returns a handle for `cancel`. */
  after(ms: number, fn: () => void): unknown;
  cancel(handle: unknown): void;
  /** Runs `fn` after the event loop has read its sockets (`setImmediate`). */
  soon(fn: () => void): void;
}

const realTimers: GuardTimers = {
  now: () => performance.now(),
  after: (ms, fn) => setTimeout(fn, ms).unref(),
  cancel: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  soon: (fn) => {
    setImmediate(fn);
  },
};

export interface GuardOptions {
  /** A store that answers over the network, with its `timeout` (ms > 0). */
  store: Store;
  timeout: number;
  /** Epoch ms for the fallback's buckets (the limiter's clock). */
  clock: Clock;
  onStoreError: StoreErrorMode;
  /** Instances sharing the store; undefined: learned through `store.members`, else 1. */
  instances: number | undefined;
  cacheDenials: boolean;
  events: LimiterEvents;
  timers?: GuardTimers;
}

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
/**
 * Most denials in the denial cache (over all keys and policy lists) and most
 * keys in the remembered states; past it, stale ones go, then the oldest.
 */
const MAX_KEYS = 100_000;
/** Milliseconds between two heartbeats through `store.members`, and how long one counts. */
const HEARTBEAT_EVERY = 5000;
const HEARTBEAT_TTL = 15_000;
/** Most keys whose last change (see Guard.forget) the guard holds; past it, it forgets them all at once. */
const MAX_CHANGED = 10_000;
const MAX_INSTANCES = 10_000;

/** Call is one store call in flight, waiting for its reply or its deadline. */
interface Call {
  done: boolean;
  /** The loop was late at this call's deadline once: it got one more timeout. */
  graced: boolean;
  deadline: number;
  readonly sentAt: number;
  /** The guard's count of changes (see Guard.forget) when it was sent. */
  readonly changes: number;
  readonly probe: boolean;
  readonly key: string;
  readonly cost: number;
  readonly spend: boolean;
  readonly list: readonly Policy[];
  readonly resolve: (decision: Decision) => void;
  readonly reject: (error: Error) => void;
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
 * Slot is what the denial cache holds for one key: the denial of one policy
 * list, or, while denials of several lists are in force (the gateway decides
 * every descriptor set of a domain under the domain's key, one list per set),
 * a map of them by list.
 */
type Slot = Denial | Map<readonly Policy[], Denial>;

/** Seen is the last state the store reported for one key, for the fallback and for spotting lost buckets. */
interface Seen {
  list: readonly Policy[];
  /** The store's reply, by the store's clock: `[now, allowed, tokens_0, refilledAt_0, ...]`. */
  readonly reply: number[];
  /** This process's clock minus the store's, observed when the reply arrived. */
  offset: number;
  /** The fallback's buckets for this key (this process's clock), made from `reply` at the first fallback after it. */
  buckets: BucketState[] | undefined;
  /** The guard's count of changes (see Guard.forget) when `reply` was remembered. */
  changes: number;
}

/**
 * Guard protects decisions from a slow or failing network store: a deadline
 * for every call, a circuit breaker, denials cached until they expire, and
 * the fallback `onStoreError` names. The fallback remembers: a key the store
 * has reported on continues from that state (its share of the tokens, the
 * refill time moved to this process's clock), so a slow store never hands a
 * drained key a full bucket.
 */
export class Guard {
  readonly #store: Store;
  readonly #timeout: number;
  readonly #clock: Clock;
  readonly #mode: StoreErrorMode;
  readonly #events: LimiterEvents;
  readonly #timers: GuardTimers;
  readonly #cacheClock: Clock;
  readonly #denials: Map<string, Slot> | undefined;
  /** Denials in #denials, over every key and list. */
  #denied = 0;
  /**
   * The last state the store reported, by policy list and then key: a key
   * decided under several lists keeps each (the gateway decides every
   * descriptor set of a domain under the domain's key, one list per set).
   */
  readonly #seen = new Map<readonly Policy[], Map<string, Seen>>();
  /** States in #seen, over every list. */
  #seenCount = 0;
  readonly #insurance: MemoryStore | undefined;
  #instances: number;
  /** Instances are learned through the store, and the heartbeat has not started yet. */
  #learn: boolean;
  readonly #id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  #heartbeat: unknown;
  #scaled = new WeakMap<readonly Policy[], readonly Policy[]>();
  readonly #out: number[] = [];
  /** Calls waiting for the store, in deadline order; answered ones below `#head` are cleared. */
  #queue: (Call | undefined)[] = [];
  #head = 0;
  #timer: unknown;
  /** When the armed timer is due (monotonic ms). */
  #due = 0;
  #breaker: BreakerState = "closed";
  #failures = 0;
  #streakStart = 0;
  #nextProbe = 0;
  #fallingBack = false;
  #closed = false;
  /**
   * Changes made here to keys behind the store's back: resets, refunds,
   * settles and blocks (see forget). A reply to a call sent before its key's
   * last change says nothing of the key now: it decides its own request,
   * and is neither cached nor remembered.
   */
  #changes = 0;
  /** The count of changes at each key's last one; bounded by MAX_CHANGED. */
  readonly #changedAt = new Map<string, number>();
  /**
   * Calls and states from before this count may predate a change the map let
   * go (the map holds every change made after it): treated as changed.
   */
  #changedFloor = 0;
  /** Rejects each call `within` is waiting for (reset, refund, settle, block): close() ends them. */
  readonly #waiting = new Set<(error: unknown) => void>();
  readonly #stats: LimiterStats = { ...IDLE_STATS };

  constructor(options: GuardOptions) {
    const { store, instances } = options;
    this.#store = store;
    this.#timeout = options.timeout;
    this.#clock = options.clock;
    this.#mode = options.onStoreError;
    this.#events = options.events;
    this.#timers = options.timers ?? realTimers;
    const timers = this.#timers;
    this.#cacheClock =
      store.clock ?? (options.timers === undefined ? turnMonotonic : () => timers.now());
    this.#instances = instances ?? 1;
    this.#learn = instances === undefined && typeof store.members === "function";
    if (options.cacheDenials) this.#denials = new Map();
    if (this.#mode === "insurance") {
      this.#insurance = new MemoryStore({ clock: this.#clock, maxKeys: MAX_KEYS });
    }
  }

  /** instances is how many instances share the store, as given or last learned (1 until then). */
  get instances(): number {
    return this.#instances;
  }

  stats(): LimiterStats {
    return { ...this.#stats, breaker: this.#breaker };
  }

  /**
   * forget drops `key`'s cached denials, under every policy list: a charge
   * after the fact (refund, settle, block) changed their waits. Replies to
   * calls for `key` still in flight predate it: they will not be cached or
   * remembered, and the next reply is no sign of a bucket the store lost.
   */
  forget(key: string): void {
    const changes = ++this.#changes;
    if (this.#changedAt.size >= MAX_CHANGED) {
      this.#changedAt.clear();
      // The map let go of changes up to `changes - 1`: a call or state from that count on predates none of them.
      this.#changedFloor = changes - 1;
    }
    this.#changedAt.set(ownCopy(key), changes);
    const denials = this.#denials;
    if (denials === undefined) return;
    const slot = denials.get(key);
    if (slot === undefined) return;
    this.#denied -= slot instanceof Map ? slot.size : 1;
    denials.delete(key);
  }

  /**
   * adjustFallback settles a charge after the fact on the fallback that made
   * the decision (the key's remembered share, or the insurance store), never
   * on the store: that is where the estimate was spent.
   */
  adjustFallback(key: string, list: readonly Policy[], delta: number): StoreReply {
    const seen = this.#seen.get(list)?.get(key);
    if (seen !== undefined && seen.buckets !== undefined) {
      const scaled = this.#scale(list);
      const now = this.#clock();
      const out = [now, 0];
      seen.buckets.forEach((b, i) => {
        const p = scaled[i] as Policy;
        refill(p, b, now);
        out[1] = Math.max(out[1] as number, adjust(p, b, delta, now));
        out.push(b.tokens, b.refilledAt);
      });
      return out;
    }
    const insurance = this.#insurance;
    if (insurance === undefined) return [this.#clock(), 0];
    return insurance.adjust(key, this.#scale(list), delta);
  }

  /** changedSince tells whether `key` was changed here (see forget) after the count was `changes`. */
  #changedSince(key: string, changes: number): boolean {
    return (
      changes !== this.#changes &&
      (changes < this.#changedFloor || (this.#changedAt.get(key) ?? 0) > changes)
    );
  }

  /**
   * within rejects with StoreTimeoutError when `work` (a reset, refund,
   * settle or block) misses the store's deadline, by the rules of a
   * decision's deadline: the check runs after the event loop has read its
   * sockets (a reply that has arrived wins), and a deadline the loop ran more
   * than half a timeout late for gets one more timeout (counted in
   * `lateLoop`; late again, it rejects, counted there again, as a decision
   * then falls back). close() rejects it with ClosedError.
   */
  within<T>(work: Promise<T>): Promise<T> {
    if (this.#closed) {
      work.catch(() => {});
      return Promise.reject(new ClosedError("the RateLimiter"));
    }
    const timers = this.#timers;
    return new Promise<T>((resolve, reject) => {
      let timer: unknown;
      let due = 0;
      let graced = false;
      const fail = (error: unknown): void => {
        if (!this.#waiting.delete(fail)) return;
        timers.cancel(timer);
        reject(error);
      };
      const check = (): void => {
        if (!this.#waiting.has(fail)) return;
        if (timers.now() - due > this.#timeout / 2) {
          // Missed because this loop ran late: counted as such, once per deadline, as a decision's is.
          this.#stats.lateLoop++;
          if (!graced) {
            graced = true;
            arm();
            return;
          }
        }
        fail(new StoreTimeoutError(this.#timeout));
      };
      const arm = (): void => {
        due = timers.now() + this.#timeout;
        timer = timers.after(this.#timeout, () => timers.soon(check));
      };
      this.#waiting.add(fail);
      arm();
      work.then((value) => {
        if (!this.#waiting.delete(fail)) return;
        timers.cancel(timer);
        resolve(value);
      }, fail);
    });
  }

  /**
   * decide answers one request: a cached denial if one is in force, the
   * fallback while the breaker is open, else the store within its deadline.
   */
  decide(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
  ): Decision | Promise<Decision> {
    if (this.#learn) this.#beat();
    const denials = this.#denials;
    if (denials !== undefined) {
      const slot = denials.get(key);
      if (slot !== undefined) {
        const hit = slot instanceof Map ? slot.get(list) : slot.list === list ? slot : undefined;
        if (hit !== undefined) {
          const now = this.#cacheClock();
          if (hit.until <= now) this.#drop(denials, key, slot, list);
          else if (cost === hit.cost) {
            this.#stats.cached++;
            return cachedDecision(hit, now);
          }
        }
      }
    }
    let probe = false;
    if (this.#breaker !== "closed") {
      const now = this.#timers.now();
      if (this.#breaker === "half-open" || now < this.#nextProbe) {
        return this.#fallback(key, cost, spend, list);
      }
      // Nothing is sent while the client has no connection, so no probe is spent.
      if (this.#store.available?.() === false) return this.#fallback(key, cost, spend, list);
      this.#breaker = "half-open";
      this.#nextProbe = now + PROBE_EVERY;
      probe = true;
    }
    const sentAt = this.#cacheClock();
    const started = this.#timers.now();
    this.#stats.storeCalls++;
    let answer: StoreReply | PromiseLike<StoreReply>;
    try {
      answer = this.#store.consume(key, list, cost, spend);
    } catch (error) {
      this.#failed(probe, false, error);
      return this.#fallback(key, cost, spend, list);
    }
    // Any thenable, not only this realm's Promise: a store may use another promise library.
    if (!isThenable(answer)) {
      this.#succeeded();
      return this.#stored(key, cost, spend, list, sentAt, answer);
    }
    const reply = answer;
    return new Promise<Decision>((resolve, reject) => {
      const call: Call = {
        done: false,
        graced: false,
        deadline: started + this.#timeout,
        sentAt,
        changes: this.#changes,
        probe,
        key,
        cost,
        spend,
        list,
        resolve,
        reject,
      };
      this.#queue.push(call);
      if (this.#timer === undefined) this.#arm();
      reply.then(
        (r) => {
          const stale = this.#changedSince(key, call.changes);
          if (call.done) {
            // Too late to decide this call, not too late to teach the fallback.
            this.#stats.lateReplies++;
            if (!this.#closed && !stale) this.#remember(key, cost, spend, list, r);
            return;
          }
          call.done = true;
          this.#trim();
          this.#succeeded();
          if (!stale) resolve(this.#stored(key, cost, spend, list, sentAt, r));
          else {
            // Decided before a reset, refund, settle or block made here: its own answer only.
            if (r[1] === BLOCK_STARTED) reportBlock(this.#events, key, list, r, cost);
            resolve(decide(list, r, cost, "store"));
          }
        },
        (error: unknown) => {
          if (call.done) return;
          call.done = true;
          this.#trim();
          this.#failed(probe, false, error);
          resolve(this.#fallback(key, cost, spend, list));
        },
      );
    });
  }

  /**
   * reset forgets `key` here (cached denial, remembered state, fallback
   * bucket) and in the store, within the store's deadline: it rejects with
   * StoreTimeoutError when the store does not confirm in time.
   */
  async reset(key: string, list: readonly Policy[]): Promise<void> {
    this.forget(key);
    for (const [l, keys] of this.#seen) {
      if (!keys.delete(key)) continue;
      this.#seenCount--;
      if (keys.size === 0) this.#seen.delete(l);
    }
    this.#insurance?.reset(key, this.#scale(list));
    const done = this.#store.reset(key, list);
    if (isThenable(done)) await this.within(Promise.resolve(done));
  }

  /**
   * close stops every timer the guard runs (deadlines, heartbeat) and rejects
   * the calls still waiting for the store with ClosedError. Closing twice is
   * the same as once.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#learn = false;
    if (this.#timer !== undefined) this.#timers.cancel(this.#timer);
    if (this.#heartbeat !== undefined) this.#timers.cancel(this.#heartbeat);
    this.#timer = undefined;
    this.#heartbeat = undefined;
    const queue = this.#queue;
    this.#queue = [];
    this.#head = 0;
    const closed = new ClosedError("the RateLimiter");
    for (const call of queue) {
      if (call === undefined || call.done) continue;
      call.done = true;
      call.reject(closed);
    }
    for (const fail of [...this.#waiting]) fail(closed);
  }

  /**
   * beat marks this instance live through `store.members` and learns how
   * many are: at once, then every HEARTBEAT_EVERY ms on an unref'd timer,
   * until close(). A failed beat keeps the last count.
   */
  #beat(): void {
    this.#learn = false;
    const members = this.#store.members;
    if (members === undefined || this.#closed) return;
    let answer: Promise<number>;
    try {
      answer = members.call(this.#store, this.#id, HEARTBEAT_TTL);
    } catch {
      answer = Promise.resolve(this.#instances);
    }
    Promise.resolve(answer).then(
      (n) => {
        if (typeof n !== "number" || !(n >= 1) || this.#closed) return;
        const count = Math.min(MAX_INSTANCES, Math.floor(n));
        if (count !== this.#instances) {
          this.#instances = count;
          this.#scaled = new WeakMap();
        }
      },
      () => {},
    );
    if (!this.#closed) {
      this.#heartbeat = this.#timers.after(HEARTBEAT_EVERY, () => this.#beat());
    }
  }

  /** stored turns a store reply into a decision: remembers the state, caches a denial, spots a lost bucket. */
  #stored(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    sentAt: number,
    reply: StoreReply,
  ): Decision {
    if (reply[1] === BLOCK_STARTED) reportBlock(this.#events, key, list, reply, cost);
    const decision = decide(list, reply, cost, "store");
    this.#remember(key, cost, spend, list, reply);
    const denials = this.#denials;
    if (denials === undefined) return decision;
    if (!decision.allowed) {
      // A consume that a peek's denial would answer must reach the store, where it starts a block.
      if (!spend && list.some((p) => p.blockFor > 0)) return decision;
      let beyond = 0;
      if (decision.reason === "blocked") {
        const left = (reply[2 + 2 * list.length] as number) - decision.now;
        if (decision.retryAfter > left) beyond = decision.retryAfter - left;
      }
      this.#cache(denials, key, sentAt, {
        until: sentAt + decision.retryAfter - beyond,
        beyond,
        cost,
        list,
        decision,
        last: undefined,
        shared: false,
      });
    } else if (this.#denied !== 0) {
      // This instance just spent tokens, so a cached wait (for another cost) is now too short.
      // Denials of other lists stay: a spend only lengthens their waits, and they end when the
      // store said, then ask it again; what shortens a wait (refund, settle, reset) forgets them all.
      const slot = denials.get(key);
      if (slot !== undefined) this.#drop(denials, key, slot, list);
    }
    return decision;
  }

  /** cache keeps `denial` as the answer for `key` under its list until it ends, replacing that list's last one. */
  #cache(denials: Map<string, Slot>, key: string, sentAt: number, denial: Denial): void {
    if (this.#denied >= MAX_KEYS) this.#trimDenials(denials);
    const slot = denials.get(key);
    if (slot === undefined) {
      denials.set(ownCopy(key), denial);
      this.#denied++;
    } else if (slot instanceof Map) {
      if (!slot.has(denial.list)) this.#denied++;
      slot.set(denial.list, denial);
    } else if (slot.list === denial.list || slot.until <= sentAt) {
      denials.set(key, denial);
    } else {
      denials.set(
        key,
        new Map([
          [slot.list, slot],
          [denial.list, denial],
        ]),
      );
      this.#denied++;
    }
  }

  /** drop forgets `key`'s denial under `list`. */
  #drop(denials: Map<string, Slot>, key: string, slot: Slot, list: readonly Policy[]): void {
    if (!(slot instanceof Map)) {
      if (slot.list !== list) return;
      denials.delete(key);
    } else {
      if (!slot.delete(list)) return;
      shrink(denials, key, slot);
    }
    this.#denied--;
  }

  /** remember keeps `reply` as the key's last known state, first counting a bucket the store lost. */
  #remember(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    reply: StoreReply,
  ): void {
    let keys = this.#seen.get(list);
    let seen = keys?.get(key);
    // Replies can arrive out of order (a late one after a fresh one): keep the newest state.
    if (seen !== undefined && (reply[0] as number) < (seen.reply[0] as number)) return;
    if (seen === undefined) {
      if (this.#seenCount >= MAX_KEYS) {
        this.#trimSeen();
        keys = this.#seen.get(list);
      }
      if (keys === undefined) {
        keys = new Map();
        this.#seen.set(list, keys);
      }
      seen = { list, reply: [], offset: 0, buckets: undefined, changes: this.#changes };
      keys.set(ownCopy(key), seen);
      this.#seenCount++;
    } else {
      // A reset, refund or settle made here since the last reply explains a bucket found full.
      if (!this.#changedSince(key, seen.changes)) {
        this.#countLost(key, cost, spend, list, seen.reply, reply);
      }
      seen.changes = this.#changes;
    }
    const copy = seen.reply;
    copy.length = reply.length;
    for (let i = 0; i < reply.length; i++) copy[i] = reply[i] as number;
    seen.offset = this.#clock() - (reply[0] as number);
    seen.buckets = undefined;
  }

  /**
   * countLost reports each bucket the store now calls new (refilled at its
   * `now`, full before this request) although the last reply showed it
   * throttled (denied, or short of this cost) and it could not have refilled
   * since: the store lost it, and the client got a fresh burst.
   */
  #countLost(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
    before: readonly number[],
    reply: StoreReply,
  ): void {
    const now = reply[0] as number;
    const spent = reply[1] === 1 && spend ? cost : 0;
    for (let i = 0; i < list.length; i++) {
      if (reply[3 + 2 * i] !== now) continue;
      const p = list[i] as Policy;
      if ((reply[2 + 2 * i] as number) + spent < p.capacity) continue;
      const tokens = before[2 + 2 * i] as number;
      if (before[1] !== 0 && tokens >= cost) continue;
      const elapsed = now - (before[3 + 2 * i] as number);
      const refilled = elapsed >= p.interval ? Math.floor(elapsed / p.interval) * p.refillRate : 0;
      if (tokens + refilled >= p.capacity) continue;
      this.#stats.storeEvictions++;
      if (this.#events.wants.eviction) this.#events.emit("eviction", "store", p.name, key);
    }
  }

  /**
   * trimDenials drops the denials that have ended, then, while more than 90%
   * of MAX_KEYS are left, the oldest keys' (a key's lists oldest first) down
   * to half.
   */
  #trimDenials(denials: Map<string, Slot>): void {
    const now = this.#cacheClock();
    for (const [key, slot] of denials) {
      if (!(slot instanceof Map)) {
        if (slot.until <= now) {
          denials.delete(key);
          this.#denied--;
        }
        continue;
      }
      for (const [list, d] of slot) {
        if (d.until > now) continue;
        slot.delete(list);
        this.#denied--;
      }
      shrink(denials, key, slot);
    }
    if (this.#denied < MAX_KEYS * 0.9) return;
    let drop = this.#denied - MAX_KEYS / 2;
    for (const [key, slot] of denials) {
      if (drop <= 0) break;
      if (!(slot instanceof Map)) {
        denials.delete(key);
        this.#denied--;
        drop--;
        continue;
      }
      for (const list of slot.keys()) {
        if (drop <= 0) break;
        slot.delete(list);
        this.#denied--;
        drop--;
      }
      shrink(denials, key, slot);
    }
  }

  /** trimSeen drops states that are full again by now (a fresh share says the same), then the oldest. */
  #trimSeen(): void {
    const now = this.#clock();
    for (const [list, keys] of this.#seen) {
      for (const [key, s] of keys) {
        const storeNow = now - s.offset;
        let full = true;
        for (let i = 0; i < list.length && full; i++) {
          const state = {
            tokens: s.reply[2 + 2 * i] as number,
            refilledAt: s.reply[3 + 2 * i] as number,
          };
          full = untilFull(list[i] as Policy, state, storeNow) <= 0;
        }
        if (full) {
          keys.delete(key);
          this.#seenCount--;
        }
      }
      if (keys.size === 0) this.#seen.delete(list);
    }
    // Still over 90%: down to half, oldest lists and keys first.
    if (this.#seenCount < MAX_KEYS * 0.9) return;
    for (const [list, keys] of this.#seen) {
      for (const key of keys.keys()) {
        if (this.#seenCount <= MAX_KEYS / 2) break;
        keys.delete(key);
        this.#seenCount--;
      }
      if (keys.size === 0) this.#seen.delete(list);
      if (this.#seenCount <= MAX_KEYS / 2) break;
    }
  }

  #succeeded(): void {
    this.#answered();
    if (this.#fallingBack) this.#fellBack(false);
  }

  /** answered ends a failure streak, and closes the breaker: the store answered a call. */
  #answered(): void {
    this.#failures = 0;
    if (this.#breaker !== "closed") {
      this.#breaker = "closed";
      if (this.#events.wants["breaker-close"]) this.#events.emit("breaker-close");
    }
  }

  #failed(probe: boolean, timedOut: boolean, error?: unknown): void {
    const events = this.#events;
    if (events.wants["store-error"]) {
      if (timedOut) events.emit("store-error", new StoreTimeoutError(this.#timeout), "timeout");
      else events.emit("store-error", error, "error");
    }
    if (timedOut) this.#stats.storeTimeouts++;
    else this.#stats.storeErrors++;
    // One key's bad data (a key of another type) is no outage: the store answered.
    if (!timedOut && this.#store.keyError?.(error) === true) {
      this.#answered();
      return;
    }
    const now = this.#timers.now();
    if (this.#failures++ === 0) this.#streakStart = now;
    if (
      probe ||
      (this.#breaker === "closed" &&
        this.#failures >= BREAKER_FAILURES &&
        now - this.#streakStart >= BREAKER_SPAN)
    ) {
      if (this.#breaker === "closed") {
        this.#stats.breakerOpens++;
        if (events.wants["breaker-open"]) events.emit("breaker-open", this.#failures);
        this.#nextProbe = now + PROBE_EVERY;
      }
      this.#breaker = "open";
    }
  }

  /** fellBack tells listeners, once per outage, that onStoreError decides; `active` false when it ends. */
  #fellBack(active: boolean): void {
    this.#fallingBack = active;
    if (this.#events.wants.insurance) this.#events.emit("insurance", active, this.#mode);
  }

  /**
   * arm sets one timer for the oldest call in flight; every call has the same
   * timeout (and a graced call is queued again behind the others), so
   * deadlines come in queue order.
   */
  /**
   * trim clears the answered calls at the head of the queue as replies
   * arrive (a store answers in order, so usually every one), so that an
   * answered call, its promise and its closures die young instead of
   * staying reachable until the next deadline check (a whole timeout: at
   * 100k decisions per second and a 1 s timeout, 100k calls promoted to the
   * old generation).
   */
  #trim(): void {
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length && (queue[head] as Call).done) queue[head++] = undefined;
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      this.#queue = queue.slice(head);
      head = 0;
    }
    this.#head = head;
  }

  #arm(): void {
    this.#trim();
    const queue = this.#queue;
    if (this.#head >= queue.length) {
      this.#timer = undefined;
      return;
    }
    const now = this.#timers.now();
    const wait = Math.max(1, Math.ceil((queue[this.#head] as Call).deadline - now));
    this.#due = now + wait;
    this.#timer = this.#timers.after(wait, this.#onTimer);
  }

  /**
   * The timer only schedules the check: timers run before the event loop
   * reads sockets, so a reply that already arrived while the loop was busy
   * would lose to its deadline. `soon` (setImmediate) runs after that read,
   * so a reply that has arrived wins.
   */
  readonly #onTimer = (): void => {
    this.#timers.soon(this.#expire);
  };

  /**
   * expire answers the calls whose deadline has passed. When this process's
   * own loop ran late (the check runs more than half a timeout after the
   * timer was due: a starved core, a long synchronous stretch), the store was
   * not given its time: each overdue call gets one more full timeout, counted
   * from now, and is not a failure. A call the loop is late for twice is
   * answered by the fallback, still without counting a failure, so the
   * breaker stays closed and no request waits longer than about two
   * timeouts plus the loop's own delay.
   */
  readonly #expire = (): void => {
    if (this.#closed) return;
    const now = this.#timers.now();
    const late = now - this.#due > this.#timeout / 2;
    const queue = this.#queue;
    const graced: Call[] = [];
    while (this.#head < queue.length) {
      const call = queue[this.#head] as Call;
      if (!call.done) {
        if (call.deadline > now) break;
        if (late && !call.graced) {
          call.graced = true;
          call.deadline = now + this.#timeout;
          graced.push(call);
        } else {
          call.done = true;
          if (late) {
            this.#stats.lateLoop++;
            // A probe the loop was late for is no verdict: the next one goes when due.
            if (call.probe && this.#breaker === "half-open") this.#breaker = "open";
          } else this.#failed(call.probe, true);
          call.resolve(this.#fallback(call.key, call.cost, call.spend, call.list));
        }
      }
      queue[this.#head++] = undefined;
    }
    for (const call of graced) queue.push(call);
    if (graced.length > 0) this.#stats.lateLoop += graced.length;
    this.#arm();
  };

  /** fallback decides by `onStoreError` while the store cannot. */
  #fallback(key: string, cost: number, spend: boolean, list: readonly Policy[]): Decision {
    this.#stats.fallbacks++;
    if (!this.#fallingBack) this.#fellBack(true);
    const insurance = this.#insurance;
    if (insurance !== undefined) {
      const seen = this.#seen.get(list)?.get(key);
      if (seen !== undefined) return this.#continue(seen, cost, spend);
      const scaled = this.#scale(list);
      return decide(scaled, insurance.consume(key, scaled, cost, spend), cost, "insurance");
    }
    const now = this.#clock();
    const allow = this.#mode === "allow";
    const reply: number[] = [now, allow ? 1 : 0];
    for (const p of list) reply.push(allow ? p.capacity - cost : 0, now);
    const decision = decide(list, reply, cost, allow ? "fail-open" : "fail-closed");
    if (allow) return decision;
    // Retry when the store is tried again, not when an empty bucket would refill.
    const retryAfter =
      this.#breaker === "closed"
        ? PROBE_EVERY
        : Math.max(1, Math.ceil(this.#nextProbe - this.#timers.now()));
    return { ...decision, retryAfter };
  }

  /**
   * continue decides from the key's last reported state: this instance's
   * share of the tokens the store reported (tokens / instances, rounded
   * down), refilled at this instance's share of the rate from the reported
   * refill time, moved to this process's clock by the offset seen when the
   * reply arrived.
   */
  #continue(seen: Seen, cost: number, spend: boolean): Decision {
    const scaled = this.#scale(seen.list);
    const now = this.#clock();
    let buckets = seen.buckets;
    if (buckets === undefined) {
      const n = this.#instances;
      const reply = seen.reply;
      buckets = scaled.map((p, i) => ({
        tokens: Math.min(p.capacity, Math.floor((reply[2 + 2 * i] as number) / n)),
        refilledAt: (reply[3 + 2 * i] as number) + seen.offset,
      }));
      seen.buckets = buckets;
    }
    for (let i = 0; i < buckets.length; i++) {
      refill(scaled[i] as Policy, buckets[i] as BucketState, now);
    }
    charge(buckets, buckets.length, cost, spend, now, this.#out);
    return decide(scaled, this.#out, cost, "insurance");
  }

  /** scale divides each policy by `instances` for the fallback: this instance's share. */
  #scale(list: readonly Policy[]): readonly Policy[] {
    const n = this.#instances;
    if (n === 1) return list;
    let scaled = this.#scaled.get(list);
    if (scaled === undefined) {
      scaled = list.map((p) => {
        const capacity = Math.max(1, Math.floor(p.capacity / n));
        // refillRate / (n x interval), in steps of at most refillRate / n tokens: a share that
        // refills in small steps, never faster than 1/n of the policy (rounded towards slower).
        const refillRate = Math.max(1, Math.floor(p.refillRate / n));
        const interval = Math.ceil((p.interval * n * refillRate) / p.refillRate);
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

/** shrink puts back under `key` what is left of a map of denials: nothing, the one denial, or the map. */
function shrink(
  denials: Map<string, Slot>,
  key: string,
  map: Map<readonly Policy[], Denial>,
): void {
  if (map.size === 0) denials.delete(key);
  else if (map.size === 1) denials.set(key, map.values().next().value as Denial);
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
