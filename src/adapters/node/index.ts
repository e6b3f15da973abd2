// floodgate/node: the HTTP layer for plain node:http and node:https servers
// (and Connect-style stacks). The check is one call a handler awaits; on the
// memory store it settles with one of two shared promises, so an allowed
// request allocates no promise of its own.
import type { IncomingMessage, ServerResponse } from "node:http";
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
import { localsOf, record, recordIn, stacked, stackedIn, stricter } from "../stack.js";
import { Warnings, type WarningsOption } from "../warnings.js";

/** RateLimitedRequest is a request floodgate has decided: `rateLimit` is its decision (the strictest one when limiters are stacked). */
export type RateLimitedRequest = IncomingMessage & { rateLimit?: Decision };

/** NodeRateLimitOptions are floodgate's HTTP options plus `warnings` (start-up warnings about client identity). */
export interface NodeRateLimitOptions extends RateLimitOptions<IncomingMessage, ServerResponse> {
  warnings?: WarningsOption | undefined;
}

/**
 * NodeRateLimit checks one request: it resolves true when the handler should
 * go on (the rate-limit headers are set) and false when floodgate has
 * answered (429). Given Connect's `next` as a third argument it also calls
 * `next()` to go on, or `next(error)`, and then never rejects.
 */
export interface NodeRateLimit {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): Promise<boolean>;
  /**
   * route builds the check of one route: `overrides` replace these options
   * and the rest, including the limiter (so the buckets), is shared.
   */
  route(overrides: RateLimitOptions<IncomingMessage, ServerResponse>): NodeRateLimit;
  /**
   * limiter is the RateLimiter this check charges. Its `reset(key)` forgets
   * the key's buckets under every policy this check and its routes charge
   * through it: its own, each tier, each route's.
   */
  readonly limiter: RateLimiter;
}

type Limit = RateLimit<IncomingMessage, ServerResponse>;
type Next = ((error?: unknown) => void) | undefined;

const GO_ON = Promise.resolve(true);
const ANSWERED = Promise.resolve(false);
const EXTRA = ["warnings"];
const NOT_SENT = "floodgate: the respond option returned without sending a response";

function answer(
  limit: Limit,
  outcome: RateLimitOutcome,
  req: RateLimitedRequest,
  res: ServerResponse,
  next: Next,
): Promise<boolean> {
  // Under Express (or any stack that gives `res.locals`) the headers are kept
  // where floodgate/express keeps them, so the two stack; else by request.
  const bag = localsOf(res);
  const decision = outcome.decision;
  const earlier = bag === undefined ? stacked(req) : stackedIn(bag);
  setDecision(
    req,
    earlier !== undefined && req.rateLimit !== undefined
      ? stricter(req.rateLimit, decision)
      : decision,
  );
  const limited = outcome.limited;
  if (res.headersSent) {
    // Someone has already answered: add nothing; a limited request still stops here.
    // An allowed one was charged all the same, so `refund` is still asked once it is sent.
    if (!limited) {
      whenSent(res, outcome.sent);
      next?.();
      return GO_ON;
    }
    if (!res.writableEnded) res.end();
    return ANSWERED;
  }
  const headers = bag === undefined ? record(req, outcome) : recordIn(bag, outcome);
  for (let i = 0; i < headers.length; i += 2) {
    res.setHeader(headers[i] as string, headers[i + 1] as string);
  }
  if (!limited) {
    whenSent(res, outcome.sent);
    next?.();
    return GO_ON;
  }
  const response = outcome.response;
  if (response !== undefined) {
    res.statusCode = response.status;
    res.setHeader("Content-Type", response.contentType);
    res.end(response.body);
    return ANSWERED;
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  return Promise.resolve(respond(req, res, decision))
    .then(() => {
      if (res.headersSent) return false;
      throw new Error(NOT_SENT);
    })
    .catch((error: unknown) => failed(error, next));
}

function failed(error: unknown, next: Next): Promise<boolean> {
  if (next === undefined) return Promise.reject(error);
  next(error);
  return ANSWERED;
}

function check(limit: Limit, warnings: Warnings): NodeRateLimit {
  // A custom key is not the socket's: nothing of this check's to watch.
  let watching = limit.options.key === undefined;
  function floodgateRateLimit(
    req: IncomingMessage,
    res: ServerResponse,
    next?: (error?: unknown) => void,
  ): Promise<boolean> {
    if (watching) {
      watching = warnings.watch(incomingReader, req, "node", "key clients another way");
    }
    let result: ReturnType<Limit["check"]>;
    try {
      result = limit.check(req);
    } catch (error) {
      return failed(error, next);
    }
    if (result === null) {
      next?.();
      return GO_ON;
    }
    if (result instanceof Promise) {
      return result
        .then((outcome) => {
          if (outcome !== null) return answer(limit, outcome, req, res, next);
          next?.();
          return true;
        })
        .catch((error: unknown) => failed(error, next));
    }
    try {
      return answer(limit, result, req, res, next);
    } catch (error) {
      return failed(error, next);
    }
  }
  return Object.assign(floodgateRateLimit, {
    route: (overrides: RateLimitOptions<IncomingMessage, ServerResponse>) =>
      check(limit.route(overrides), warnings),
    limiter: limit.limiter,
  });
}

/**
 * rateLimit builds the check for a node:http or node:https handler from the
 * options every floodgate middleware takes, validated now (a ConfigError
 * names the bad option):
 * `if (!(await limit(req, res))) return;` at the top of the handler. It
 * sets `req.rateLimit`, writes the headers, and answers a denied request
 * itself. Errors of the user's functions reject the promise (or go to
 * Connect's `next`). Stacked checks each set their headers and the
 * strictest decision wins.
 */
export function rateLimit(options: NodeRateLimitOptions): NodeRateLimit {
  const limit = createRateLimit<IncomingMessage, ServerResponse>(options, incomingReader, EXTRA);
  return check(limit, new Warnings(options.warnings));
}

export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
export type { WarningCode, WarningsOption } from "../warnings.js";
