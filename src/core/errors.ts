/**
 * FloodgateError is the base of every error floodgate throws. Each carries a
 * stable `code` so callers can branch on it without parsing messages.
 */
export class FloodgateError extends Error {
  override name = "FloodgateError";
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * ConfigError is thrown when a limiter, store or middleware is built with a bad
 * option. Its message names the option, the value it got and how to fix it.
 */
export class ConfigError extends FloodgateError {
  override name = "ConfigError" as const;
  readonly option: string;
  readonly value: unknown;

  constructor(option: string, value: unknown, expected: string, fix: string) {
    super(
      "ERR_FLOODGATE_CONFIG",
      `floodgate: option "${option}" ${expected}, got ${describe(value)}. Fix: ${fix}`,
    );
    this.option = option;
    this.value = value;
  }
}

/**
 * CostError is thrown (as a rejected promise) when a call asks for a cost that
 * is not a whole number >= 1, or that exceeds a policy's capacity and so could
 * never pass. It is a caller bug, not a rate limit, so it is never a 429.
 */
export class CostError extends FloodgateError {
  override name = "CostError" as const;
  readonly cost: unknown;

  constructor(cost: unknown, reason: string) {
    super("ERR_FLOODGATE_COST", `floodgate: cost ${describe(cost)} ${reason}`);
    this.cost = cost;
  }
}

/**
 * WaitTimeoutError rejects `RateLimiter.wait` when the tokens would not be
 * available within `maxWait` milliseconds. It rejects at once, without
 * waiting, as soon as the limiter knows the wait would be too long.
 */
export class WaitTimeoutError extends FloodgateError {
  override name = "WaitTimeoutError" as const;
  /** Milliseconds the caller would have had to wait. */
  readonly retryAfter: number;

  constructor(key: string, cost: number, retryAfter: number, maxWait: number) {
    super(
      "ERR_FLOODGATE_WAIT_TIMEOUT",
      `floodgate: wait(${JSON.stringify(key)}, cost=${cost}) needs ${retryAfter} ms, more than maxWait ${maxWait} ms`,
    );
    this.retryAfter = retryAfter;
  }
}

/**
 * ClosedError rejects every call made to a RateLimiter or a store after its
 * `close()`: a closed limiter never decides from a fresh bucket.
 */
export class ClosedError extends FloodgateError {
  override name = "ClosedError" as const;

  constructor(what: string) {
    super("ERR_FLOODGATE_CLOSED", `floodgate: ${what} is closed; build a new one to decide again`);
  }
}

/** Most characters of a string value an error message shows. */
const SHOWN = 100;

/** Renders a value for an error message: strings quoted, everything else as typed. */
export function describe(value: unknown): string {
  if (typeof value === "string") {
    // A huge value (a 1 MB name from a config file) would make a huge message in every log line.
    if (value.length <= SHOWN) return JSON.stringify(value);
    return `${JSON.stringify(value.slice(0, SHOWN))}... (${value.length} characters)`;
  }
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return String(value);
  }
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}

/** isFloodgateError tells whether `error` is a FloodgateError, across realms and bundle copies. */
export function isFloodgateError(error: unknown): error is FloodgateError {
  return (
    error instanceof FloodgateError ||
    (typeof error === "object" &&
      error !== null &&
      typeof (error as { code?: unknown }).code === "string" &&
      (error as { code: string }).code.startsWith("ERR_FLOODGATE_"))
  );
}
