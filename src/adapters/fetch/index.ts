// floodgate/fetch: the HTTP layer around any Fetch handler
// `(request, ...rest) => Response` (Next.js route handlers, Bun.serve,
// Deno.serve, Cloudflare Workers, Hono's app.fetch). A Fetch Request carries
// no client address, so the client key comes from `options.key`, or from the
// address the runtime hands over, through `options.address`.
import type { Decision } from "../../core/decision.js";
import { ConfigError } from "../../core/errors.js";
import {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitOutcome,
  type RequestReader,
} from "../../http/index.js";
import { withHeaders } from "../response.js";
import { type Holder, record, stacked, stricter } from "../stack.js";

/**
 * FetchHandler is a Fetch handler: a Request (and whatever the runtime passes
 * after it) in, a Response out. `Req` is the handler's request type, a
 * subclass such as Next.js's NextRequest included.
 */
export type FetchHandler<Rest extends unknown[] = unknown[], Req extends Request = Request> = (
  request: Req,
  ...rest: Rest
) => Response | Promise<Response>;

/**
 * FetchRateLimitOptions are floodgate's HTTP options, where `key` is
 * required unless `address` is given. `respond` gets the request, the
 * arguments after it (`rest`) and the decision, and returns the Response.
 */
export interface FetchRateLimitOptions<
  Rest extends unknown[] = unknown[],
  Req extends Request = Request,
> extends RateLimitOptions<Req, Rest> {
  /**
   * address returns the client's IP from what the runtime passes the
   * handler, for the default key (keys.ip, with its trustProxy). E.g. Deno:
   * `(req, info) => info.remoteAddr.hostname`; Bun:
   * `(req, server) => server.requestIP(req)?.address`.
   */
  address?: ((request: Req, ...rest: Rest) => string | undefined) | undefined;
}

type Limit = RateLimit<Request, unknown[]>;

const EXTRA = ["address"];
const decisions = new WeakMap<Request, Decision>();
/** Limits built from an options object, so handlers wrapped with the same object share buckets. */
const built = new WeakMap<object, { limit: Limit; addresses: WeakMap<Request, string> }>();

/**
 * rateLimitOf returns the decision floodgate made for `request` (the
 * strictest one when limiters are stacked), for code that runs inside a
 * wrapped handler; undefined when none decided it.
 */
export function rateLimitOf(request: Request): Decision | undefined {
  return decisions.get(request);
}

function build(options: FetchRateLimitOptions<unknown[]>) {
  const known = typeof options === "object" && options !== null ? built.get(options) : undefined;
  if (known !== undefined) return known;
  const o = options as { key?: unknown; address?: unknown } | null;
  if (typeof o === "object" && o !== null) {
    if (o.address !== undefined && typeof o.address !== "function") {
      throw new ConfigError(
        "address",
        o.address,
        "must be a function of the request (and the runtime's arguments) returning the client's IP",
        "e.g. Deno: address: (req, info) => info.remoteAddr.hostname",
      );
    }
    if (o.key === undefined && o.address === undefined) {
      throw new ConfigError(
        "key",
        undefined,
        "is required by floodgate/fetch: a Fetch Request carries no client address, so floodgate cannot key clients by IP on its own",
        'pass key: keys.header("x-api-key") or key: (request) => your user id; to key by IP, pass address: (request, ...rest) => the client IP your runtime gives (Deno: info.remoteAddr.hostname, Bun: server.requestIP(request)?.address)',
      );
    }
  }
  const addresses = new WeakMap<Request, string>();
  const reader: RequestReader<Request> = {
    address: (request) => addresses.get(request),
    header: (request, name) => request.headers.get(name) ?? undefined,
    method: (request) => request.method,
  };
  const entry = { limit: createRateLimit<Request, unknown[]>(options, reader, EXTRA), addresses };
  built.set(options, entry);
  return entry;
}

async function answer(
  limit: Limit,
  outcome: RateLimitOutcome,
  handler: FetchHandler,
  request: Request,
  rest: unknown[],
): Promise<Response> {
  const holder = request as Holder;
  const earlier = decisions.get(request);
  decisions.set(
    request,
    earlier === undefined ? outcome.decision : stricter(earlier, outcome.decision),
  );
  const limited = outcome.limited;
  record(holder, outcome);
  if (!limited) {
    const response = await handler(request, ...rest);
    outcome.sent?.(response.status);
    // The last limiter to run has merged every stacked limiter's headers.
    return withHeaders(response, stacked(holder) ?? outcome.headers);
  }
  const headers = stacked(holder) as readonly string[];
  const r = outcome.response;
  if (r !== undefined) {
    return withHeaders(
      new Response(r.body, { status: r.status, headers: { "Content-Type": r.contentType } }),
      headers,
    );
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  const reply = await respond(request, rest, outcome.decision);
  if (!(reply instanceof Response)) {
    throw new Error("floodgate: the respond option must return a Response");
  }
  return withHeaders(reply, headers);
}

/**
 * withRateLimit wraps a Fetch handler: a denied request gets 429 with
 * Retry-After and the JSON body without reaching `handler`; an allowed one
 * reaches it and its Response gets the rate-limit headers. `options` are the
 * options every floodgate middleware takes and are validated now (a
 * ConfigError names the bad one); `key` is required unless `address` is
 * given. Handlers wrapped with the same options object share one limit (and
 * its buckets); `overrides` gives one handler options of its own over that
 * limit, as a route override does. Errors of the user's functions reject.
 * The options' functions get the handler's own request type (`Req`, e.g.
 * Next.js's NextRequest) and the arguments after it (`Rest`).
 */
export function withRateLimit<Rest extends unknown[] = unknown[], Req extends Request = Request>(
  handler: FetchHandler<Rest, Req>,
  options: FetchRateLimitOptions<Rest, Req>,
  overrides?: RateLimitOptions<Req, Rest>,
): (request: Req, ...rest: Rest) => Promise<Response> {
  if (typeof handler !== "function") {
    throw new ConfigError(
      "handler",
      handler,
      "must be a Fetch handler: (request) => Response",
      "call withRateLimit(async (request) => new Response('ok'), options)",
    );
  }
  const base = build(options as FetchRateLimitOptions<unknown[]>);
  const limit =
    overrides === undefined
      ? base.limit
      : base.limit.route(overrides as RateLimitOptions<Request, unknown[]>, "overrides.");
  const address = (options as FetchRateLimitOptions<unknown[]>).address;
  const addresses = base.addresses;
  const inner = handler as FetchHandler;
  return function floodgateFetch(request: Req, ...rest: Rest): Promise<Response> {
    let result: ReturnType<Limit["check"]>;
    try {
      if (address !== undefined) {
        const ip = address(request, ...rest);
        if (ip !== undefined) addresses.set(request, ip);
      }
      result = limit.check(request);
      if (result === null) return Promise.resolve(inner(request, ...rest));
    } catch (error) {
      // A Fetch handler answers with a promise: errors reject it, never throw.
      return Promise.reject(error);
    }
    if (result instanceof Promise) {
      return result.then((outcome) =>
        outcome === null ? inner(request, ...rest) : answer(limit, outcome, inner, request, rest),
      );
    }
    return answer(limit, result, inner, request, rest);
  };
}

export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
