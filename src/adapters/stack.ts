// Stacked limiters on one request (a global limit, then a stricter one on
// /login) each write their headers, and the response must describe all of
// them the same way in every framework. The IETF fields are lists, so each
// limiter's policies are appended; the legacy X-RateLimit-* fields hold one
// value each, so they show the limiter with the fewest tokens left, or the
// one that denied: the rule a Decision already applies to its own policies.
// The limiters' decisions are merged, and the headers formatted from the
// merge; header text is never read back.
import type { Decision } from "../core/decision.js";
import type { RateLimitOutcome } from "../http/handler.js";
import { HEADER, limitText, rateLimitValue, retryAfterSeconds } from "../http/headers.js";

/**
 * STACKED is the registered symbol under which a limiter keeps what the
 * limiters on a request have made of its headers so far (Stacked), in a per-request object the
 * framework already gives out: Express's `res.locals`, Koa's `ctx.state`,
 * Fastify's request (decorated, so its shape is fixed up front), Hono's
 * context variables. Registered, so the ESM and CommonJS builds (and two
 * copies of the package) see each other's limiters. Neither the framework's
 * request objects change shape nor is a WeakMap entry made per request (a
 * WeakMap keyed by short-lived requests costs the garbage collector more
 * than the whole decision).
 */
export const STACKED: unique symbol = Symbol.for("floodgate.stacked") as never;

/** Bag is a per-request object a limiter may keep its headers in, under STACKED. */
export interface Bag {
  [STACKED]?: Stacked | null | undefined;
}

/**
 * localsOf returns a response's `locals` (Express, and stacks like it) when it
 * is an object: the Bag of that request.
 */
export function localsOf(res: unknown): Bag | undefined {
  const locals = (res as { locals?: unknown } | undefined)?.locals;
  return typeof locals === "object" && locals !== null ? (locals as Bag) : undefined;
}

/**
 * Stacked is what the limiters that ran on a request so far make of its
 * headers: the first limiter's outcome as it is (so a request with one
 * limiter costs nothing more), or, once a second has run, their Merge.
 */
export type Stacked = RateLimitOutcome | Merge;

/**
 * Merge is two or more limiters' part in a request's headers, before
 * formatting: the outcome whose legacy values show, the IETF list members
 * so far, the Retry-After seconds (0: none), and the `headers` formatted
 * from them.
 */
interface Merge {
  readonly merged: true;
  readonly shown: RateLimitOutcome | undefined;
  readonly policy: string | undefined;
  readonly state: string | undefined;
  readonly retry: number;
  readonly headers: readonly string[];
}

function isMerge(entry: Stacked): entry is Merge {
  return (entry as Partial<Merge>).merged === true;
}

/** alone is one limiter's outcome as a Merge, for the first limiter of a stack. */
function alone(o: RateLimitOutcome): Merge {
  return {
    merged: true,
    shown: o.legacy ? o : undefined,
    policy: o.ietf ? o.set.policyHeader : undefined,
    state: o.ietf ? rateLimitValue(o.set, o.decision) : undefined,
    retry: o.limited ? retryAfterSeconds(o.decision) : 0,
    headers: o.headers,
  };
}

function joined(a: string | undefined, b: string | undefined): string | undefined {
  return a === undefined ? b : b === undefined ? a : `${a}, ${b}`;
}

/**
 * merge adds this limiter's outcome (`current`) to what the limiters before
 * it on the request made (`earlier`) and returns the result, whose
 * `headers` are the full list to write, in the order headerList uses. When
 * `current` denies the request its legacy values and Retry-After win;
 * otherwise the legacy values with fewer remaining win, the earlier ones on
 * a tie.
 */
export function merge(earlier: Stacked | undefined, current: RateLimitOutcome): Stacked {
  if (earlier === undefined) return current;
  const e = isMerge(earlier) ? earlier : alone(earlier);
  const was = e.shown;
  const shown =
    current.legacy &&
    (was === undefined || current.limited || current.decision.remaining < was.decision.remaining)
      ? current
      : was;
  const policy = joined(e.policy, current.ietf ? current.set.policyHeader : undefined);
  const state = joined(
    e.state,
    current.ietf ? rateLimitValue(current.set, current.decision) : undefined,
  );
  const retry = current.limited ? retryAfterSeconds(current.decision) : e.retry;
  const headers: string[] = [];
  if (shown !== undefined) {
    const d = shown.decision;
    headers.push(HEADER.limit, limitText(shown.set, d), HEADER.remaining, String(d.remaining));
    headers.push(HEADER.reset, shown.set.resetText(d.resetAt));
  }
  if (policy !== undefined) headers.push(HEADER.policy, policy);
  if (state !== undefined) headers.push(HEADER.rateLimit, state);
  if (retry > 0) headers.push(HEADER.retryAfter, String(retry));
  return { merged: true, shown, policy, state, retry, headers };
}

/**
 * Holder is a request floodgate has no per-request object for (plain
 * node:http, Fetch): its headers are kept in a registered WeakMap keyed by it.
 */
export type Holder = object;

type Registry = { [STACKED]?: WeakMap<Holder, Stacked> };

const registry = globalThis as Registry;
registry[STACKED] ??= new WeakMap();
const written = registry[STACKED];

/** stacked returns the headers floodgate has written for `holder`'s request so far, if any. */
export function stacked(holder: Holder): readonly string[] | undefined {
  return written.get(holder)?.headers;
}

/**
 * record returns the headers to write for this limiter's `outcome` on
 * `holder`'s request, and keeps what it merged for a limiter that runs after it.
 */
export function record(holder: Holder, outcome: RateLimitOutcome): readonly string[] {
  const entry = merge(written.get(holder), outcome);
  written.set(holder, entry);
  return entry.headers;
}

/** stackedIn returns the headers floodgate has written into `bag` so far, if any. */
export function stackedIn(bag: Bag): readonly string[] | undefined {
  return bag[STACKED]?.headers;
}

/** recordIn is record for a request with a per-request object (`bag`). */
export function recordIn(bag: Bag, outcome: RateLimitOutcome): readonly string[] {
  const entry = merge(bag[STACKED] ?? undefined, outcome);
  bag[STACKED] = entry;
  return entry.headers;
}

/**
 * stricter picks the decision to expose when limiters are stacked: a denial
 * over an allowance, the longer wait between denials, the fewer tokens left
 * between allowances, and `earlier` on a tie.
 */
export function stricter(earlier: Decision, current: Decision): Decision {
  if (earlier.allowed !== current.allowed) return current.allowed ? earlier : current;
  if (!current.allowed) return current.retryAfter > earlier.retryAfter ? current : earlier;
  return current.remaining < earlier.remaining ? current : earlier;
}
