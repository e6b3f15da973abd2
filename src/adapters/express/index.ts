// floodgate/express: the HTTP layer as Express 4 and 5 middleware. It only
// translates: Node's request through the shared reader, the outcome onto
// Node's response (no res.send, so Express 4 and 5 answer byte for byte the
// same). Only types come from express, so importing this module never loads it.
import type { NextFunction, Request, Response } from "express";
import type { Decision } from "../../core/decision.js";
import {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitOutcome,
} from "../../http/index.js";
import type { RateLimiter } from "../../limiter.js";
import { setDecision } from "../decision-property.js";
import { incomingReader, whenSent } from "../incoming.js";
import { type Bag, localsOf, recordIn, stackedIn, stricter } from "../stack.js";
import { Warnings, type WarningsOption } from "../warnings.js";

/**
 * RateLimitedRequest is Express's request with floodgate's decision: the
 * type of a handler's `req` that reads `req.rateLimit`, the strictest
 * decision when limiters are stacked, undefined when no limiter decided it.
 * floodgate does not re-type Express's Request globally, so a codebase whose
 * own declaration gives `req.rateLimit` another type (express-rate-limit's
 * `RateLimitInfo`) still compiles; to type it globally, declare
 * `namespace Express { interface Request { rateLimit?: Decision } }` yourself.
 * Where such a declaration gives it another type, read it with rateLimitOf.
 */
export type RateLimitedRequest = Request & { rateLimit?: Decision };

/**
 * rateLimitOf returns floodgate's decision for `req` (the strictest one when
 * limiters are stacked), or undefined when no limiter decided it: the same
 * value as `req.rateLimit`, typed whatever type a codebase's own declaration
 * gives that property.
 */
export function rateLimitOf(req: Request): Decision | undefined {
  return (req as RateLimitedRequest).rateLimit;
}

/**
 * ExpressRateLimitOptions are floodgate's HTTP options plus `warnings`, which
 * switches off the start-up warnings about client identity (all, or by code).
 */
export interface ExpressRateLimitOptions extends RateLimitOptions<Request, Response> {
  warnings?: WarningsOption | undefined;
}

/**
 * ExpressRateLimit is the middleware `rateLimit` returns, with `route` for a
 * route of its own and `limiter` for `reset` and `peek`.
 */
export interface ExpressRateLimit {
  // Generic so that a route's own Request type flows through: with
  // `(req: Request)`, Express 5's types widen req.params to ParamsDictionary
  // (string | string[]) for every handler after floodgate on the route.
  // biome-ignore lint/suspicious/noExplicitAny: Express's own type parameters, as its RequestHandler declares them
  <Req extends Request<any, any, any, any, any>>(req: Req, res: Response, next: NextFunction): void;
  /**
   * route builds the middleware of one route: `overrides` replace these
   * options and the rest, including the limiter (so the buckets), is shared.
   * Mount it instead of, not after, this middleware on that route.
   */
  route(overrides: RateLimitOptions<Request, Response>): ExpressRateLimit;
  /**
   * limiter is the RateLimiter this middleware charges. Its `reset(key)`
   * forgets the key's buckets under every policy this middleware and its
   * routes charge through it: its own, each tier, each route's.
   */
  readonly limiter: RateLimiter;
}

type Limit = RateLimit<Request, Response>;

const EXTRA = ["warnings"];

function trustWarning(req: Request, warnings: Warnings): void {
  if (req.app?.get("trust proxy") === true) {
    warnings.warn(
      "FLOODGATE_PERMISSIVE_TRUST_PROXY",
      `Express's "trust proxy" setting is true: it believes every X-Forwarded-For hop, so req.ip is whatever the client sends. floodgate keys clients by the socket's address (not req.ip) unless keys.ip({ trustProxy }) says whom to trust, so behind a proxy every client shares its bucket, and a key built from req.ip can be chosen by the client. Fix: set both to the proxies really in front of this server, e.g. app.set("trust proxy", 1) and key: keys.ip({ trustProxy: 1 }) behind one load balancer.`,
    );
  }
}

