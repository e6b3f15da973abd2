import { retryAfter } from "./core/bucket.js";
import type { Decision } from "./core/decision.js";
import { ClosedError, ConfigError, CostError, WaitTimeoutError } from "./core/errors.js";
import { assertKey, boundKey } from "./core/key.js";
import { assertCallOptions } from "./core/options.js";
import { checkCost, type Policy } from "./core/policy.js";

/** The longest sleep one timer can take: Node fires a longer one after 1 ms. */
export const MAX_TIMER = 2 ** 31 - 1;

export interface WaitOptions {
  /** Tokens to spend: a whole number from 1 to the smallest capacity. Default 1. */
  cost?: number | undefined;
  /** Aborts the wait; the promise rejects with the signal's reason, and the waiter leaves the queue at once. */
  signal?: AbortSignal | undefined;
  /** Most milliseconds to wait; a longer wait rejects with WaitTimeoutError as soon as it is known. Default: no limit. */
  maxWait?: number | undefined;
}

/** Decider is what waiters spend through (a RateLimiter): `check` is one store call. */
export interface Decider {
  readonly policies: readonly Policy[];
  check(
    key: string,
    cost: number,
    spend: boolean,
    list: readonly Policy[],
  ): Decision | Promise<Decision>;
}

/** Waiter is one `wait` call in a key's queue. */
interface Waiter {
  readonly cost: number;
  readonly maxWait: number;
  /** performance.now() past which it must not wait. */
  readonly deadline: number;
  readonly resolve: (decision: Decision) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Its maxWait timer, while it waits behind others. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Line is one key's queue: only its head asks the store, the others wait their turn. */
interface Line {
  readonly key: string;
  /** In arrival order; a Set, so one leaving (an abort, a maxWait) is O(1) however long the line. */
  readonly waiters: Set<Waiter>;
  /** The head's sleep until its tokens are due. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** A store call for the head is in flight. */
  busy: boolean;
  /** The last decision for this key, to tell the next head how long it must wait without asking. */
  last: Decision | undefined;
  lastCost: number;
  /** performance.now() when `last` arrived. */
  lastAt: number;
  /** The head was just denied: it sleeps (at least 1 ms) before asking again. */
  denied: boolean;
  /** Tokens came back (reset, refund) while a call was in flight: its denial is stale. */
  woken: boolean;
}

/**
 * Waiters queues `RateLimiter.wait` calls, one line per key, first come first
 * served: only the head of a line asks the store; the others wait their turn,
 * so a waiter with a large cost is never overtaken by later small ones, and
 * a line costs the store about one call per admission. After a denial the
 * head sleeps exactly until its tokens are due (in steps of at most
 * MAX_TIMER); after an admission the next head's wait is worked out from the
 * decision (the bucket's tokens and next refill), without a store call.
 * `wake(key)` (after a reset or a refund) makes the head ask again at once.
 * A line is dropped when it empties, so memory follows the keys being waited on.
 */
export class Waiters {
  readonly #lines = new Map<string, Line>();
  readonly #limiter: Decider;
  #closed = false;

  constructor(limiter: Decider) {
    this.#limiter = limiter;
  }

  /** size is the number of keys with waiters. */
  get size(): number {
    return this.#lines.size;
  }

