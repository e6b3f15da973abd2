import { ConfigError, describe } from "./errors.js";

/** OptionsPlace names an options object and its keys in checkOptions' messages. */
export interface OptionsPlace {
  /** What the whole object is called, e.g. "options" or "keys.ip(options)". */
  readonly name: string;
  /** Whose options they are: an unknown key "is not a <kind> option". */
  readonly kind: string;
  /** Put before an unknown key's name, e.g. "RedisStore." or "" for none. */
  readonly prefix: string;
  /** A call that works: the fix when the value is not an object. */
  readonly example: string;
  /** A fix of their own for keys users are known to mistake for an option. */
  readonly hints?: Readonly<Record<string, string>>;
}

/**
 * checkOptions throws ConfigError unless `value` is a plain options object
 * (not null, not an array) whose keys are all in `allowed`. An unknown key's
 * message names it, its value and the keys there are, and suggests the one
 * it is likely a misspelling of. Called once, when something is built.
 */
export function checkOptions(
  value: unknown,
  allowed: ReadonlySet<string> | readonly string[],
  place: OptionsPlace,
): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(place.name, value, "must be an object", place.example);
  }
  const names = [...allowed];
  for (const key of Object.keys(value)) {
    if (names.includes(key)) continue;
    throw new ConfigError(
      place.prefix + key,
      (value as Record<string, unknown>)[key],
      `is not a ${place.kind} option`,
      unknownFix(key, names, place),
    );
  }
}

/** unknownFix is the fix for an unknown key: its hint, else the keys there are, led by a likely meant one. */
function unknownFix(key: string, names: readonly string[], place: OptionsPlace): string {
  const hint =
    place.hints !== undefined && Object.hasOwn(place.hints, key) ? place.hints[key] : undefined;
  if (hint !== undefined) return hint;
  const list =
    names.length === 1 ? `${place.kind} takes only ${names[0]}` : `use one of ${names.join(", ")}`;
  const near = names.find((name) => close(key, name));
  return near === undefined ? list : `did you mean ${near}? ${list}`;
}

/** close tells a likely misspelling: at most two letters added, dropped or changed, ignoring case. */
function close(typed: string, name: string): boolean {
  const a = typed.toLowerCase();
  const b = name.toLowerCase();
  if (Math.abs(a.length - b.length) > 2 || Math.min(a.length, b.length) < 4) return false;
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] as number) + 1,
        (next[j - 1] as number) + 1,
        (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return (row[b.length] as number) <= 2;
}

/**
 * checkInteger returns `value` if it is an integer from `min` to `max`, else
 * throws ConfigError saying it "must be <what> from min to max".
 */
export function checkInteger(
  option: string,
  value: unknown,
  min: number,
  max: number,
  fix: string,
  what = "an integer",
): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(option, value, `must be ${what} from ${min} to ${max}`, fix);
  }
  return value;
}

/**
 * assertCallOptions refuses a call's options that are not an object:
 * `consume(key, 5)` is not a cost of 5, and read as `{}` it would silently
 * cost 1. `example` shows the call's options (`{ cost: 5 }`).
 */
export function assertCallOptions(options: unknown, example: string): asserts options is object {
  if (typeof options === "object" && options !== null) return;
  throw new TypeError(
    `floodgate: a call's options must be an object such as ${example}, got ${describe(options)}`,
  );
}
