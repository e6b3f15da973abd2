import type { Decision, StoreReply } from "./core/decision.js";
import type { Policy } from "./core/policy.js";

/**
 * Outcome classifies a spending decision the way metrics count it:
 * `"allowed"` and `"limited"` by the store (or a denial it cached),
 * `"shadow_limited"` denied but let through because the caller runs in shadow
 * mode, `"fallback_allowed"` and `"fallback_limited"` decided by
 * `onStoreError` while the store failed.
 */
export type Outcome =
  | "allowed"
  | "limited"
  | "shadow_limited"
  | "fallback_allowed"
  | "fallback_limited";

/** OUTCOMES lists every Outcome, in the order metrics and dashboards show them. */
export const OUTCOMES: readonly Outcome[] = Object.freeze([
  "allowed",
  "limited",
  "shadow_limited",
  "fallback_allowed",
  "fallback_limited",
]);

/** StoreErrorKind: `"error"` the call failed, `"timeout"` it missed its deadline. */
export type StoreErrorKind = "error" | "timeout";

/** AdjustOperation names a charge made after the fact: a `refund`, a reservation's `settle`, or a `block`. */
export type AdjustOperation = "refund" | "settle" | "block";

/** FallbackMode names what decides while the store fails (a RateLimiter's `onStoreError`). */
export type FallbackMode = "insurance" | "allow" | "deny";

/**
 * LimiterEventMap gives each event's listener arguments. Listeners receive
 * the client key where one is involved; it is for the user's own telemetry
 * and never becomes a metric label.
 */
export interface LimiterEventMap {
  /** decision: every spending decision (consume, wait, middleware), never a peek. */
  decision: [outcome: Outcome, decision: Decision, key: string];
  /** limited: a request was denied, or would have been (`shadow` true) in shadow mode. */
  limited: [policy: string, key: string, decision: Decision, shadow: boolean];
  /** store-call: the store answered a decision; `seconds` is how long it took. */
  "store-call": [seconds: number];
  /** store-error: a store call failed or timed out; the fallback decided instead. */
  "store-error": [error: unknown, kind: StoreErrorKind];
  /** breaker-open: after `failures` failures in a row the limiter stopped calling the store. */
  "breaker-open": [failures: number];
  /** breaker-close: a probe succeeded; the store decides again. */
  "breaker-close": [];
  /**
   * eviction: a bucket that was not full was lost, and that client gets a
   * fresh burst: the memory store, full at `maxKeys`, dropped it
   * (`"active"`, or `"throttled"`), or a network store reported a bucket new
   * although this process knew it throttled and it could not have refilled
   * (`"store"`: Redis evicted it under `maxmemory`, or another instance reset it).
   */
  eviction: [kind: "active" | "throttled" | "store", policy: string, key: string];
  /** insurance: the fallback started (`active` true) or stopped deciding. */
  insurance: [active: boolean, mode: FallbackMode];
  /** refund: `tokens` were given back to `key`'s buckets (`limiter.refund`). */
  refund: [key: string, tokens: number];
  /**
   * settle: a reservation was settled: `extra` tokens charged beyond its
   * estimate (negative: given back), of which `dropped` went beyond a
   * policy's maxDebt and were not charged.
   */
  settle: [key: string, extra: number, dropped: number];
  /**
   * block: `key` is blocked until `until` (epoch ms, the store's clock),
   * by `policy`'s blockFor after a denial, or by hand (`policy` undefined).
   */
  block: [key: string, until: number, policy: string | undefined];
  /**
   * settle-error: a refund, settle or block failed in the store (or missed
   * its deadline, when it may still have been applied). Never retried: the
   * request path never sees the error, only this event and `stats()`.
   */
  "settle-error": [error: unknown, operation: AdjustOperation, key: string];
}

/** LimiterEventName is one of the events a RateLimiter emits. */
export type LimiterEventName = keyof LimiterEventMap;

/** LimiterListener is a listener for event `E`. */
export type LimiterListener<E extends LimiterEventName> = (...args: LimiterEventMap[E]) => void;

type Listeners = { [E in LimiterEventName]: LimiterListener<E>[] };

const NAMES: readonly LimiterEventName[] = [
  "decision",
  "limited",
  "store-call",
  "store-error",
  "breaker-open",
  "breaker-close",
  "eviction",
  "insurance",
  "refund",
  "settle",
  "block",
  "settle-error",
];

/**
 * LimiterEvents is a RateLimiter's typed event channel (`limiter.events`).
 * Emitting costs one boolean check when nobody listens: the limiter tests
 * `wants[name]` before building any arguments. A listener that throws never
 * fails the request it was told about: the error goes to `onListenerError`.
 */
