// floodgate/koa: the HTTP layer as Koa 2 and 3 middleware. It only
// translates: Koa's context through the shared reader of Node's request, the
// outcome onto ctx (headers, and status and body when limited). Only types
// come from koa, so importing this module never loads it.
import type { Context, Next } from "koa";
import type { Decision } from "../../core/decision.js";
import {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitOutcome,
  type RequestReader,
} from "../../http/index.js";
import type { RateLimiter } from "../../limiter.js";
import { readAddress, readHeader, whenSent } from "../incoming.js";
import { type Bag, recordIn, stackedIn, stricter } from "../stack.js";
import { Warnings, type WarningsOption } from "../warnings.js";

declare module "koa" {
  // Koa's default state (`new Koa()`, koa-router's): ctx.state.rateLimit is
  // typed there. Koa's DefaultState extends any, so an app's own declaration
  // of other state keys is unaffected.
  interface DefaultState {
    /** rateLimit is floodgate's decision (the strictest one when limiters are stacked); undefined when none decided. */
    rateLimit?: Decision;
  }
}

/**
 * RateLimitState types `ctx.state` for apps that declare theirs:
 * `new Koa<RateLimitState>()` (or `new Koa<MyState & RateLimitState>()`).
 */
export interface RateLimitState {
  /** rateLimit is floodgate's decision (the strictest one when limiters are stacked); undefined when none decided. */
  rateLimit?: Decision;
}

/** KoaRateLimitOptions are floodgate's HTTP options plus `warnings` (start-up warnings about client identity). */
export interface KoaRateLimitOptions extends RateLimitOptions<Context, Context> {
  warnings?: WarningsOption | undefined;
}

/**
 * KoaRateLimit is the middleware `rateLimit` returns, with `route` for a
 * route of its own and `limiter` for `reset` and `peek`.
 */
export interface KoaRateLimit {
  (ctx: Context, next: Next): Promise<void> | undefined;
  /**
   * route builds the middleware of one route: `overrides` replace these
   * options and the rest, including the limiter (so the buckets), is shared.
   * Mount it instead of, not after, this middleware on that route.
   */
  route(overrides: RateLimitOptions<Context, Context>): KoaRateLimit;
  /**
   * limiter is the RateLimiter this middleware charges. Its `reset(key)`
   * forgets the key's buckets under every policy this middleware and its
   * routes charge through it: its own, each tier, each route's.
   */
  readonly limiter: RateLimiter;
}

type Limit = RateLimit<Context, Context>;

const EXTRA = ["warnings"];

/** reader reads the Node request under Koa's context: the socket, and the headers the client sent. */
const reader: RequestReader<Context> = {
  address: (ctx) => readAddress(ctx.req),
  header: (ctx, name) => readHeader(ctx.req, name),
  method: (ctx) => ctx.req.method,
};

function answer(
  limit: Limit,
  outcome: RateLimitOutcome,
  ctx: Context,
  next: Next,
): Promise<void> | undefined {
  const state = ctx.state as RateLimitState;
  const bag = state as Bag;
  const decision = outcome.decision;
  state.rateLimit =
    stackedIn(bag) !== undefined && state.rateLimit !== undefined
      ? stricter(state.rateLimit, decision)
      : decision;
  const limited = outcome.limited;
  const res = ctx.res;
  if (ctx.headerSent) {
    // Someone has already answered: add nothing; a limited request still stops here.
    // An allowed one was charged all the same, so `refund` is still asked once it is sent.
    if (limited) return undefined;
    whenSent(res, outcome.sent);
    return next();
  }
  const headers = recordIn(bag, outcome);
  for (let i = 0; i < headers.length; i += 2) {
    res.setHeader(headers[i] as string, headers[i + 1] as string);
  }
  if (!limited) {
    // After Koa's own error handling has set the status: the response as sent.
    whenSent(res, outcome.sent);
    return next();
  }
  const response = outcome.response;
  if (response !== undefined) {
    ctx.status = response.status;
    res.setHeader("Content-Type", response.contentType);
    ctx.body = response.body;
    return undefined;
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  return Promise.resolve(respond(ctx, ctx, decision)).then(() => {
    if (ctx.body === undefined && !ctx.headerSent) {
      throw new Error("floodgate: the respond option returned without setting a response body");
    }
  });
}

function middleware(limit: Limit, warnings: Warnings): KoaRateLimit {
  // A custom key is not the socket's: nothing of this middleware's to watch.
  let watching = limit.options.key === undefined;
  function floodgateRateLimit(ctx: Context, next: Next): Promise<void> | undefined {
    if (watching) watching = warnings.watch(reader, ctx, "koa", "key clients another way");
    const result = limit.check(ctx);
    if (result === null) return next();
    if (result instanceof Promise) {
      return result.then((outcome) =>
        outcome === null ? next() : answer(limit, outcome, ctx, next),
      );
    }
    return answer(limit, result, ctx, next);
  }
  return Object.assign(floodgateRateLimit, {
    route: (overrides: RateLimitOptions<Context, Context>) =>
      middleware(limit.route(overrides), warnings),
    limiter: limit.limiter,
  });
}

/**
 * rateLimit builds Koa middleware (Koa 2 and 3) from the options every
 * floodgate middleware takes, validated now (a ConfigError names the bad
 * option). Each request it decides gets `ctx.state.rateLimit`; a denied one
 * is answered with 429, Retry-After and the JSON body, and downstream
 * middleware does not run. Errors of the user's functions are thrown into
 * Koa's error handling. Stacked limiters each set their headers and the
 * strictest decision wins.
 */
export function rateLimit(options: KoaRateLimitOptions): KoaRateLimit {
  const limit = createRateLimit<Context, Context>(options, reader, EXTRA);
  return middleware(limit, new Warnings(options.warnings));
}

export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
export type { WarningCode, WarningsOption } from "../warnings.js";
