// floodgate/hono: the HTTP layer as Hono 4 middleware, on Node (through
// @hono/node-server) and on any Fetch runtime. It only translates: the
// client's address from the runtime (or Hono's getConnInfo), headers on
// @hono/node-server's ServerResponse (elsewhere through `c.header`), a denied
// request answered with `c.body`. Only types come from hono, so importing
// this module never loads it.
import type { IncomingMessage } from "node:http";
import type { Context, Env, MiddlewareHandler, Next } from "hono";
import type { Decision } from "../../core/decision.js";
import { ConfigError } from "../../core/errors.js";
import {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitOutcome,
  type RequestReader,
} from "../../http/index.js";
import type { RateLimiter } from "../../limiter.js";
import { proxyLinesDropped } from "../incoming.js";
import { withHeaders } from "../response.js";
import { merge, STACKED, type Stacked, stricter } from "../stack.js";
import { Warnings, type WarningsOption } from "../warnings.js";

declare module "hono" {
  interface ContextVariableMap {
    /**
     * rateLimit is floodgate's decision for this request (the strictest one
     * when limiters are stacked); undefined when no limiter decided it.
     */
    rateLimit: Decision | undefined;
  }
}

/** ConnInfoGetter is Hono's `getConnInfo` of your runtime (`hono/bun`, `hono/deno`, `@hono/node-server/conninfo`, ...). */
export type ConnInfoGetter = (c: Context) => { remote: { address?: string | undefined } };

/**
 * HonoRateLimitOptions are floodgate's HTTP options plus `getConnInfo` and
 * `warnings`. Without `getConnInfo` the client's address is read where the
 * runtime puts it: @hono/node-server, Bun and Deno; elsewhere (Cloudflare
 * Workers, Lambda) pass your runtime's `getConnInfo` or key by something else.
 * `E` is the app's Env (`new Hono<E>()`): pass it as `rateLimit<E>(...)` to
 * type `c.get`, `c.var` and `c.env` in the options' functions.
 */
// biome-ignore lint/suspicious/noExplicitAny: Hono's own default Env (its Context, MiddlewareHandler and createMiddleware default to any)
export interface HonoRateLimitOptions<E extends Env = any>
  extends RateLimitOptions<Context<E>, Context<E>> {
  /** Hono's getConnInfo for your runtime: where the default key (keys.ip) reads the client's address. */
  getConnInfo?: ConnInfoGetter | undefined;
  /** Start-up warnings about client identity: false turns them off, or some by code. */
  warnings?: WarningsOption | undefined;
}

/**
 * HonoRateLimit is the middleware `rateLimit` returns, with `route` for a
 * route of its own and `limiter` for `reset` and `peek`.
 */
// biome-ignore lint/suspicious/noExplicitAny: Hono's own default Env
export interface HonoRateLimit<E extends Env = any> extends MiddlewareHandler<E> {
  /**
   * route builds the middleware of one route: `overrides` replace these
   * options and the rest, including the limiter (so the buckets), is shared.
   * Mount it instead of, not after, this middleware on that route.
   */
  route(overrides: RateLimitOptions<Context<E>, Context<E>>): HonoRateLimit<E>;
  /**
   * limiter is the RateLimiter this middleware charges. Its `reset(key)`
   * forgets the key's buckets under every policy this middleware and its
   * routes charge through it: its own, each tier, each route's.
   */
  readonly limiter: RateLimiter;
}

type Limit = RateLimit<Context, Context>;
type Result = ReturnType<MiddlewareHandler> | Response;

/** What the runtimes put in `c.env`: @hono/node-server's incoming request, Bun's server, Deno's connection info. */
interface RuntimeEnv {
  server?: RuntimeEnv;
  incoming?: { socket?: { remoteAddress?: string | undefined } };
  requestIP?: (request: Request) => { address: string } | null;
  remoteAddr?: { hostname?: string };
  outgoing?: { setHeader?: unknown };
}

