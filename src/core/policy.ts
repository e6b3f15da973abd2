import { ConfigError } from "./errors.js";
import { checkOptions } from "./options.js";

/**
 * A duration in milliseconds, or a string such as `"500ms"`, `"1s"`, `"5m"`,
 * `"1h"` or `"1d"`. The type names the forms floodgate reads; `interval`
 * also takes any `string`, so a policy kept in a `const` (where TypeScript
 * widens `"1s"` to `string`) needs no `as const`. A string that is not a
 * duration is refused when the limiter or middleware is built (ConfigError
 * naming the option and the value), as a bad number is.
 */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d"}`;

/**
 * PolicyInput is what users write: a token bucket holding at most `capacity`
 * tokens that gains `refillRate` tokens every `interval` milliseconds.
 */
export interface PolicyInput {
  /** Label in headers, metrics and store keys: `[A-Za-z0-9_-]{1,64}`. Default `"default"`. */
  name?: string | undefined;
  /** Most tokens the bucket holds: the burst. Integer from 1 to `Number.MAX_SAFE_INTEGER`. */
  capacity: number;
  /** Tokens added every `interval`: the sustained rate. Integer from 1 to `Number.MAX_SAFE_INTEGER`. */
  refillRate: number;
  /**
   * Milliseconds between refills, or a duration string such as "1s" (see
   * Duration; checked at run time). Integer from 1 ms to 365 days.
   */
  interval: Duration | (string & {});
  /**
   * Most tokens a charge made after the fact (`Reservation.settle`) may take
   * the bucket below zero. Integer >= 0, with `capacity + maxDebt` at most
   * `Number.MAX_SAFE_INTEGER`. Default `capacity`; 0 allows no debt.
   */
  maxDebt?: number | undefined;
  /**
   * Milliseconds (or a duration string) a key stays blocked once this policy
   * denies it: every request until then is denied without spending. From 1 ms
   * to 365 days. Default: no block.
   */
  blockFor?: Duration | (string & {}) | undefined;
}

/** Policy is a validated, frozen PolicyInput with `interval` in milliseconds. */
export interface Policy {
  readonly name: string;
  readonly capacity: number;
  readonly refillRate: number;
  /** Milliseconds between refills. */
  readonly interval: number;
  /**
   * Milliseconds to refill from empty: `ceil(capacity / refillRate) * interval`,
   * at most `Number.MAX_SAFE_INTEGER`.
   */
  readonly window: number;
  /** Most tokens below zero a charge after the fact may leave. */
  readonly maxDebt: number;
  /** Milliseconds a denial by this policy blocks the key; 0 for none. */
  readonly blockFor: number;
}

const MAX_TOKENS = Number.MAX_SAFE_INTEGER;
/** Longest interval, block and manual block: 365 days. */
export const MAX_INTERVAL = 365 * 86_400_000;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const POLICY_KEYS = new Set(["name", "capacity", "refillRate", "interval", "maxDebt", "blockFor"]);
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** parseDuration turns a Duration into whole milliseconds, or returns NaN when it is not one. */
export function parseDuration(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return Number.NaN;
  const match = /^(\d+)(?:\.(\d+))?\s*(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) return Number.NaN;
  const unit = UNITS[match[3] as string] as number;
  const whole = match[1] as string;
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  if (fraction === "") return Number(whole) * unit;
  // Exact decimal arithmetic: "4.35h" is 15,660,000 ms, where 4.35 * 3,600,000
  // in doubles is 15,659,999.999999998 and would be refused as not whole.
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(whole + fraction) * BigInt(unit);
  // Not a whole number of milliseconds ("0.5ms", "1.0001s"): a fraction, refused by the caller.
  if (scaled % scale !== 0n) return Number(scaled) / Number(scale);
  return Number(scaled / scale);
}

function integer(option: string, value: unknown, max: number, fix: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(
      option,
      value,
      `must be an integer from 1 to ${max === MAX_TOKENS ? "Number.MAX_SAFE_INTEGER" : max}`,
      fix,
    );
  }
  return value;
}

/**
 * policy validates one PolicyInput and returns a frozen Policy. `path` names
 * the option in error messages, e.g. `policies[1]`.
 */