export class LimiterEvents {
  /**
   * wants tells, per event, whether anyone listens; read it before doing any
   * work to emit.
   * @internal
   */
  readonly wants: { [E in LimiterEventName]: boolean };
  /**
   * observing is true while anyone listens to an event derived from decisions
   * (decision, limited, store-call).
   * @internal
   */
  observing = false;
  /** @internal */
  onListenerError: (error: unknown, event: LimiterEventName) => void = reportOnce;
  readonly #listeners: Listeners;

  constructor() {
    const wants = {} as { [E in LimiterEventName]: boolean };
    // No prototype: "constructor" or "toString" is no event, and has no listeners.
    const listeners = Object.create(null) as Record<LimiterEventName, unknown[]>;
    for (const name of NAMES) {
      wants[name] = false;
      listeners[name] = [];
    }
    this.wants = wants;
    this.#listeners = listeners as Listeners;
  }

  /** on adds `listener` for `event` and returns a function that removes it. */
  on<E extends LimiterEventName>(event: E, listener: LimiterListener<E>): () => void {
    const list = this.#listeners[event] as LimiterListener<E>[] | undefined;
    if (list === undefined) {
      throw new TypeError(
        `floodgate: unknown event ${JSON.stringify(event)}; use one of ${NAMES.join(", ")}`,
      );
    }
    if (typeof listener !== "function") {
      throw new TypeError(`floodgate: the listener for ${event} must be a function`);
    }
    // Copy on write, so a listener removed while an event is delivered does not skip another.
    (this.#listeners[event] as LimiterListener<E>[]) = [...list, listener];
    this.#update();
    return () => this.off(event, listener);
  }

  /** off removes `listener` from `event`; removing one that is not there does nothing. */
  off<E extends LimiterEventName>(event: E, listener: LimiterListener<E>): void {
    const list = this.#listeners[event] as LimiterListener<E>[] | undefined;
    if (list === undefined) return;
    const i = list.indexOf(listener);
    if (i < 0) return;
    (this.#listeners[event] as LimiterListener<E>[]) = [...list.slice(0, i), ...list.slice(i + 1)];
    this.#update();
  }

  /** listenerCount tells how many listeners `event` has. */
  listenerCount(event: LimiterEventName): number {
    return this.#listeners[event]?.length ?? 0;
  }

  /**
   * emit calls every listener of `event` in the order they were added. Callers
   * on a hot path check `wants[event]` first.
   * @internal
   */
  emit<E extends LimiterEventName>(event: E, ...args: LimiterEventMap[E]): void {
    const list = this.#listeners[event] as LimiterListener<E>[];
    for (let i = 0; i < list.length; i++) {
      try {
        (list[i] as LimiterListener<E>)(...args);
      } catch (error) {
        try {
          this.onListenerError(error, event);
        } catch {
          // The handler itself failed (a logger that throws): the decision still stands.
        }
      }
    }
  }

  #update(): void {
    const wants = this.wants;
    for (const name of NAMES) wants[name] = this.#listeners[name].length > 0;
    this.observing = wants.decision || wants.limited || wants["store-call"];
  }
}

const reported = new Set<string>();

/** reportOnce warns once per event name that a listener threw, without failing the request. */
function reportOnce(error: unknown, event: LimiterEventName): void {
  if (reported.has(event)) return;
  reported.add(event);
  process.emitWarning(
    `a listener for the ${event} event threw (${describeThrown(error)}); later errors from ${event} listeners are not reported`,
    { code: "FLOODGATE_LISTENER_ERROR" },
  );
}

/** describeThrown tells what a listener threw, never throwing itself (String() of an object without a prototype, or with a toString that throws, does). */
function describeThrown(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return typeof error === "object" ? "an object" : typeof error;
  }
}

/** outcomeOf classifies a spending decision; `shadow` says the caller will not enforce it. */
export function outcomeOf(decision: Decision, shadow: boolean): Outcome {
  const reason = decision.reason;
  if (reason === "insurance" || reason === "fail-open" || reason === "fail-closed") {
    return decision.allowed ? "fallback_allowed" : "fallback_limited";
  }
  if (decision.allowed) return "allowed";
  return shadow ? "shadow_limited" : "limited";
}

/**
 * reportBlock tells listeners that a denial started a block (a policy's
 * `blockFor`): the reply's block end, and the policy with the longest
 * `blockFor` among those short of `cost`.
 */
export function reportBlock(
  events: LimiterEvents,
  key: string,
  list: readonly Policy[],
  reply: StoreReply,
  cost: number,
): void {
  if (!events.wants.block) return;
  let policy: Policy | undefined;
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as Policy;
    if (p.blockFor > 0 && (reply[2 + 2 * i] as number) < cost) {
      if (policy === undefined || p.blockFor > policy.blockFor) policy = p;
    }
  }
  events.emit("block", key, reply[2 + 2 * list.length] as number, policy?.name);
}
