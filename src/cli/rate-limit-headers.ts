import {
  type BareItem,
  type InnerList,
  type Item,
  ParseError,
  parseDictionary as sfDictionary,
  parseItem as sfItem,
  parseList as sfList,
  Token,
} from "structured-headers";

// The IETF headers are Structured Fields (RFC 9651), parsed by the
// structured-headers package. A value that is not a valid field is ignored
// as a whole, never half read: the parsers throw, and here that is undefined.

/** SfMember is one member of a List or one value of a Dictionary: an Item or an Inner List. */
type SfMember = Item | InnerList;

function tolerant<T>(parse: (input: string) => T, input: string): T | undefined {
  try {
    return parse(input);
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

const parseList = (input: string) => tolerant(sfList, input);
const parseDictionary = (input: string) => tolerant(sfDictionary, input);
const parseItem = (input: string) => tolerant(sfItem, input);

function isInnerList(member: SfMember): member is InnerList {
  return Array.isArray(member[0]);
}

/** memberName returns a member's String or Token value (or Integer), the way rate-limit headers name policies. */
function memberName(member: SfMember): string | undefined {
  if (isInnerList(member)) return undefined;
  const value = member[0];
  if (typeof value === "string") return value;
  if (value instanceof Token) return value.toString();
  if (typeof value === "number") return String(value);
  return undefined;
}

/** HeaderPolicy is one policy a server announces in `RateLimit-Policy`. */
export interface HeaderPolicy {
  readonly name: string;
  /** The quota `q`: for a token bucket, its capacity. */
  readonly limit: number;
  /** The window `w` in seconds: for a token bucket, the time to refill from empty; null when absent. */
  readonly window: number | null;
}

/**
 * RateLimitHeaders is what one response says about its rate limit, whichever
 * standard it used. Times are in seconds, as headers give them.
 */
export interface RateLimitHeaders {
  /** Capacity of the reported (most restrictive) policy. */
  readonly limit: number | null;
  /** Tokens left in the reported policy. */
  readonly remaining: number | null;
  /** Seconds until the reported policy's next refill. */
  readonly reset: number | null;
  /** Seconds from `Retry-After`. */
  readonly retryAfter: number | null;
  /** The window of the reported policy in seconds (IETF `w`); null when not announced. */
  readonly window: number | null;
  /** Every policy named in `RateLimit-Policy`, in order. */
  readonly policies: readonly HeaderPolicy[];
  /** Names of the rate-limit headers present (Retry-After not counted). */
  readonly found: readonly string[];
  /** Names of rate-limit headers present but unreadable, so ignored. */
  readonly invalid: readonly string[];
}

const LEGACY = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] as const;
const IETF = ["RateLimit", "RateLimit-Policy"] as const;
// Drafts up to -06 sent one header per field; some servers still do.
const OLD_IETF = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] as const;
// A reset above this many seconds is an epoch time, not a delay (about 2001-09-09).
const EPOCH_SECONDS = 1e9;
const EPOCH_MS = 1e12;

interface LimitEntry {
  readonly name: string;
  readonly remaining: number;
  readonly reset: number | null;
  /** The limit, only in the draft-07 Dictionary form. */
  readonly limit: number | null;
}

/**
 * readRateLimitHeaders reads legacy `X-RateLimit-*`, IETF `RateLimit` and
 * `RateLimit-Policy` (draft-10 and later, and the older forms), and
 * `Retry-After` from `headers`. `now` (epoch ms) turns absolute times into
 * delays. Where several headers say the same thing, the legacy headers win for
 * limit and remaining (they name the policy that decided) and IETF `t` wins
 * for reset (it is already a delay, so no clock skew).
 */
export function readRateLimitHeaders(headers: Headers, now: number): RateLimitHeaders {
  const found: string[] = [];
  const invalid: string[] = [];
  for (const name of [...LEGACY, ...IETF, ...OLD_IETF]) {
    if (headers.has(name)) found.push(name);
  }

  const legacyLimit = plainNumber(headers.get("X-RateLimit-Limit"));
  const legacyRemaining = plainNumber(headers.get("X-RateLimit-Remaining"));
  const legacyReset = resetSeconds(plainNumber(headers.get("X-RateLimit-Reset")), now);
  for (const [name, value] of [
    ["X-RateLimit-Limit", legacyLimit],
    ["X-RateLimit-Remaining", legacyRemaining],
    ["X-RateLimit-Reset", legacyReset],
  ] as const) {
    if (headers.has(name) && value === null) invalid.push(name);
  }

  const policies = readPolicies(headers.get("RateLimit-Policy"), invalid);
  const entries = readLimits(headers.get("RateLimit"), invalid);
  const reported = entries.reduce<LimitEntry | undefined>(
    (best, e) => (best === undefined || e.remaining < best.remaining ? e : best),
    undefined,
  );
  const reportedPolicy =
    (reported && policies.find((p) => p.name === reported.name)) ??
    (policies.length === 1 ? policies[0] : undefined) ??
    (legacyLimit !== null ? policies.find((p) => p.limit === legacyLimit) : undefined);

  const old = readOldIetf(headers, invalid);

  const limit =
    legacyLimit ??
    reportedPolicy?.limit ??
    reported?.limit ??
    (policies.length > 0 ? Math.min(...policies.map((p) => p.limit)) : null) ??
    old.limit;
  const remaining = legacyRemaining ?? reported?.remaining ?? old.remaining;
  const reset = reported?.reset ?? old.reset ?? legacyReset;

  const retryAfterText = headers.get("Retry-After");
  const retryAfter = retryAfterSeconds(retryAfterText, now);
  if (retryAfterText !== null && retryAfter === null) invalid.push("Retry-After");

  return {
    limit,
    remaining,
    reset,
    retryAfter,
    window: reportedPolicy?.window ?? old.window,
    policies,
    found,
    invalid,
  };
}