  /** wait resolves with the admitting decision once `cost` tokens are spent for `key`, in arrival order. */
  wait(key: string, options: WaitOptions = {}): Promise<Decision> {
    try {
      return this.#join(key, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** wake makes the head of `key`'s line ask the store now: tokens came back (reset, refund). */
  wake(key: string): void {
    const line = this.#lines.get(boundKey(key));
    if (line === undefined) return;
    line.last = undefined;
    line.denied = false;
    if (line.busy) {
      line.woken = true;
      return;
    }
    clearTimeout(line.timer);
    line.timer = undefined;
    this.#pump(line);
  }

  /** close rejects every waiter, and every later `wait`, with ClosedError. */
  close(): void {
    this.#closed = true;
    const error = new ClosedError("the RateLimiter");
    for (const line of this.#lines.values()) {
      clearTimeout(line.timer);
      const all = [...line.waiters];
      line.waiters.clear();
      for (const w of all) this.#settle(w).reject(error);
    }
    this.#lines.clear();
  }

  #join(key: string, options: WaitOptions): Promise<Decision> {
    if (this.#closed) throw new ClosedError("the RateLimiter");
    assertKey(key);
    key = boundKey(key);
    assertCallOptions(options, "{ cost: 1, maxWait: 5000 }");
    const { signal, maxWait = Number.POSITIVE_INFINITY } = options;
    const cost = options.cost === undefined ? 1 : options.cost;
    const problem = checkCost(cost, this.#limiter.policies);
    if (problem !== undefined) throw new CostError(cost, problem);
    if (typeof maxWait !== "number" || Number.isNaN(maxWait) || maxWait < 0) {
      throw new ConfigError(
        "maxWait",
        maxWait,
        "must be a number of milliseconds >= 0",
        "pass maxWait: 5000, or leave it out to wait as long as needed",
      );
    }
    if (signal !== undefined && !isSignal(signal)) {
      throw new TypeError(
        `floodgate: wait(key, { signal }) takes an AbortSignal (controller.signal), got ${signal === null ? "null" : typeof signal}`,
      );
    }
    if (signal?.aborted === true) throw reasonOf(signal);
    let line = this.#lines.get(key);
    const now = performance.now();
    if (line !== undefined && line.waiters.size > 0) {
      // Those ahead spend first, so the bucket's own wait for this cost is the least it can be.
      const least = this.#due(line, cost, now);
      if (least > maxWait) throw new WaitTimeoutError(key, cost, least, maxWait);
    }
    return new Promise<Decision>((resolve, reject) => {
      const w: Waiter = {
        cost,
        maxWait,
        deadline: now + maxWait,
        resolve,
        reject,
        signal,
        onAbort: undefined,
        timer: undefined,
      };
      if (line === undefined) {
        line = {
          key,
          waiters: new Set(),
          timer: undefined,
          busy: false,
          last: undefined,
          lastCost: 0,
          lastAt: 0,
          denied: false,
          woken: false,
        };
        this.#lines.set(key, line);
      }
      const mine = line;
      if (signal !== undefined) {
        w.onAbort = () => this.#leave(mine, w, reasonOf(signal));
        try {
          signal.addEventListener("abort", w.onAbort, { once: true });
        } catch (error) {
          // Before the waiter joins: a signal that throws leaves nothing behind to block the key.
          if (mine.waiters.size === 0) this.#lines.delete(key);
          throw error;
        }
      }
      mine.waiters.add(w);
      if (mine.waiters.size === 1) {
        this.#pump(mine);
      } else if (maxWait <= MAX_TIMER) {
        // Its deadline while it waits behind others; a longer maxWait is checked when it is the head.
        w.timer = setTimeout(
          () => {
            w.timer = undefined;
            const least = Math.max(1, this.#due(mine, cost, performance.now()));
            this.#leave(mine, w, new WaitTimeoutError(key, cost, maxWait + least, maxWait));
          },
          Math.max(1, Math.ceil(maxWait)),
        );
        w.timer.unref?.();
      }
    });
  }

  /**
   * pump serves the line's head: sleeps until its tokens are due, or asks the
   * store; a synchronous store (memory) is served in this loop, so a long
   * line of admissions takes no stack.
   */
  #pump(line: Line): void {
    while (!line.busy && line.timer === undefined) {
      const head = headOf(line);
      if (head === undefined) {
        if (this.#lines.get(line.key) === line) this.#lines.delete(line.key);
        return;
      }
      const now = performance.now();
      let due = this.#due(line, head.cost, now);
      // At least 1 ms after a denial, also when the decision's wait is not a
      // number (a clock that returned NaN): never ask again in this loop.
      if (line.denied && !(due >= 1)) due = 1;
      if (due > 0) {
        if (now + due > head.deadline) {
          // The whole wait, from the call: what it has waited and what is left.
          const total = Math.ceil(now + due - (head.deadline - head.maxWait));
          this.#leave(line, head, new WaitTimeoutError(line.key, head.cost, total, head.maxWait));
          continue;
        }
        this.#sleep(line, due);
        return;
      }
      line.busy = true;
      line.woken = false;
      let result: Decision | Promise<Decision>;
      try {
        const limiter = this.#limiter;
        result = limiter.check(line.key, head.cost, true, limiter.policies);
      } catch (error) {
        line.busy = false;
        this.#leave(line, head, error);
        continue;
      }
      if (result instanceof Promise) {
        result.then(
          (d) => {
            line.busy = false;
            this.#answered(line, head, d);
            this.#pump(line);
          },
          (error: unknown) => {
            line.busy = false;
            this.#leave(line, head, error);
            this.#pump(line);
          },
        );
        return;
      }
      line.busy = false;
      this.#answered(line, head, result);
    }
  }

  /** answered takes the store's decision for `head`, which may have left the line meanwhile. */
  #answered(line: Line, head: Waiter, d: Decision): void {
    line.last = d;
    line.lastCost = head.cost;
    line.lastAt = performance.now();
    line.denied = false;
    const first = headOf(line);
    if (d.allowed) {
      // Aborted (or timed out) while its call was in flight: the tokens are
      // spent, so they go to the next waiter if it asked for as many.
      const to = first === head || first?.cost === head.cost ? first : undefined;
      if (to !== undefined) {
        line.waiters.delete(to);
        this.#settle(to).resolve(d);
      }
      return;
    }
    if (first !== head) return;
    if (line.woken) {
      line.woken = false;
      line.last = undefined;
      return;
    }
    line.denied = true;
  }

  /**
   * due is how long the line's next call for `cost` should wait, by the
   * last decision: its own `retryAfter` when it denied this cost, else the
   * bucket's tokens and next refill; 0 when there is none (ask the store).
   */
  #due(line: Line, cost: number, now: number): number {
    const d = line.last;
    if (d === undefined) return 0;
    let wait = 0;
    if (!d.allowed && line.lastCost === cost) {
      wait = d.retryAfter;
    } else if (d.reason === "store" || d.reason === "cached" || d.reason === "insurance") {
      for (const s of d.policies) {
        const p = s.policy;
        const state = { tokens: s.remaining, refilledAt: s.resetAt - p.interval };
        wait = Math.max(wait, retryAfter(p, state, cost, d.now));
      }
    }
    const left = Math.ceil(wait - (now - line.lastAt));
    // A wait that is not a number (a store or clock gone wrong) asks the store, after at
    // least 1 ms when denied; Math.max(NaN, 0) would keep the NaN.
    // biome-ignore lint/complexity/useMathMinMax: the ternary turns NaN into 0, Math.max does not
    return left > 0 ? left : 0;
  }

  /** sleep waits `ms` in timer-sized steps, then lets the head ask the store. */
  #sleep(line: Line, ms: number): void {
    const step = Math.min(ms, MAX_TIMER);
    line.timer = setTimeout(() => {
      line.timer = undefined;
      if (ms > step) {
        this.#sleep(line, ms - step);
        return;
      }
      line.last = undefined;
      line.denied = false;
      this.#pump(line);
    }, step);
  }

  /** leave takes `w` out of its line at once and rejects it; the next head is served. */
  #leave(line: Line, w: Waiter, error: unknown): void {
    const wasHead = headOf(line) === w;
    if (!line.waiters.delete(w)) return;
    this.#settle(w).reject(error);
    if (!wasHead) return;
    line.denied = false;
    if (line.timer !== undefined) {
      clearTimeout(line.timer);
      line.timer = undefined;
    }
    if (!line.busy) queueMicrotask(() => this.#pump(line));
  }

  /** settle clears a waiter's timer and abort listener before it resolves or rejects. */
  #settle(w: Waiter): Waiter {
    clearTimeout(w.timer);
    if (w.onAbort !== undefined) w.signal?.removeEventListener("abort", w.onAbort);
    return w;
  }
}

/** isSignal tells an AbortSignal, also one from another realm or a polyfill, by what wait() uses of it. */
function isSignal(value: unknown): value is AbortSignal {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Partial<AbortSignal>;
  return (
    typeof s.aborted === "boolean" &&
    typeof s.addEventListener === "function" &&
    typeof s.removeEventListener === "function"
  );
}

/** reasonOf is why `signal` aborted: its reason, or an AbortError when it gives none (a polyfill). */
function reasonOf(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** headOf is the line's first waiter, the one that asks the store. */
function headOf(line: Line): Waiter | undefined {
  return line.waiters.values().next().value;
}
