// Rate-limit response headers. Everything that depends only on the policies
// (names, RateLimit-Policy) is built once per policy list; per request only
// numbers are written, so no header value can carry CR, LF or a client's text.
import type { Decision } from "../core/decision.js";
import type { Policy } from "../core/policy.js";

/** HeaderMode selects the rate-limit headers: legacy `X-RateLimit-*`, the IETF draft's, both, or none. */
export type HeaderMode = "legacy" | "ietf" | "both" | false;

/**
 * The header names, in lower case: how Fastify, Fetch and HTTP/2 send them
 * anyway, so every adapter answers with identical headers (and lower case is
 * the fast path of the frameworks' own lower-casing).
 */
export const HEADER = Object.freeze({
  limit: "x-ratelimit-limit",
  remaining: "x-ratelimit-remaining",
  reset: "x-ratelimit-reset",
  policy: "ratelimit-policy",
  rateLimit: "ratelimit",
  retryAfter: "retry-after",
});

/** Printed is the last header list of one kind a PolicySet built, with the numbers it printed. */
class Printed {
  list: readonly string[] | undefined = undefined;
  mode = 0;
  remaining = 0;
  reset = 0;
  state = 0;
  t = 0;
  retry = 0;
}

/**
 * PolicySet is a validated policy list with its precomputed header text:
 * `policyHeader` is the RateLimit-Policy value, `items[i]` the start of policy
 * i's member of the RateLimit value (`"burst";r=`), `limits[i]` its capacity.
 * It also remembers the last X-RateLimit-Reset it wrote, since consecutive
 * requests mostly share the second of their next refill, and, for one
 * policy, the last allowed and the last limited header list (see `single`).
 */
export class PolicySet {
  readonly list: readonly Policy[];
  readonly policyHeader: string;
  readonly items: readonly string[];
  readonly limits: readonly string[];
  #resetSeconds = -1;
  #resetText = "";
  readonly #allowed = new Printed();
  readonly #denied = new Printed();

  constructor(list: readonly Policy[]) {
    this.list = list;
    this.policyHeader = list
      .map((p) => `"${p.name}";q=${Math.min(p.capacity, SF_INTEGER_MAX)};w=${windowSeconds(p)}`)
      .join(", ");
    this.items = Object.freeze(list.map((p) => `"${p.name}";r=`));
    this.limits = Object.freeze(list.map((p) => String(p.capacity)));
  }

  /** resetText is X-RateLimit-Reset for `resetAt` (epoch ms): Unix seconds, rounded up. */
  resetText(resetAt: number): string {
    const seconds = Math.ceil(resetAt / 1000);
    if (seconds !== this.#resetSeconds) {
      this.#resetSeconds = seconds;
      this.#resetText = String(seconds);
    }
    return this.#resetText;
  }

  /**
   * single returns the headers of an answer under one policy, rebuilt only
   * when they would print other numbers than the last answer of the same
   * kind (allowed or limited): a client that keeps knocking on a denied
   * bucket gets the same list all second long, and clients with the same
   * tokens left in the same second share one list, strings included.
   */
  single(decision: Decision, legacy: boolean, ietf: boolean, limited: boolean): readonly string[] {
    const state = decision.policies[0] as Decision["policies"][number];
    const mode = (legacy ? 1 : 0) + (ietf ? 2 : 0);
    const reset = Math.ceil(decision.resetAt / 1000);
    const t = seconds(state.resetAt - decision.now);
    const retry = limited ? retryAfterSeconds(decision) : 0;
    const last = limited ? this.#denied : this.#allowed;
    if (
      last.list !== undefined &&
      last.mode === mode &&
      last.remaining === decision.remaining &&
      last.reset === reset &&
      last.state === state.remaining &&
      last.t === t &&
      last.retry === retry
    ) {
      return last.list;
    }
    const list = buildList(this, decision, legacy, ietf, limited);
    last.list = list;
    last.mode = mode;
    last.remaining = decision.remaining;
    last.reset = reset;
    last.state = state.remaining;
    last.t = t;
    last.retry = retry;
    return list;
  }
}

/**
 * SF_INTEGER_MAX is the largest Integer a structured field may carry (RFC
 * 9651: at most 15 digits). A longer one makes a strict client reject the
 * whole field, and capacity 1e9 refilled by 1 a year is a 17-digit window;
 * capacities (`q`) and tokens left (`r`) may reach 2^53, 16 digits.
 */