export function policy(input: PolicyInput, path = "policy"): Policy {
  checkOptions(input, POLICY_KEYS, {
    name: path,
    kind: "policy",
    prefix: `${path}.`,
    example: "pass { capacity: 10, refillRate: 2, interval: 1000 }",
  });
  // Only a missing name takes the default: null is a caller's bug, as for maxDebt.
  const name = input.name === undefined ? "default" : input.name;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new ConfigError(
      `${path}.name`,
      name,
      "must be 1 to 64 letters, digits, '_' or '-'",
      'use a short label such as "burst" or "per-hour"',
    );
  }
  const capacity = integer(
    `${path}.capacity`,
    input.capacity,
    MAX_TOKENS,
    "set the burst size as a whole number of tokens, e.g. capacity: 10",
  );
  const refillRate = integer(
    `${path}.refillRate`,
    input.refillRate,
    MAX_TOKENS,
    "set the tokens added per interval as a whole number, e.g. refillRate: 2",
  );
  const ms = parseDuration(input.interval);
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_INTERVAL) {
    throw new ConfigError(
      `${path}.interval`,
      input.interval,
      `must be whole milliseconds from 1 to ${MAX_INTERVAL} (or a duration such as "1s")`,
      "give the refill period in milliseconds, e.g. interval: 1000",
    );
  }
  // Only a missing maxDebt takes the default: null is a caller's bug, not "no value".
  const maxDebt = input.maxDebt === undefined ? capacity : input.maxDebt;
  if (input.maxDebt === undefined && maxDebt > MAX_TOKENS - capacity) {
    // The default does not fit: say so, rather than blame a value the user never gave.
    throw new ConfigError(
      `${path}.maxDebt`,
      input.maxDebt,
      `must be an integer from 0 to ${MAX_TOKENS - capacity} (capacity + maxDebt at most Number.MAX_SAFE_INTEGER); left out, it defaults to capacity ${capacity}, which does not fit`,
      `give it explicitly, e.g. maxDebt: 0 for no debt, or at most ${MAX_TOKENS - capacity}`,
    );
  }
  if (
    typeof maxDebt !== "number" ||
    !Number.isInteger(maxDebt) ||
    maxDebt < 0 ||
    maxDebt > MAX_TOKENS - capacity
  ) {
    throw new ConfigError(
      `${path}.maxDebt`,
      input.maxDebt,
      `must be an integer from 0 to ${MAX_TOKENS - capacity} (capacity + maxDebt at most Number.MAX_SAFE_INTEGER)`,
      "give the most tokens a settle may leave owing, e.g. maxDebt: 0 for none, or leave it out (capacity)",
    );
  }
  let blockFor = 0;
  if (input.blockFor !== undefined) {
    blockFor = parseDuration(input.blockFor);
    if (!Number.isInteger(blockFor) || blockFor < 1 || blockFor > MAX_INTERVAL) {
      throw new ConfigError(
        `${path}.blockFor`,
        input.blockFor,
        `must be whole milliseconds from 1 to ${MAX_INTERVAL} (or a duration such as "1m")`,
        "give how long a denied key stays out, e.g. blockFor: 60000, or leave it out for no block",
      );
    }
  }
  return Object.freeze({
    name,
    capacity,
    refillRate,
    interval: ms,
    window: windowOf(capacity, refillRate, ms),
    maxDebt,
    blockFor,
  });
}

/**
 * windowOf is `ceil(capacity / refillRate) * interval`, the milliseconds to
 * refill from empty, saturated at Number.MAX_SAFE_INTEGER.
 */
export function windowOf(capacity: number, refillRate: number, interval: number): number {
  return Math.min(Number.MAX_SAFE_INTEGER, Math.ceil(capacity / refillRate) * interval);
}

/**
 * policies validates `policy` (one) or `policies` (a non-empty list with
 * distinct names) and returns a frozen list.
 */
export function policies(
  list: readonly PolicyInput[] | PolicyInput | undefined,
  path = "policies",
): readonly Policy[] {
  if (list === undefined) {
    throw new ConfigError(
      path,
      list,
      "is required",
      "pass policies: [{ capacity: 10, refillRate: 2, interval: 1000 }] (or policy: {...})",
    );
  }
  const inputs = Array.isArray(list) ? list : [list as PolicyInput];
  if (inputs.length === 0 || inputs.length > 16) {
    throw new ConfigError(
      path,
      list,
      "must hold 1 to 16 policies",
      "list each limit once, e.g. [{ name: 'burst', ... }, { name: 'daily', ... }]",
    );
  }
  const seen = new Set<string>();
  const out = inputs.map((input, i) => {
    const p = policy(input, Array.isArray(list) ? `${path}[${i}]` : path);
    if (seen.has(p.name)) {
      throw new ConfigError(
        `${path}[${i}].name`,
        p.name,
        "repeats an earlier policy's name",
        "give each policy its own name; the name keys its bucket",
      );
    }
    seen.add(p.name);
    return p;
  });
  return Object.freeze(out);
}

/**
 * cost validates a request's cost against its policies: a whole number >= 1
 * and no more than the smallest capacity (such a request could never pass).
 */
export function checkCost(cost: unknown, list: readonly Policy[]): string | undefined {
  if (typeof cost !== "number" || !Number.isInteger(cost) || cost < 1) {
    return "must be a whole number >= 1";
  }
  for (const p of list) {
    if (cost > p.capacity) {
      return `exceeds policy "${p.name}" capacity ${p.capacity}, so it could never pass; split the work or raise the capacity`;
    }
  }
  return undefined;
}

/**
 * checkAmount validates a token amount given after the fact (a refund, a
 * settled cost): a whole number from `min` to Number.MAX_SAFE_INTEGER, with
 * no capacity bound (a refund above capacity fills the bucket; a settle
 * above it goes into debt).
 */
export function checkAmount(amount: unknown, min: 0 | 1): string | undefined {
  if (
    typeof amount !== "number" ||
    !Number.isInteger(amount) ||
    amount < min ||
    amount > Number.MAX_SAFE_INTEGER
  ) {
    return `must be a whole number from ${min} to Number.MAX_SAFE_INTEGER`;
  }
  return undefined;
}
