// Rate-limit response headers. Everything that depends only on the policies
// (names, RateLimit-Policy) is built once per policy list; per request only
// numbers are written, so no header value can carry CR, LF or a client's text.
import type { Decision } from "../core/decision.js";
import type { Policy } from "../core/policy.js";

/** HeaderMode selects the rate-limit headers: legacy `X-RateLimit-*`, the IETF draft's, both, or none. */
export type HeaderMode = "legacy" | "ietf" | "both" | false;

/**
 * PolicySet is a validated policy list with its precomputed header text:
 * `policyHeader` is the RateLimit-Policy value, `items[i]` the start of policy
 * i's member of the RateLimit value (`"burst";r=`).
 */
export interface PolicySet {
  readonly list: readonly Policy[];
  readonly policyHeader: string;
  readonly items: readonly string[];
}

/**
 * policySet precomputes the header text of `list`. For a token bucket, `q`
 * is the capacity and `w` the whole seconds to refill from empty (rounded up,
 * at least 1); policy names are valid structured-field Strings as validated.
 */
export function policySet(list: readonly Policy[]): PolicySet {
  return Object.freeze({
    list,
    policyHeader: list
      .map((p) => `"${p.name}";q=${p.capacity};w=${Math.max(1, Math.ceil(p.window / 1000))}`)
      .join(", "),
    items: Object.freeze(list.map((p) => `"${p.name}";r=`)),
  });
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
export function rateLimitValue(set: PolicySet, decision: Decision): string {
  const states = decision.policies;
  const now = decision.now;
  let value = "";
  for (let i = 0; i < states.length; i++) {
    const s = states[i] as Decision["policies"][number];
    if (i > 0) value += ", ";
    value += `${set.items[i]}${s.remaining};t=${seconds(s.resetAt - now)}`;
  }
  return value;
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
): string[] {
  const out: string[] = [];
  if (legacy) {
    out.push(
      "X-RateLimit-Limit",
      String(decision.limit),
      "X-RateLimit-Remaining",
      String(decision.remaining),
      "X-RateLimit-Reset",
      String(Math.ceil(decision.resetAt / 1000)),
    );
  }
  if (ietf) {
    out.push("RateLimit-Policy", set.policyHeader, "RateLimit", rateLimitValue(set, decision));
  }
  if (limited) out.push("Retry-After", String(retryAfterSeconds(decision)));
  return out;
}
