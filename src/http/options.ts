// The options every HTTP adapter takes, and their validation: everything is
// checked when the middleware is built, and a bad value throws ConfigError
// naming the option, the value and the fix, never a silent default.
import type { Decision } from "../core/decision.js";
import { ConfigError } from "../core/errors.js";
import { checkOptions } from "../core/options.js";
import { checkCost, type PolicyInput, policies as toPolicies } from "../core/policy.js";
import { isThenable } from "../core/thenable.js";
import type { RateLimiter } from "../limiter.js";
import type { Store } from "../stores/store.js";
import { type HeaderMode, type PolicySet, policySet } from "./headers.js";
import { type KeyFunction, keys } from "./keys.js";

/** Mode is `"enforce"` (deny with 429) or `"shadow"` (decide and report, never block). */
export type Mode = "enforce" | "shadow";

/** PolicyChoice is one policy or a list of them. */
export type PolicyChoice = PolicyInput | readonly PolicyInput[];

/**
 * PoliciesFunction picks a request's policies, e.g. by plan (tiers). Return
 * the same objects each time (constants): lists are validated once and
 * cached by identity.
 */
export type PoliciesFunction<Req> = (request: Req) => PolicyChoice | Promise<PolicyChoice>;

/** LimitedBody is a 429 body: a string is sent as text/plain, anything else as JSON. */
export type LimitedBody = string | object;

/**
 * RateLimitOptions are the options of every floodgate middleware. `Req` is
 * the framework's request, `Reply` what its `respond` gets to answer with.
 */
export interface RateLimitOptions<Req, Reply = never> {
  /** The limits: a list, or a function of the request (tiers). Required unless `policy` is given. */
  policies?: readonly PolicyInput[] | PoliciesFunction<Req> | undefined;
  /** One limit (shorthand for `policies: [policy]`), or a function of the request. */
  policy?: PolicyInput | PoliciesFunction<Req> | undefined;
  /** Where buckets live. Default: a new MemoryStore for this middleware. */
  store?: Store | undefined;
  /**
   * A RateLimiter to charge instead of building one: for its store-failure
   * handling (`onStoreError`), events, logger and metrics. Its policies are
   * the default of `policies`. Not together with `store`.
   */
  limiter?: RateLimiter | undefined;
  /** The client a request is counted against. Default `keys.ip()`: the socket's address. */
  key?: KeyFunction<Req> | undefined;
  /** Tokens a request spends: a whole number >= 1, or a function of the request. Default 1. */
  cost?: number | ((request: Req) => number | Promise<number>) | undefined;
  /** Requests for which this returns true are not counted and get no headers (health checks, allow lists). */
  skip?: ((request: Req) => boolean | Promise<boolean>) | undefined;
  /**
   * Count CORS preflights (`OPTIONS` requests with an
   * `Access-Control-Request-Method` header) like any request. Default
   * `false`: a browser sends one before many cross-origin requests, so they
   * pass uncounted and get no headers, as `skip` would do, and a client's
   * limit is not spent twice. Any other `OPTIONS` request is counted.
   */
  countPreflights?: boolean | undefined;
  /** `"shadow"` decides and reports (onLimited, the request's decision) but never blocks. Default `"enforce"`. */
  mode?: Mode | undefined;
  /**
   * Which rate-limit headers to send: `"legacy"` (X-RateLimit-*), `"ietf"`
   * (RateLimit-Policy and RateLimit), `"both"` or `false`. Default `"both"`,
   * and `false` in shadow mode, so trying a limit out does not change what
   * clients see. Retry-After is sent on every 429 regardless.
   */
  headers?: HeaderMode | undefined;
  /** Called with each request that is denied (in shadow mode: that would be), before the 429. */
  onLimited?: ((request: Req, decision: Decision) => void) | undefined;
  /** Status of the limited response: 400 to 599. Default 429. */
  statusCode?: number | undefined;
  /**
   * Status when the store is down and the limiter's `onStoreError: "deny"`
   * refused the request (`decision.reason` is `"fail-closed"`): 400 to 599.
   * Default `statusCode`; 503 tells clients the service, not they, is the problem.
   */
  failClosedStatusCode?: number | undefined;
  /**
   * Body of the limited response, or a function of the request and decision
   * returning it (or a promise of it). A string is sent as text/plain,
   * anything else as JSON; bytes are refused. Default `{"detail":"Too many requests. Try again later."}`.
   */
  body?:
    | LimitedBody
    | ((request: Req, decision: Decision) => LimitedBody | Promise<LimitedBody>)
    | undefined;
  /**
   * Sends the limited response yourself (instead of `statusCode` and `body`);
   * the rate-limit headers and Retry-After are already set when it runs.
   */
  respond?: ((request: Req, reply: Reply, decision: Decision) => unknown) | undefined;
  /**
   * Called once the response has been sent, with the request and its
   * status: when it returns (or resolves to) `true`, the request's cost is
   * given back to the buckets it was charged to (its tier's, its route's).
   * `(request, status) => status < 400` counts only failed requests (failed
   * logins). Only requests that were charged are asked: never a denied,
   * skipped or shadow-allowed-over-limit request, nor one the fallback
   * decided while the store failed. It runs after the response and never
   * delays it; a throw or rejection is reported as a process warning.
   */
  refund?: ((request: Req, status: number) => boolean | Promise<boolean>) | undefined;
}