/** Outgoing is the part of @hono/node-server's ServerResponse (`c.env.outgoing`) floodgate writes to. */
interface Outgoing {
  setHeader(name: string, value: string): unknown;
}

/** Vars is Hono's context variables as floodgate reads and writes them. */
type Vars = {
  get(key: typeof STACKED): Stacked | undefined;
  set(key: typeof STACKED, value: Stacked): void;
};

/**
 * outgoingOf returns @hono/node-server's ServerResponse when this request
 * runs on it. Headers set there reach the client through Node's writeHead,
 * which merges them under the Response's own, so `c.header` is left alone:
 * Hono then builds no Headers object, the handler's `c.json` stays a plain
 * header record, and @hono/node-server writes it on its fast path.
 */
function outgoingOf(c: Context): Outgoing | undefined {
  const env = c.env as RuntimeEnv | undefined;
  const outgoing = typeof env === "object" && env !== null ? env.outgoing : undefined;
  return outgoing !== undefined && typeof outgoing.setHeader === "function"
    ? (outgoing as Outgoing)
    : undefined;
}

const EXTRA = ["getConnInfo", "warnings"];
const NO_ADDRESS_FIX =
  "pass your runtime's getConnInfo (rateLimit({ getConnInfo, ... }) with getConnInfo from hono/cloudflare-workers, hono/aws-lambda, ...), or key clients another way";

function runtimeAddress(c: Context): string | undefined {
  const env = c.env as RuntimeEnv | undefined;
  if (typeof env !== "object" || env === null) return undefined;
  const bindings = env.server ?? env;
  const incoming = bindings.incoming;
  if (incoming !== undefined) return incoming.socket?.remoteAddress;
  if (typeof bindings.requestIP === "function") {
    return bindings.requestIP(c.req.raw)?.address ?? undefined;
  }
  return bindings.remoteAddr?.hostname;
}

function readerFor(getConnInfo: ConnInfoGetter | undefined): RequestReader<Context> {
  return {
    address: getConnInfo === undefined ? runtimeAddress : (c) => getConnInfo(c).remote.address,
    // On @hono/node-server, a proxy header Node may have cut short reads as absent (see proxyLinesDropped).
    header: (c, name) =>
      proxyLinesDropped(
        name,
        (c.env as RuntimeEnv | undefined)?.incoming as IncomingMessage | undefined,
      )
        ? undefined
        : (c.req.raw.headers.get(name) ?? undefined),
    method: (c) => c.req.method,
  };
}