function readPolicies(value: string | null, invalid: string[]): HeaderPolicy[] {
  if (value === null) return [];
  const list = parseList(value);
  if (list === undefined) {
    invalid.push("RateLimit-Policy");
    return [];
  }
  const out: HeaderPolicy[] = [];
  for (const member of list) {
    const name = memberName(member);
    const q = param(member, "q");
    if (name === undefined || q === null) continue;
    out.push({ name, limit: q, window: positive(param(member, "w")) });
  }
  if (out.length === 0) invalid.push("RateLimit-Policy");
  return out;
}

function readLimits(value: string | null, invalid: string[]): LimitEntry[] {
  if (value === null) return [];
  const list = parseList(value);
  const out: LimitEntry[] = [];
  for (const member of list ?? []) {
    const name = memberName(member);
    const r = param(member, "r");
    if (name === undefined || r === null) continue;
    out.push({ name, remaining: r, reset: param(member, "t"), limit: null });
  }
  if (out.length > 0) return out;
  // Draft-07 sent one Dictionary: `RateLimit: limit=10, remaining=9, reset=1`.
  const dict = parseDictionary(value);
  const remaining = dict && itemNumber(dict.get("remaining"));
  if (dict && remaining !== null && remaining !== undefined) {
    return [
      {
        name: "",
        remaining,
        reset: itemNumber(dict.get("reset")),
        limit: itemNumber(dict.get("limit")),
      },
    ];
  }
  invalid.push("RateLimit");
  return [];
}

interface OldIetf {
  limit: number | null;
  remaining: number | null;
  reset: number | null;
  window: number | null;
}

function readOldIetf(headers: Headers, invalid: string[]): OldIetf {
  const out: OldIetf = { limit: null, remaining: null, reset: null, window: null };
  const limit = headers.get("RateLimit-Limit");
  if (limit !== null) {
    // `RateLimit-Limit: 10, 10;w=1`: the first member is the limit, later ones describe policies.
    const list = parseList(limit);
    const first = list?.[0];
    out.limit = first ? itemNumber(first) : null;
    out.window = list
      ? positive(list.map((m) => param(m, "w")).find((w) => w !== null) ?? null)
      : null;
    if (out.limit === null) invalid.push("RateLimit-Limit");
  }
  for (const [name, key] of [
    ["RateLimit-Remaining", "remaining"],
    ["RateLimit-Reset", "reset"],
  ] as const) {
    const value = headers.get(name);
    if (value === null) continue;
    const item = parseItem(value);
    out[key] = item ? itemNumber(item) : null;
    if (out[key] === null) invalid.push(name);
  }
  return out;
}

function param(member: SfMember, key: string): number | null {
  return nonNegative(member[1].get(key));
}

function itemNumber(member: SfMember | undefined): number | null {
  if (member === undefined || isInnerList(member)) return null;
  return nonNegative(member[0]);
}

function nonNegative(value: BareItem | undefined): number | null {
  return typeof value === "number" && value >= 0 ? value : null;
}

function positive(value: number | null): number | null {
  return value !== null && value > 0 ? value : null;
}

/** plainNumber reads a legacy header value: a non-negative number, or null. */
function plainNumber(value: string | null): number | null {
  if (value === null) return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*$/.exec(value);
  // 400 digits are Infinity: no number a server means, so unreadable.
  const n = match ? Number(match[1]) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

/**
 * resetSeconds turns `X-RateLimit-Reset` into seconds from `now`: servers send
 * Unix seconds (GitHub, the tutorial), Unix milliseconds, or a delay, and only
 * the size of the number tells them apart. Rounded up, never negative.
 */
export function resetSeconds(value: number | null, now: number): number | null {
  if (value === null) return null;
  if (value >= EPOCH_MS) return Math.max(0, Math.ceil((value - now) / 1000));
  if (value >= EPOCH_SECONDS) return Math.max(0, Math.ceil(value - now / 1000));
  return value;
}

const HTTP_DATE =
  /^(?:[A-Za-z]{3,9}, )?\d{1,2}[ -][A-Za-z]{3}[ -]\d{2,4} \d{2}:\d{2}:\d{2} GMT$|^[A-Za-z]{3} [A-Za-z]{3} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}$/;

/** retryAfterSeconds reads `Retry-After`: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterSeconds(value: string | null, now: number): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    return Number.isFinite(n) ? n : null;
  }
  // Only an HTTP date's shapes (RFC 9110: IMF-fixdate, RFC 850, asctime): Date.parse
  // alone reads garbage such as "soon 5" as a day in 2001, a wait of 0 s.
  if (!HTTP_DATE.test(trimmed)) return null;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