/** LimitedResponse is the limited response, serialized: adapters send it as is. */
export interface LimitedResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** The default 429 body, as DESIGN.md gives it. */
export const DEFAULT_BODY = Object.freeze({ detail: "Too many requests. Try again later." });

const JSON_TYPE = "application/json; charset=utf-8";
const TEXT_TYPE = "text/plain; charset=utf-8";

const OPTIONS = [
  "policies",
  "policy",
  "store",
  "limiter",
  "key",
  "cost",
  "skip",
  "countPreflights",
  "mode",
  "headers",
  "onLimited",
  "statusCode",
  "failClosedStatusCode",
  "body",
  "respond",
  "refund",
] as const;

/** Settings are validated options, ready for the hot path. @internal */
export interface Settings<Req, Reply> {
  /** The static policies, or undefined when `policiesFn` picks them per request. */
  readonly set: PolicySet | undefined;
  readonly policiesFn: PoliciesFunction<Req> | undefined;
  /** The option name `policiesFn` came from, for messages. */
  readonly policiesOption: string;
  readonly store: Store | undefined;
  readonly limiter: RateLimiter | undefined;
  readonly key: KeyFunction<Req>;
  readonly cost: number;
  readonly costFn: ((request: Req) => number | Promise<number>) | undefined;
  readonly skip: ((request: Req) => boolean | Promise<boolean>) | undefined;
  readonly countPreflights: boolean;
  readonly shadow: boolean;
  readonly legacy: boolean;
  readonly ietf: boolean;
  readonly onLimited: ((request: Req, decision: Decision) => void) | undefined;
  readonly statusCode: number;
  readonly failClosedStatusCode: number;
  /** The limited response when it is the same for every request. */
  readonly response: LimitedResponse | undefined;
  /** The same for requests refused because the store is down, when its status differs. */
  readonly failClosedResponse: LimitedResponse | undefined;
  readonly bodyFn:
    | ((request: Req, decision: Decision) => LimitedBody | Promise<LimitedBody>)
    | undefined;
  readonly respond: ((request: Req, reply: Reply, decision: Decision) => unknown) | undefined;
  readonly refund: ((request: Req, status: number) => boolean | Promise<boolean>) | undefined;
}

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === "function";
}

function fn<T>(option: string, value: T | undefined, fix: string): T | undefined {
  if (value !== undefined && typeof value !== "function") {
    throw new ConfigError(option, value, "must be a function", fix);
  }
  return value;
}

/**
 * serializeBody turns a body into the response adapters send. It throws a
 * TypeError for a body JSON would garble or drop: bytes (a Buffer would go
 * out as `{"type":"Buffer","data":[...]}`), a promise (as `{}`), and
 * anything JSON writes as nothing (undefined, a function, a `toJSON`
 * returning undefined), which would be an empty body called JSON (and, on
 * Koa 2, a 204).
 */
