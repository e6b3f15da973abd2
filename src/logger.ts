import type { Clock } from "./clock.js";
import type { LimiterEventName, LimiterEvents } from "./events.js";

/** LogMethod is one level of a pino-style logger: a fields object, then a message. */
export type LogMethod = (fields: Record<string, unknown>, message: string) => void;

/**
 * Logger is the part of a pino-style logger floodgate uses (pino, and
 * bunyan-like loggers, fit as they are). It never logs per request.
 */
export interface Logger {
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

/** LogThrottle lets one line per kind through each `interval` ms and counts the ones it held back. */
export class LogThrottle {
  readonly interval: number;
  readonly #clock: Clock;
  readonly #kinds = new Map<string, { last: number; suppressed: number }>();

  constructor(interval: number, clock: Clock) {
    this.interval = interval;
    this.#clock = clock;
  }

  /**
   * take returns -1 when a line of `kind` was logged less than `interval` ago
   * (and counts this one), else how many were held back since the last line.
   */
  take(kind: string): number {
    const now = this.#clock();
    const entry = this.#kinds.get(kind);
    if (entry === undefined) {
      this.#kinds.set(kind, { last: now, suppressed: 0 });
      return 0;
    }
    // A clock that went backwards counts as no time passed, so it cannot unlock a flood.
    if (now - entry.last < this.interval && now >= entry.last) {
      entry.suppressed++;
      return -1;
    }
    const suppressed = entry.suppressed;
    entry.last = now;
    entry.suppressed = 0;
    return suppressed;
  }
}

let loggerReported = false;

/** loggerFailed warns once per process that a logger threw; its lines are lost, no decision is. */
function loggerFailed(error: unknown): void {
  if (loggerReported) return;
  loggerReported = true;
  process.emitWarning(
    `the logger given to a RateLimiter threw (${error instanceof Error ? error.message : String(error)}); decisions go on, later logger errors are not reported`,
    { code: "FLOODGATE_LOGGER_ERROR" },
  );
}

/**
 * loggable is what of an error a log line may carry: its class, `name`,
 * `message`, `stack`, a primitive `code`, and the same of its `cause` and of
 * an AggregateError's `errors`, never its other properties. Clients' keys
 * ride on those: ioredis and iovalkey put every failed command's arguments,
 * the bucket keys, on the error (`command.args`), and pino's error
 * serializer logs every enumerable property. The original still goes to the
 * limiter's own event listeners.
 */
export function loggable(error: unknown, depth = 0): unknown {
  if (typeof error !== "object" || error === null) return error;
  const e = error as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
  let proto: object | null = Error.prototype;
  let name: unknown;
  let nameOwn = false;
  let message: unknown;
  let stack: unknown;
  let code: unknown;
  let cause: unknown;
  let errors: unknown;
  try {
    proto = Object.getPrototypeOf(error) ?? Error.prototype;
    name = e.name;
    nameOwn = Object.hasOwn(error, "name");
    ({ message, stack, code } = e);
    cause = depth < 4 && "cause" in error ? (error as { cause?: unknown }).cause : undefined;
    errors = depth < 4 ? (error as { errors?: unknown }).errors : undefined;
  } catch {
    // A hostile getter: the class is all that is told.
  }
  const safe = Object.create(proto) as Record<string, unknown>;
  // Defined, never assigned: an assignment throws where the prototype has a
  // getter without a setter (DOMException's name, message and code).
  const own = (key: string, value: unknown, enumerable: boolean) =>
    Object.defineProperty(safe, key, { value, writable: true, enumerable, configurable: true });
  const hidden = (key: string, value: unknown) => own(key, value, false);
  // A name the prototype gives stays out of sight (pino shows the class as
  // `type`), but is copied: a prototype's getter may check its receiver
  // (DOMException's throws on any object that is not one).
  if (typeof name === "string") own("name", name, nameOwn);
  hidden("message", typeof message === "string" ? message : "");
  if (typeof stack === "string") hidden("stack", stack);
  if (typeof code === "string" || typeof code === "number") own("code", code, true);
  if (cause !== undefined) hidden("cause", loggable(cause, depth + 1));
  if (Array.isArray(errors))
    hidden(
      "errors",
      errors.slice(0, 16).map((x) => loggable(x, depth + 1)),
    );
  return safe;
}

/**
 * attachLogger logs what operators act on, each kind at most once per
 * `interval` ms: store errors and timeouts, the breaker opening and closing,
 * the fallback starting and stopping, throttled clients evicted from a full
 * memory store, and listeners that throw. A line carries `suppressed`, the
 * count of lines of its kind held back since the previous one, and an error
 * only as `loggable` keeps it (no client key).
 */
export function attachLogger(
  events: LimiterEvents,
  logger: Logger,
  interval: number,
  clock: Clock,
): void {
  const throttle = new LogThrottle(interval, clock);
  const log = (
    level: keyof Logger,
    kind: string,
    fields: Record<string, unknown>,
    message: string,
  ): void => {
    const suppressed = throttle.take(kind);
    if (suppressed < 0) return;
    try {
      logger[level]({ floodgate: kind, ...fields, suppressed }, message);
    } catch (error) {
      // A logger that throws must not fail the decision it was told about.
      loggerFailed(error);
    }
  };
  events.on("store-error", (error, kind) =>
    log(
      "warn",
      `store-${kind}`,
      { err: loggable(error) },
      kind === "timeout"
        ? "floodgate: the store missed its deadline; onStoreError decided"
        : "floodgate: a store call failed; onStoreError decided",
    ),
  );
  events.on("breaker-open", (failures) =>
    log(
      "error",
      "breaker-open",
      { failures },
      "floodgate: circuit breaker open; the store is not called until a probe succeeds",
    ),
  );
  events.on("breaker-close", () =>
    log("info", "breaker-close", {}, "floodgate: circuit breaker closed; the store decides again"),
  );
  events.on("insurance", (active, mode) =>
    active
      ? log(
          "warn",
          "fallback-start",
          { mode },
          `floodgate: the store is failing; onStoreError "${mode}" decides`,
        )
      : log("info", "fallback-stop", { mode }, "floodgate: the store decides again"),
  );
  events.on("eviction", (kind, policy) => {
    if (kind === "throttled") {
      log(
        "warn",
        "eviction-throttled",
        { policy },
        "floodgate: the memory store is full (maxKeys) and evicted a throttled client, who gets a fresh burst; raise maxKeys",
      );
    } else if (kind === "store") {
      log(
        "warn",
        "eviction-store",
        { policy },
        "floodgate: the store lost the bucket of a throttled client, who gets a fresh burst (Redis evicting keys under maxmemory? set maxmemory-policy noeviction)",
      );
    }
  });
  events.onListenerError = (error: unknown, event: LimiterEventName) =>
    log(
      "error",
      `listener-${event}`,
      { err: loggable(error), event },
      `floodgate: a listener for ${event} threw`,
    );
}
