// Stacked limiters on one request (a global limit, then a stricter one on
// /login) each write their headers, and the response must describe all of
// them the same way in every framework. The IETF fields are lists, so each
// limiter's policies are appended; the legacy X-RateLimit-* fields hold one
// value each, so they show the limiter with the fewest tokens left, or the
// one that denied: the rule a Decision already applies to its own policies.
import type { Decision } from "../core/decision.js";
import { HEADER } from "../http/headers.js";

/**
 * STACKED is the registered symbol under which a limiter keeps the headers
 * floodgate has written for a request so far, in a per-request object the
 * framework already gives out: Express's `res.locals`, Koa's `ctx.state`,
 * Fastify's request (decorated, so its shape is fixed up front), Hono's
 * context variables. Registered, so the ESM and CommonJS builds (and two
 * copies of the package) see each other's limiters. Neither the framework's
 * request objects change shape nor is a WeakMap entry made per request (a
 * WeakMap keyed by short-lived requests costs the garbage collector more
 * than the whole decision).
 */
export const STACKED: unique symbol = Symbol.for("floodgate.headers") as never;

/** Bag is a per-request object a limiter may keep its headers in, under STACKED. */
export interface Bag {
  [STACKED]?: readonly string[] | null | undefined;
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
 * Holder is a request floodgate has no per-request object for (plain
 * node:http, Fetch): its headers are kept in a registered WeakMap keyed by it.
 */
export type Holder = object;

type Registry = { [STACKED]?: WeakMap<Holder, readonly string[]> };

const registry = globalThis as Registry;
registry[STACKED] ??= new WeakMap();
const written = registry[STACKED];

/** stacked returns the headers floodgate has written for `holder`'s request so far, if any. */
export function stacked(holder: Holder): readonly string[] | undefined {
  return written.get(holder);
}

/**
 * record returns the headers to write for this limiter on `holder`'s
 * request, and keeps them for a limiter that runs after it.
 */
export function record(
  holder: Holder,
  headers: readonly string[],
  limited: boolean,
): readonly string[] {
  const list = merge(written.get(holder), headers, limited);
  written.set(holder, list);
  return list;
}

/** stackedIn returns the headers floodgate has written into `bag` so far, if any. */
export function stackedIn(bag: Bag): readonly string[] | undefined {
  return bag[STACKED] ?? undefined;
}

/** recordIn is record for a request with a per-request object (`bag`). */
export function recordIn(
  bag: Bag,
  headers: readonly string[],
  limited: boolean,
): readonly string[] {
  const list = merge(bag[STACKED] ?? undefined, headers, limited);
  bag[STACKED] = list;
  return list;
}

/**
 * merge returns the headers to write for this limiter: its own (`current`)
 * when it is the first on the request, else stackHeaders of both.
 */
export function merge(
  earlier: readonly string[] | undefined,
  current: readonly string[],
  limited: boolean,
): readonly string[] {
  return earlier === undefined ? current : stackHeaders(earlier, current, limited);
}

const LIMIT = HEADER.limit;
const REMAINING = HEADER.remaining;
const RESET = HEADER.reset;
const POLICY = HEADER.policy;
const STATE = HEADER.rateLimit;
const RETRY = HEADER.retryAfter;

function find(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

function joined(a: string | undefined, b: string | undefined): string | undefined {
  return a === undefined ? b : b === undefined ? a : `${a}, ${b}`;
}

/**
 * stackHeaders merges the headers a limiter that ran earlier on this request
 * wrote (`earlier`) with this limiter's (`current`) and returns the full list
 * to write, in the order headerList uses. `limited` says this limiter denies
 * the request: its legacy values and Retry-After then win. Otherwise the
 * legacy values with fewer remaining win, the earlier ones on a tie.
 */
export function stackHeaders(
  earlier: readonly string[],
  current: readonly string[],
  limited: boolean,
): string[] {
  const mine = find(current, REMAINING);
  const theirs = find(earlier, REMAINING);
  const legacy =
    mine === undefined || (theirs !== undefined && !limited && Number(theirs) <= Number(mine))
      ? earlier
      : current;
  const out: string[] = [];
  const limit = find(legacy, LIMIT);
  if (limit !== undefined) {
    out.push(LIMIT, limit, REMAINING, find(legacy, REMAINING) as string);
    out.push(RESET, find(legacy, RESET) as string);
  }
  const policy = joined(find(earlier, POLICY), find(current, POLICY));
  if (policy !== undefined) out.push(POLICY, policy);
  const state = joined(find(earlier, STATE), find(current, STATE));
  if (state !== undefined) out.push(STATE, state);
  const retry = find(current, RETRY) ?? find(earlier, RETRY);
  if (retry !== undefined) out.push(RETRY, retry);
  return out;
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