const SF_INTEGER_MAX = 999_999_999_999_999;

/** windowSeconds is a policy's `w`: whole seconds to refill from empty, at least 1, at most SF_INTEGER_MAX. */
function windowSeconds(p: Policy): number {
  return Math.min(SF_INTEGER_MAX, Math.max(1, Math.ceil(p.window / 1000)));
}

/**
 * policySet precomputes the header text of `list`. For a token bucket, `q`
 * is the capacity and `w` the whole seconds to refill from empty (rounded up,
 * at least 1); policy names are valid structured-field Strings as validated.
 */
export function policySet(list: readonly Policy[]): PolicySet {
  return new PolicySet(list);
}

/** seconds turns a duration in ms into whole seconds, rounded up, never negative. */
function seconds(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) : 0;
}

/**
 * retryAfterSeconds is the Retry-After of a denied decision: its wait in
 * whole seconds rounded up, at least 1, and never earlier than the next
 * refill of the denying policy (its `t`), so a client that waits that long
 * finds the tokens it needs.
 */
export function retryAfterSeconds(decision: Decision): number {
  return Math.max(1, seconds(decision.retryAfter), seconds(decision.resetAt - decision.now));
}

/**
 * rateLimitValue is the IETF RateLimit value: every policy's remaining
 * tokens `r` and whole seconds `t` until its next refill (rounded up).
 */
export function rateLimitValue(set: PolicySet, decision: Decision, remaining?: string): string {
  const states = decision.policies;
  const now = decision.now;
  if (states.length === 1) {
    const s = states[0] as Decision["policies"][number];
    // The legacy header's text of the same number, when the caller has it.
    const r =
      s.remaining > SF_INTEGER_MAX
        ? SF_INTEGER_MAX
        : remaining !== undefined && s.remaining === decision.remaining
          ? remaining
          : s.remaining;
    return `${set.items[0]}${r};t=${seconds(s.resetAt - now)}`;
  }
  let value = "";
  for (let i = 0; i < states.length; i++) {
    const s = states[i] as Decision["policies"][number];
    if (i > 0) value += ", ";
    value += `${set.items[i]}${Math.min(s.remaining, SF_INTEGER_MAX)};t=${seconds(s.resetAt - now)}`;
  }
  return value;
}

/** limitText is X-RateLimit-Limit: the reported policy's capacity, precomputed for one policy. */
export function limitText(set: PolicySet, decision: Decision): string {
  return set.limits.length === 1 ? (set.limits[0] as string) : String(decision.limit);
}

/**
 * headerList returns the headers to set as `[name, value, name, value, ...]`:
 * legacy and/or IETF as selected, and Retry-After when `limited` (a 429 always
 * says when to come back, even with headers off).
 */
export function headerList(
  set: PolicySet,
  decision: Decision,
  legacy: boolean,
  ietf: boolean,
  limited: boolean,
): readonly string[] {
  if (decision.policies.length === 1 && (legacy || ietf || limited)) {
    return set.single(decision, legacy, ietf, limited);
  }
  return buildList(set, decision, legacy, ietf, limited);
}

function buildList(
  set: PolicySet,
  decision: Decision,
  legacy: boolean,
  ietf: boolean,
  limited: boolean,
): string[] {
  let out: string[];
  if (legacy && ietf) {
    const remaining = String(decision.remaining);
    out = [
      HEADER.limit,
      limitText(set, decision),
      HEADER.remaining,
      remaining,
      HEADER.reset,
      set.resetText(decision.resetAt),
      HEADER.policy,
      set.policyHeader,
      HEADER.rateLimit,
      rateLimitValue(set, decision, remaining),
    ];
  } else if (legacy) {
    out = [
      HEADER.limit,
      limitText(set, decision),
      HEADER.remaining,
      String(decision.remaining),
      HEADER.reset,
      set.resetText(decision.resetAt),
    ];
  } else if (ietf) {
    out = [HEADER.policy, set.policyHeader, HEADER.rateLimit, rateLimitValue(set, decision)];
  } else {
    out = [];
  }
  if (limited) out.push(HEADER.retryAfter, String(retryAfterSeconds(decision)));
  return out;
}
