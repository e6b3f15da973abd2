import { ConfigError } from "./core/errors.js";

/** Clock returns the current time in epoch milliseconds. */
export type Clock = () => number;

/**
 * Reading the system clock costs a system call on some virtual machines
 * (about 55 ns here, more than the rest of an in-memory decision), so the
 * default clocks read it once per event-loop turn, the way libuv times its
 * timers and nginx's limit_req reads `ngx_current_msec`: every decision made
 * while one I/O callback and its promise chain run sees the same instant.
 * That instant is never later than the truth, so a decision can only be
 * stricter (a refill counted a turn late), never more permissive than the
 * bucket's timeline. A turn that makes many decisions re-reads after
 * MAX_REUSE of them, so a long synchronous stretch cannot freeze time.
 *
 * Under fake timers (which replace `Date` and `performance.now`) every call
 * reads the fake: tests that move time by hand see it move at once. Runtimes
 * without `setImmediate` read the clock every call.
 */
const MAX_REUSE = 16;

const nativePerformanceNow = performance.now;

/** Turns that read a clock so far; a scheduled immediate bumps it once the turn ends. */
let turn = 0;
/**
 * The setImmediate that will end this turn, undefined while none is
 * scheduled. It is read from the global when a turn is armed, not once when
 * this module loads: loaded under fake timers (Jest's `enableGlobally`, a
 * setup file), the captured one was the fake, whose immediates never run
 * once real timers are back, so the turn never ended and every reading was
 * reused 16 times, however far apart. A setImmediate other than the one
 * armed with (fake timers installed or removed since) arms again.
 */
let armed: unknown;

function endTurn(): void {
  armed = undefined;
  turn++;
}

/** TurnCache holds one clock's reading for the rest of the turn it was read in. */
class TurnCache {
  #turn = -1;
  #uses = 0;
  /**
   * The last reading. It starts as null, not 0, so V8 keeps the field
   * general: a field that only ever held doubles hands out a fresh 16-byte
   * copy of the time on every read not inlined into its caller.
   */
  #value = null as unknown as number;

  get(read: () => number): number {
    if (this.#turn === turn && ++this.#uses < MAX_REUSE) return this.#value;
    const schedule = globalThis.setImmediate;
    const scheduled = typeof schedule === "function";
    if (scheduled && armed !== schedule) {
      armed = schedule;
      schedule(endTurn);
    }
    this.#turn = scheduled ? turn : -1;
    this.#uses = 0;
    this.#value = read();
    return this.#value;
  }
}

const epoch = new TurnCache();
const monotonic = new TurnCache();
const readPerformance = (): number => performance.now();
/** performance.timeOrigin, fixed when the process starts: its getter costs 20 ns, a third of a read. */
const origin = performance.timeOrigin;
/**
 * Epoch ms that only move forward: the wall clock when the process started
 * plus the monotonic time since. A wall-clock step (NTP, an operator, a VM
 * restored from a snapshot) moves `Date.now` but not this; NTP's gradual
 * slewing moves both alike.
 */
const readEpoch = (): number => Math.floor(origin + performance.now());

/**
 * turnNow is the default clock: epoch milliseconds that never jump (see
 * readEpoch), read once per event-loop turn. Replacing `Date.now` alone does
 * not move it, so a wall-clock step changes no decision. Fake timers
 * (@sinonjs/fake-timers, behind vitest's and jest's) mark their Date
 * `isFake`: then it reads the fake `Date.now`, even when they were installed
 * before this module loaded.
 */
export const turnNow: Clock = () =>
  (Date as DateConstructor & { isFake?: boolean }).isFake === true
    ? Date.now()
    : epoch.get(readEpoch);

/** turnMonotonic is `performance.now()`, read once per event-loop turn: for timing within this process. */
export const turnMonotonic: Clock = () =>
  performance.now === nativePerformanceNow ? monotonic.get(readPerformance) : performance.now();

/**
 * checkClock reads a clock the user gave once, when the limiter is built: one
 * that returns something other than a number (`clock: Date` returns a
 * string) or a number that is not finite would make every decision NaN, so
 * it is refused, naming `option`, what it returned and the fix. A clock that
 * throws or returns undefined then passes: its value may be set only after
 * the limiter is built (a fake clock's field, a `let` assigned later).
 */
export function checkClock(clock: Clock, option: string): void {
  let now: unknown;
  try {
    now = clock();
  } catch {
    return;
  }
  if (now === undefined || (typeof now === "number" && Number.isFinite(now))) return;
  throw new ConfigError(
    option,
    now,
    "must return epoch milliseconds as a finite number (it is read once when built)",
    "pass clock: Date.now or () => Date.now() (not Date, which returns a string), or a fake clock returning a number",
  );
}