/**
 * bagOf is where stacked limiters keep their headers: `res.locals`, the
 * per-request object Express creates (the response itself if an app has
 * removed it), so the request object keeps its shape.
 */
function bagOf(res: Response): Bag {
  return localsOf(res) ?? (res as Bag);
}

function answer(
  limit: Limit,
  outcome: RateLimitOutcome,
  req: Request,
  res: Response,
  next: NextFunction,
): void {
  const bag = bagOf(res);
  const decision = outcome.decision;
  const earlier = stackedIn(bag) === undefined ? undefined : (req as RateLimitedRequest).rateLimit;
  setDecision(req, earlier === undefined ? decision : stricter(earlier, decision));
  const limited = outcome.limited;
  if (res.headersSent) {
    // Another middleware has already answered: add nothing; a limited request still stops here.
    // An allowed one was charged all the same, so `refund` is still asked once it is sent.
    if (!limited) {
      whenSent(res, outcome.sent);
      next();
    } else if (!res.writableEnded) res.end();
    return;
  }
  const headers = recordIn(bag, outcome);
  for (let i = 0; i < headers.length; i += 2) {
    res.setHeader(headers[i] as string, headers[i + 1] as string);
  }
  if (!limited) {
    whenSent(res, outcome.sent);
    next();
    return;
  }
  const response = outcome.response;
  if (response !== undefined) {
    res.statusCode = response.status;
    res.setHeader("Content-Type", response.contentType);
    res.end(response.body);
    return;
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  // Caught here, not left to Express: after an asynchronous decision this
  // runs in a promise callback, where a throw would be an unhandled rejection.
  let answered: unknown;
  try {
    answered = respond(req, res, decision);
  } catch (error) {
    next(error);
    return;
  }
  Promise.resolve(answered).then(() => {
    if (!res.headersSent) {
      next(new Error("floodgate: the respond option returned without sending a response"));
    }
  }, next);
}

function middleware(limit: Limit, warnings: Warnings): ExpressRateLimit {
  // A custom key is not the socket's: after the trust proxy check, nothing of this middleware's to watch.
  const customKey = limit.options.key !== undefined;
  let watching = true;
  function floodgateRateLimit(req: Request, res: Response, next: NextFunction): void {
    if (watching) {
      trustWarning(req, warnings);
      watching =
        !customKey && warnings.watch(incomingReader, req, "express", "key clients another way");
    }
    let result: ReturnType<Limit["check"]>;
    try {
      result = limit.check(req);
    } catch (error) {
      next(error);
      return;
    }
    if (result === null) {
      next();
    } else if (result instanceof Promise) {
      result.then((outcome) => {
        if (outcome === null) next();
        else answer(limit, outcome, req, res, next);
      }, next);
    } else {
      answer(limit, result, req, res, next);
    }
  }
  return Object.assign(floodgateRateLimit, {
    route: (overrides: RateLimitOptions<Request, Response>) =>
      middleware(limit.route(overrides), warnings),
    limiter: limit.limiter,
  });
}

/**
 * rateLimit builds Express middleware (Express 4 and 5) from the options
 * every floodgate middleware takes, validated now (a ConfigError names the
 * bad option). Each request it decides gets `req.rateLimit`; a denied one is
 * answered with 429, Retry-After and the JSON body, and the chain stops.
 * Errors of the user's functions go to `next(error)`. Mount it with
 * `app.use(limit)`, on a path, or on a route; stacked limiters each set their
 * headers and the strictest decision wins.
 */
export function rateLimit(options: ExpressRateLimitOptions): ExpressRateLimit {
  const limit = createRateLimit<Request, Response>(options, incomingReader, EXTRA);
  return middleware(limit, new Warnings(options.warnings));
}

export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
export type { WarningCode, WarningsOption } from "../warnings.js";