function answer(limit: Limit, outcome: RateLimitOutcome, c: Context, next: Next): Result {
  // Stacked limiters keep their headers among the context's variables,
  // under a registered symbol: no object of Hono's changes shape.
  const vars = c as unknown as Vars;
  const stack = vars.get(STACKED);
  const decision = outcome.decision;
  const earlier = stack === undefined ? undefined : c.get("rateLimit");
  c.set("rateLimit", earlier === undefined ? decision : stricter(earlier, decision));
  const limited = outcome.limited;
  const merged = merge(stack, outcome);
  vars.set(STACKED, merged);
  const headers = merged.headers;
  const outgoing = outgoingOf(c);
  if (outgoing !== undefined) {
    for (let i = 0; i < headers.length; i += 2) {
      outgoing.setHeader(headers[i] as string, headers[i + 1] as string);
    }
    if (!limited) return outcome.sent === undefined ? next() : after(c, next, outcome.sent);
  } else {
    for (let i = 0; i < headers.length; i += 2) {
      c.header(headers[i] as string, headers[i + 1] as string);
    }
    if (!limited) {
      const sent = outcome.sent;
      return next().then(() => {
        keep(c, headers);
        sent?.(c.res.status);
      });
    }
  }
  const response = outcome.response;
  if (response !== undefined) {
    // One header, as a plain record: Hono passes it on as is when no other
    // middleware has set a header, and @hono/node-server writes it directly.
    return c.body(response.body, response.status as 429, { "Content-Type": response.contentType });
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  return Promise.resolve(respond(c, c, decision)).then((reply) => {
    if (reply instanceof Response) return reply;
    if (c.finalized) return undefined;
    throw new Error("floodgate: the respond option returned no Response");
  });
}

/** after runs the handler, then tells the `refund` option the status of the Response it gave. */
function after(c: Context, next: Next, sent: (status: number) => void): Promise<void> {
  return next().then(() => sent(c.res.status));
}

/**
 * keep puts the headers back on a Response the handler built itself
 * (`new Response(...)`, or a fetched one), which Hono does not merge
 * `c.header` into. Responses built with c.json, c.text, ... already have them.
 * A proxied upstream's Response may carry its own X-RateLimit-* or RateLimit
 * fields: this limiter's replace them, as floodgate/fetch does, so the client
 * never reads another service's numbers (or a RateLimit naming a policy the
 * RateLimit-Policy beside it does not list).
 */
function keep(c: Context, headers: readonly string[]): undefined {
  if (headers.length === 0 || !c.finalized) return undefined;
  const res = c.res;
  const have = res.headers;
  for (let i = 0; i < headers.length; i += 2) {
    if (have.get(headers[i] as string) !== headers[i + 1]) {
      const target = withHeaders(res, headers);
      if (target !== res) c.res = target;
      return undefined;
    }
  }
  return undefined;
}

function middleware(
  limit: Limit,
  warnings: Warnings,
  reader: RequestReader<Context>,
): HonoRateLimit {
  // A custom key is not the socket's: nothing of this middleware's to watch.
  let watching = limit.options.key === undefined;
  function floodgateRateLimit(c: Context, next: Next): Result {
    if (watching) watching = warnings.watch(reader, c, "hono", NO_ADDRESS_FIX);
    const result = limit.check(c);
    if (result === null) return next();
    if (result instanceof Promise) {
      return result.then((outcome) =>
        outcome === null ? next() : answer(limit, outcome, c, next),
      );
    }
    return answer(limit, result, c, next);
  }
  return Object.assign(floodgateRateLimit as MiddlewareHandler, {
    route: (overrides: RateLimitOptions<Context, Context>) =>
      middleware(limit.route(overrides), warnings, reader),
    limiter: limit.limiter,
  });
}

/**
 * rateLimit builds Hono middleware from the options every floodgate
 * middleware takes (plus `getConnInfo`), validated now (a ConfigError names
 * the bad option). Each request it decides gets `c.get("rateLimit")`; a
 * denied one is answered with 429, Retry-After and the JSON body, and the
 * handler does not run. Errors of the user's functions go to Hono's
 * `onError`. Stacked limiters each set their headers and the strictest
 * decision wins. With an app's own Env, `rateLimit<Env>({ ... })` types the
 * context its functions get, as Hono's `createMiddleware<Env>` does.
 */
// biome-ignore lint/suspicious/noExplicitAny: Hono's own default Env
export function rateLimit<E extends Env = any>(options: HonoRateLimitOptions<E>): HonoRateLimit<E> {
  const getConnInfo = (options as { getConnInfo?: unknown } | null)?.getConnInfo;
  if (getConnInfo !== undefined && typeof getConnInfo !== "function") {
    throw new ConfigError(
      "getConnInfo",
      getConnInfo,
      "must be Hono's getConnInfo function for your runtime",
      'import { getConnInfo } from "hono/bun" (or hono/deno, hono/cloudflare-workers, @hono/node-server/conninfo)',
    );
  }
  const reader = readerFor(getConnInfo as ConnInfoGetter | undefined);
  const limit = createRateLimit<Context, Context>(options as HonoRateLimitOptions, reader, EXTRA);
  return middleware(limit, new Warnings(options.warnings), reader) as HonoRateLimit<E>;
}

export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
export type { WarningCode, WarningsOption } from "../warnings.js";
