/**
 * The Guard on a hand-driven clock, for the suites that test it alone: time
 * that moves only when the test moves it (ManualTimers), a store that answers
 * only when the test answers (HandStore), and a Guard wired to both.
 */
import { policies } from "../../src/core/policy.js";
import { LimiterEvents } from "../../src/events.js";
import { Guard, type GuardTimers, type StoreErrorMode } from "../../src/stores/guard.js";
import type { Store } from "../../src/stores/store.js";

/** TIMEOUT is the store deadline of every guard built here, in ms. */
export const TIMEOUT = 50;

/** list is one bucket of 50, refilled 10 a second. */
export const list = policies({ capacity: 50, refillRate: 10, interval: 1000 }, "policy");

/** ManualTimers is time that moves only when the test says so. */
export class ManualTimers implements GuardTimers {
  t = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  #soon: (() => void)[] = [];

  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  cancel(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  soon(fn: () => void): void {
    this.#soon.push(fn);
  }
  /** pending counts timers and immediates still to run. */
  get pending(): number {
    return this.#timers.size + this.#soon.length;
  }
  /** advance moves time by `ms`, running each timer at its due instant, then what it scheduled `soon`. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.#due();
      if (due === undefined || due[1].at > end) break;
      this.t = Math.max(this.t, due[1].at);
      this.#fire(due[0]);
    }
    this.t = end;
  }
  /** stall moves time by `ms` with the loop blocked: overdue timers fire late, all at the end. */
  stall(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = this.#due();
      if (due === undefined || due[1].at > this.t) break;
      this.#fire(due[0]);
    }
  }
  #due(): [number, { at: number; fn: () => void }] | undefined {
    let best: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.#timers)
      if (best === undefined || entry[1].at < best[1].at) best = entry;
    return best;
  }
  #fire(id: number): void {
    const timer = this.#timers.get(id) as { fn: () => void };
    this.#timers.delete(id);
    timer.fn();
    const soon = this.#soon;
    this.#soon = [];
    for (const fn of soon) fn();
  }
}

/** HandCall is a store call still open: the test settles it. */
export interface HandCall {
  resolve(reply: number[]): void;
  reject(error: Error): void;
}

/** HandStore answers nothing by itself: the test answers each call by hand. */
export class HandStore implements Store {
  readonly timeout = TIMEOUT;
  readonly calls: HandCall[] = [];
  readonly resets: HandCall[] = [];
  consume(): Promise<number[]> {
    return new Promise((resolve, reject) => this.calls.push({ resolve, reject }));
  }
  reset(): Promise<void> {
    return new Promise((resolve, reject) => this.resets.push({ resolve: () => resolve(), reject }));
  }
}

export interface GuardHarnessOptions {
  /** The guard's clock and timers; a new ManualTimers when left out. */
  timers?: ManualTimers;
  instances?: number | undefined;
  mode?: StoreErrorMode;
  cache?: boolean;
}

/**
 * guardHarness is a Guard on `store` with TIMEOUT, driven by ManualTimers: by
 * default "insurance" on store errors, denials cached, and `instances` as given.
 */
export function guardHarness<S extends Store>(store: S, options: GuardHarnessOptions = {}) {
  const timers = options.timers ?? new ManualTimers();
  const events = new LimiterEvents();
  const guard = new Guard({
    store,
    timeout: TIMEOUT,
    clock: () => timers.t,
    onStoreError: options.mode ?? "insurance",
    instances: options.instances,
    cacheDenials: options.cache ?? true,
    events,
    timers,
  });
  return { timers, store, events, guard };
}

/** handGuard is a guard on a new HandStore, as one instance. */
export function handGuard() {
  return guardHarness(new HandStore(), { instances: 1 });
}

/** outcome is what a promise settles to: its value, or the error's name. */
export async function outcome<T>(p: Promise<T>): Promise<T | string> {
  return p.then(
    (v) => v,
    (e: unknown) => (e instanceof Error ? e.name : String(e)),
  );
}

/** settle lets promise callbacks (store replies) run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));