export function serializeBody(status: number, body: LimitedBody): LimitedResponse {
  if (typeof body === "string") return { status, contentType: TEXT_TYPE, body };
  if (ArrayBuffer.isView(body) || body instanceof ArrayBuffer) {
    throw new TypeError("bytes (a Buffer or typed array) are not a 429 body: pass a string");
  }
  if (isThenable(body)) {
    throw new TypeError("a promise is not a 429 body: pass a function that returns one");
  }
  const text = JSON.stringify(body) as string | undefined;
  if (text === undefined) {
    throw new TypeError(`JSON writes nothing for ${describe(body)}: return a string or plain data`);
  }
  return { status, contentType: JSON_TYPE, body: text };
}

function describe(value: unknown): string {
  return value === undefined
    ? "undefined"
    : typeof value === "object"
      ? "this object"
      : typeof value;
}

/**
 * compileOptions validates `options` and returns Settings. `prefix` is put
 * before option names in messages (e.g. `config.rateLimit.` for a route);
 * `extra` lists the adapter's own option names, which are accepted here and
 * validated by the adapter. @internal
 */
export function compileOptions<Req, Reply>(
  options: RateLimitOptions<Req, Reply>,
  extra: readonly string[] = [],
  prefix = "",
): Settings<Req, Reply> {
  checkOptions(options, [...OPTIONS, ...extra], {
    name: "options",
    kind: "rate limit",
    prefix,
    example: "pass { policy: { capacity: 10, refillRate: 2, interval: 1000 } }",
  });
  const o = options;
  if (o.policies !== undefined && o.policy !== undefined) {
    throw new ConfigError(
      `${prefix}policy`,
      o.policy,
      "cannot be given together with policies",
      "pass either policy: {...} or policies: [...]",
    );
  }
  const limiter = o.limiter;
  // Duck-typed, not instanceof: the ESM and CommonJS builds each have a RateLimiter class.
  if (
    limiter !== undefined &&
    (typeof limiter !== "object" ||
      limiter === null ||
      typeof (limiter as Partial<RateLimiter>).check !== "function" ||
      !Array.isArray((limiter as Partial<RateLimiter>).policies))
  ) {
    throw new ConfigError(
      `${prefix}limiter`,
      limiter,
      "must be a RateLimiter",
      "pass limiter: new RateLimiter({ policies, store }), or leave it out",
    );
  }
  if (limiter !== undefined && o.store !== undefined) {
    throw new ConfigError(
      `${prefix}store`,
      o.store,
      "cannot be given together with limiter",
      "give the store to the RateLimiter: new RateLimiter({ policies, store })",
    );
  }
  const policiesOption = `${prefix}${o.policy !== undefined ? "policy" : "policies"}`;
  const source = o.policy !== undefined ? o.policy : o.policies;
  const policiesFn = isFunction(source) ? (source as PoliciesFunction<Req>) : undefined;
  let set: PolicySet | undefined;
  if (source === undefined && limiter !== undefined) set = policySet(limiter.policies);
  else if (policiesFn === undefined) {
    set = policySet(toPolicies(source as PolicyChoice | undefined, policiesOption));
  }

  const key = o.key === undefined ? keys.ip() : o.key;
  if (!isFunction(key)) {
    throw new ConfigError(
      `${prefix}key`,
      key,
      "must be a function of the request returning a string",
      'use keys.ip(), keys.header("x-api-key") or (request) => request.user.id',
    );
  }

  const costFn = isFunction(o.cost) ? o.cost : undefined;
  const cost = costFn === undefined && o.cost !== undefined ? (o.cost as number) : 1;
  if (costFn === undefined) {
    const problem =
      set === undefined
        ? Number.isInteger(cost) && (cost as number) >= 1
          ? undefined
          : "must be a whole number >= 1"
        : checkCost(cost, set.list);
    if (problem !== undefined) {
      throw new ConfigError(
        `${prefix}cost`,
        cost,
        problem.startsWith("must") ? `${problem} or a function` : problem,
        "give the tokens a request spends, e.g. cost: 1, or cost: (request) => 5",
      );
    }
  }

  const skip = fn(`${prefix}skip`, o.skip, "pass (request) => boolean, e.g. to skip health checks");
  const countPreflights = o.countPreflights ?? false;
  if (typeof countPreflights !== "boolean") {
    throw new ConfigError(
      `${prefix}countPreflights`,
      countPreflights,
      "must be true or false",
      "leave it out to let CORS preflights pass uncounted, or pass true to count them",
    );
  }
  const mode = o.mode === undefined ? "enforce" : o.mode;
  if (mode !== "enforce" && mode !== "shadow") {
    throw new ConfigError(
      `${prefix}mode`,
      mode,
      'must be "enforce" or "shadow"',
      'use mode: "shadow" to try a limit without blocking anyone',
    );
  }
  const headers = o.headers === undefined ? (mode === "shadow" ? false : "both") : o.headers;
  if (headers !== false && headers !== "legacy" && headers !== "ietf" && headers !== "both") {
    throw new ConfigError(
      `${prefix}headers`,
      headers,
      'must be "legacy", "ietf", "both" or false',
      'leave it out for both sets, or pass headers: "legacy" for X-RateLimit-* only',
    );
  }
  const onLimited = fn(
    `${prefix}onLimited`,
    o.onLimited,
    "pass (request, decision) => void, e.g. to log limited clients",
  );

  const statusCode = o.statusCode === undefined ? 429 : o.statusCode;
  if (!Number.isInteger(statusCode) || statusCode < 400 || statusCode > 599) {
    throw new ConfigError(
      `${prefix}statusCode`,
      statusCode,
      "must be an HTTP error status from 400 to 599",
      "leave it at 429 (Too Many Requests), or use 503",
    );
  }
  const failClosedStatusCode = o.failClosedStatusCode ?? statusCode;
  if (
    !Number.isInteger(failClosedStatusCode) ||
    failClosedStatusCode < 400 ||
    failClosedStatusCode > 599
  ) {
    throw new ConfigError(
      `${prefix}failClosedStatusCode`,
      failClosedStatusCode,
      "must be an HTTP error status from 400 to 599",
      "leave it out (the same as statusCode), or use 503",
    );
  }
  const body = o.body === undefined ? DEFAULT_BODY : o.body;
  const bodyFn = isFunction(body)
    ? (body as (request: Req, decision: Decision) => LimitedBody | Promise<LimitedBody>)
    : undefined;
  if (
    bodyFn === undefined &&
    (typeof body !== "object" || body === null) &&
    typeof body !== "string"
  ) {
    throw new ConfigError(
      `${prefix}body`,
      body,
      "must be a string, a JSON-serializable object or a function returning one",
      'e.g. body: { error: "slow down" }',
    );
  }
  let response: LimitedResponse | undefined;
  let failClosedResponse: LimitedResponse | undefined;
  if (bodyFn === undefined) {
    try {
      response = Object.freeze(serializeBody(statusCode, body as LimitedBody));
      failClosedResponse =
        failClosedStatusCode === statusCode
          ? response
          : Object.freeze(serializeBody(failClosedStatusCode, body as LimitedBody));
    } catch (error) {
      throw new ConfigError(
        `${prefix}body`,
        body,
        `must be serializable as JSON (${(error as Error).message})`,
        "pass plain data, a string, or a function of (request, decision) returning one",
      );
    }
  }
  const respond = fn(
    `${prefix}respond`,
    o.respond,
    "pass a function that sends the response, or use statusCode and body",
  );

  const refund = fn(
    `${prefix}refund`,
    o.refund,
    "pass (request, status) => boolean, e.g. refund: (request, status) => status < 400 to count only failed requests",
  );

  return {
    set,
    policiesFn,
    policiesOption,
    store: o.store,
    limiter,
    key,
    cost,
    costFn,
    skip,
    countPreflights,
    shadow: mode === "shadow",
    legacy: headers === "legacy" || headers === "both",
    ietf: headers === "ietf" || headers === "both",
    onLimited,
    statusCode,
    failClosedStatusCode,
    response,
    failClosedResponse,
    bodyFn,
    respond,
    refund,
  };
}
