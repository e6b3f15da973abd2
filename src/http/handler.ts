// The framework-neutral core of every HTTP adapter: one `check(request)` that
// runs skip, key, policies and cost, charges the limiter, and returns the
// decision with the headers and the limited response already built. It stays
// synchronous whenever the store and the user's functions are, so an adapter
// on the memory store allocates no promise per request.
import type { Decision } from "../core/decision.js";
import { ConfigError } from "../core/errors.js";
import { type Policy, type PolicyInput, policies as toPolicies } from "../core/policy.js";
import { isThenable } from "../core/thenable.js";
import { RateLimiter } from "../limiter.js";
import type { Store } from "../stores/store.js";
import { headerList, type PolicySet, policySet } from "./headers.js";
import type { RequestReader } from "./keys.js";
import {
  compileOptions,
  type LimitedBody,
  type LimitedResponse,
  type PolicyChoice,
  type RateLimitOptions,
  type Settings,
  serializeBody,
} from "./options.js";

/**
 * RateLimitOutcome is what an adapter does with one request: set `headers`
 * (`[name, value, name, value, ...]`), expose `decision` to the handler, and
 * when `limited` answer with `response` (or call the user's `respond` when
 * `response` is undefined) instead of running the handler.
 */
export interface RateLimitOutcome {
  readonly decision: Decision;
  /** True when the request must be answered with the limited response; never in shadow mode. */
  readonly limited: boolean;
  readonly headers: readonly string[];
  /** The limited response to send when `limited` and no `respond` option is set. */
  readonly response: LimitedResponse | undefined;
  /** The policy list `decision` was made under: with `legacy` and `ietf`, what stacked limiters merge `headers` from. */
  readonly set: PolicySet;
  /** This middleware sends the legacy X-RateLimit-* headers. */
  readonly legacy: boolean;
  /** This middleware sends the IETF RateLimit-Policy and RateLimit headers. */
  readonly ietf: boolean;
  /**
   * With the `refund` option, for a request that was charged: the adapter
   * calls it with the status once the response has been sent (later calls
   * do nothing). Undefined otherwise, so the adapter listens for nothing.
   */
  readonly sent: ((status: number) => void) | undefined;
}

/** CheckResult is `check`'s answer: null when the request was skipped. */
export type CheckResult = RateLimitOutcome | null | Promise<RateLimitOutcome | null>;

const NO_HEADERS: readonly string[] = Object.freeze([]);
const SIGNATURES = 256;
/** The most distinct policy names one store is used with through the HTTP layer. */
const MAX_NAMES = 1024;

/** Policy names already used with each store, to catch two different policies sharing buckets. */
const storeNames = new WeakMap<Store, Map<string, Policy>>();

/**
 * PolicyBook holds the compiled policy lists of one `policies` option:
 * the static set, or those a policies function returned, cached by identity
 * and, for fresh literals, by content, so validation is paid once per list.
 */
interface PolicyBook {
  readonly set: PolicySet | undefined;
  readonly byObject: WeakMap<object, PolicySet>;
  readonly bySignature: Map<string, PolicySet>;
}

function signature(choice: unknown): string | undefined {
  const list = Array.isArray(choice) ? choice : [choice];
  let text = "";
  for (const p of list) {
    if (typeof p !== "object" || p === null) return undefined;
    const { name, capacity, refillRate, interval } = p as Record<string, unknown>;
    text += `${String(name)}\u0000${String(capacity)}\u0000${String(refillRate)}\u0000${String(interval)}\u0001`;
  }
  return text;
}

/**
 * RateLimit is a built, validated middleware configuration: adapters call
 * `check` per request and `route` once per route that overrides options.
 * Build it with `createRateLimit`.
 */
export class RateLimit<Req, Reply = never> {
  /** The limiter (and so the store) this middleware charges. Route overrides share it unless they set `store` or `limiter`. */
  readonly limiter: RateLimiter;
  /** The options as given (merged for a route), for the adapter's own options. */
  readonly options: Readonly<RateLimitOptions<Req, Reply>>;
  /** The user's `respond` option: when set, the adapter calls it to answer a limited request. */
  readonly respond: ((request: Req, reply: Reply, decision: Decision) => unknown) | undefined;
  readonly #s: Settings<Req, Reply>;
  readonly #reader: RequestReader<Req>;
  readonly #extra: readonly string[];
  readonly #book: PolicyBook;
  readonly #reported = { done: false };
  readonly #reportedLimited = { done: false };

  /** @internal Use createRateLimit or route. */
  constructor(
    options: RateLimitOptions<Req, Reply>,
    reader: RequestReader<Req>,
    extra: readonly string[],
    prefix: string,
    base?: RateLimit<Req, Reply>,
  ) {
    const s = compileOptions(options, extra, prefix);
    const inherit =
      base !== undefined &&
      options.policies === base.options.policies &&
      options.policy === base.options.policy;
    const shareStore =
      base !== undefined &&
      options.store === base.options.store &&
      options.limiter === base.options.limiter;
    this.#s = s;
    this.#reader = reader;
    this.#extra = extra;
    this.options = Object.freeze({ ...options });
    this.respond = s.respond;
    // A route that charges the same limiter with the same policies shares its
    // compiled lists; any other gets its own, so each list is registered with
    // (and adopted by, for reset) the limiter that charges it.
    const shared = inherit && shareStore && base !== undefined;
    this.#book = shared
      ? base.#book
      : { set: s.set, byObject: new WeakMap(), bySignature: new Map() };
    if (shareStore && base !== undefined) {
      this.limiter = base.limiter;
    } else if (s.limiter !== undefined) {
      this.limiter = s.limiter;
    } else {
      const source = options.policy ?? options.policies;
      const policies =
        typeof source === "function" || source === undefined
          ? { policy: { capacity: 1, refillRate: 1, interval: 1000 } }
          : options.policy !== undefined
            ? { policy: source as PolicyInput }
            : { policies: source as readonly PolicyInput[] };
      this.limiter = new RateLimiter(
        s.store === undefined ? policies : { ...policies, store: s.store },
      );
    }
    if (this.#book.set !== undefined && !shared) this.#register(this.#book.set, s.policiesOption);
  }

  /**
   * check decides one request. It returns null for a CORS preflight (unless
   * `countPreflights`) and when `skip` said so, else the
   * outcome; synchronously when the store and the user's functions are
   * synchronous, else as a promise. Errors of the user's functions, a
   * CostError for a bad cost and a ConfigError for bad policies from a
   * policies function are thrown (or rejected) for the framework's error path.
   */
  check(request: Req): CheckResult {
    if (!this.#s.countPreflights && this.#preflight(request)) return null;
    const skip = this.#s.skip;
    if (skip !== undefined) {
      const skipped = skip(request);
      if (isThenable<boolean>(skipped)) {
        return Promise.resolve(skipped).then((yes) => (yes ? null : this.#keyed(request)));
      }
      if (skipped) return null;
    }
    return this.#keyed(request);
  }

  /**
   * route builds the middleware of one route: `overrides` replace this one's
   * options (a new `policy` or `policies` replaces both), everything else is
   * inherited, including the limiter unless `store` is overridden. Buckets
   * are per policy name and client, so a route's own policy needs a name of
   * its own. `prefix` names the options in messages, e.g. `config.rateLimit.`.
   */
  route(overrides: RateLimitOptions<Req, Reply>, prefix = ""): RateLimit<Req, Reply> {
    if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
      throw new ConfigError(
        prefix === "" ? "overrides" : prefix.slice(0, -1),
        overrides,
        "must be an object of rate limit options, or false to turn limiting off",
        "pass e.g. { policy: { name: 'login', capacity: 5, refillRate: 1, interval: 60000 } }",
      );
    }
    const merged: Record<string, unknown> = { ...this.options };
    if (overrides.policies !== undefined || overrides.policy !== undefined) {
      delete merged.policies;
      delete merged.policy;
    }
    for (const [name, value] of Object.entries(overrides)) {
      if (value !== undefined) merged[name] = value;
    }
    return new RateLimit(
      merged as RateLimitOptions<Req, Reply>,
      this.#reader,
      this.#extra,
      prefix,
      this,
    );
  }

  /** preflight tells a CORS preflight: OPTIONS with Access-Control-Request-Method (Fetch standard). */
  #preflight(request: Req): boolean {
    const reader = this.#reader;
    return (
      reader.method?.(request) === "OPTIONS" &&
      reader.header(request, "access-control-request-method") !== undefined
    );
  }

  #keyed(request: Req): RateLimitOutcome | Promise<RateLimitOutcome> {
    const key = this.#s.key(request, this.#reader);
    if (typeof key !== "string" && isThenable<string>(key)) {
      return Promise.resolve(key).then((k) => this.#pick(request, k));
    }
    return this.#pick(request, key);
  }

  #pick(request: Req, key: string): RateLimitOutcome | Promise<RateLimitOutcome> {
    const set = this.#book.set;
    if (set !== undefined) return this.#cost(request, key, set);
    const chosen = (this.#s.policiesFn as NonNullable<Settings<Req, Reply>["policiesFn"]>)(request);
    if (isThenable<PolicyChoice>(chosen)) {
      return Promise.resolve(chosen).then((c) => this.#cost(request, key, this.#compile(c)));
    }
    return this.#cost(request, key, this.#compile(chosen));
  }

  #cost(request: Req, key: string, set: PolicySet): RateLimitOutcome | Promise<RateLimitOutcome> {
    const costFn = this.#s.costFn;
    if (costFn === undefined) return this.#charge(request, key, set, this.#s.cost);
    const cost = costFn(request);
    if (typeof cost !== "number" && isThenable<number>(cost)) {
      return Promise.resolve(cost).then((c) => this.#charge(request, key, set, c));
    }
    return this.#charge(request, key, set, cost);
  }

  #charge(
    request: Req,
    key: string,
    set: PolicySet,
    cost: number,
  ): RateLimitOutcome | Promise<RateLimitOutcome> {
    const decision = this.limiter.check(key, cost, true, set.list, this.#s.shadow);
    if (decision instanceof Promise) {
      return decision.then((d) => this.#outcome(request, key, cost, set, d));
    }
    return this.#outcome(request, key, cost, set, decision);
  }

  #outcome(
    request: Req,
    key: string,
    cost: number,
    set: PolicySet,
    decision: Decision,
  ): RateLimitOutcome | Promise<RateLimitOutcome> {
    const s = this.#s;
    let limited = false;
    if (!decision.allowed) {
      if (s.onLimited !== undefined) this.#notify(s.onLimited, request, decision);
      limited = !s.shadow;
    }
    if (limited && s.respond === undefined) {
      const failClosed = decision.reason === "fail-closed";
      const response = failClosed ? s.failClosedResponse : s.response;
      if (response !== undefined) return this.#made(request, key, cost, set, decision, response);
      const status = failClosed ? s.failClosedStatusCode : s.statusCode;
      const body = (s.bodyFn as NonNullable<Settings<Req, Reply>["bodyFn"]>)(request, decision);
      // An async body function: the outcome waits for its body (a rejection takes the error path).
      if (isThenable<LimitedBody>(body)) {
        return Promise.resolve(body).then((b) =>
          this.#made(request, key, cost, set, decision, serializeBody(status, b)),
        );
      }
      return this.#made(request, key, cost, set, decision, serializeBody(status, body));
    }
    return this.#made(request, key, cost, set, decision, undefined);
  }

  #made(
    request: Req,
    key: string,
    cost: number,
    set: PolicySet,
    decision: Decision,
    response: LimitedResponse | undefined,
  ): RateLimitOutcome {
    const s = this.#s;
    const limited = !decision.allowed && !s.shadow;
    return {
      decision,
      limited,
      headers:
        s.legacy || s.ietf || limited
          ? headerList(set, decision, s.legacy, s.ietf, limited)
          : NO_HEADERS,
      response,
      set,
      legacy: s.legacy,
      ietf: s.ietf,
      sent: s.refund === undefined ? undefined : this.#sent(request, key, cost, set, decision),
    };
  }

  /**
   * notify calls the `onLimited` option. It observes, so what it does never
   * changes the answer: a throw, or a rejection of the promise an async
   * `onLimited` returns, is reported (the first time) as a process warning,
   * and the request is answered as if it had returned. Unhandled, such a
   * rejection would end the process, and a throw would turn the 429 (in
   * shadow mode, the request let through) into a 500.
   */
  #notify(
    onLimited: (request: Req, decision: Decision) => unknown,
    request: Req,
    decision: Decision,
  ): void {
    const report = (error: unknown) => reportHook(this.#reportedLimited, "onLimited", error);
    let result: unknown;
    try {
      result = onLimited(request, decision);
    } catch (error) {
      report(error);
      return;
    }
    if (isThenable(result)) Promise.resolve(result).then(undefined, report);
  }

  /**
   * sent builds the callback an adapter calls once the response is out: it
   * asks the `refund` option and gives `cost` back under the policies the
   * request was charged. Only a request the store charged is refunded: a
   * denied one spent nothing (shadow mode included), and one the fallback
   * decided was charged elsewhere or not at all.
   */
  #sent(
    request: Req,
    key: string,
    cost: number,
    set: PolicySet,
    decision: Decision,
  ): ((status: number) => void) | undefined {
    const reason = decision.reason;
    if (!decision.allowed || (reason !== "store" && reason !== "cached")) return undefined;
    const refund = this.#s.refund as NonNullable<Settings<Req, Reply>["refund"]>;
    const limiter = this.limiter;
    const report = (error: unknown) => reportHook(this.#reported, "refund", error);
    const give = (yes: unknown) => {
      if (yes === true) limiter.refund(key, { cost }, set.list).catch(report);
    };
    let called = false;
    return (status) => {
      if (called) return;
      called = true;
      let answer: boolean | Promise<boolean>;
      try {
        answer = refund(request, status);
      } catch (error) {
        report(error);
        return;
      }
      if (isThenable<boolean>(answer)) Promise.resolve(answer).then(give, report);
      else give(answer);
    };
  }

  /** compile validates a list a policies function returned, once per list. */
  #compile(choice: PolicyChoice): PolicySet {
    const book = this.#book;
    const known =
      typeof choice === "object" && choice !== null ? book.byObject.get(choice) : undefined;
    if (known !== undefined) return known;
    const text = signature(choice);
    let set = text === undefined ? undefined : book.bySignature.get(text);
    if (set === undefined) {
      const option = `${this.#s.policiesOption}(request)`;
      set = policySet(toPolicies(choice as PolicyInput | readonly PolicyInput[], option));
      this.#register(set, option);
      if (text !== undefined) {
        if (book.bySignature.size >= SIGNATURES) book.bySignature.clear();
        book.bySignature.set(text, set);
      }
    }
    // Only objects get this far: anything else is no policy and was refused above.
    book.byObject.set(choice, set);
    return set;
  }

  /**
   * register refuses a policy whose name another policy with different
   * numbers already uses in the same store (they would share buckets), and
   * more than MAX_NAMES names in one store (names are a fixed set, such as
   * tiers, never one per client). Then the limiter adopts the list, so its
   * `reset(key)` forgets the key's buckets under these policies too.
   */
  #register(set: PolicySet, option: string): void {
    const store = this.limiter.store;
    let names = storeNames.get(store);
    if (names === undefined) {
      names = new Map();
      storeNames.set(store, names);
    }
    for (const p of set.list) {
      const seen = names.get(p.name);
      if (seen === undefined) {
        if (names.size >= MAX_NAMES) {
          throw new ConfigError(
            option,
            p.name,
            `is policy name number ${MAX_NAMES + 1} used with this store: buckets, and reset, are kept per policy name, so names must be a small fixed set`,
            "name policies by tier or route (constants), never by client: key clients with the key option",
          );
        }
        names.set(p.name, p);
      } else if (
        seen.capacity !== p.capacity ||
        seen.refillRate !== p.refillRate ||
        seen.interval !== p.interval
      ) {
        throw new ConfigError(
          option,
          p.name,
          `names a policy (capacity ${p.capacity}, refillRate ${p.refillRate}, interval ${p.interval}) different from the "${p.name}" policy already used with this store (capacity ${seen.capacity}, refillRate ${seen.refillRate}, interval ${seen.interval})`,
          "give each distinct policy its own name: buckets are kept per policy name and client",
        );
      }
    }
    this.limiter.adopt(set.list);
  }
}

/** What each observing option's error means for the request, for its warning. */
const HOOKS = {
  refund: { code: "FLOODGATE_REFUND_ERROR", effect: "the request's cost stays spent" },
  onLimited: {
    code: "FLOODGATE_ON_LIMITED_ERROR",
    effect: "the request was answered as if it had returned",
  },
} as const;

/**
 * reportHook reports that an observing option (`refund`, `onLimited`) threw
 * or rejected, the first time for each middleware: nothing else can see it,
 * and it must not change (or, unhandled, crash) the request's answer.
 */
function reportHook(reported: { done: boolean }, option: keyof typeof HOOKS, error: unknown): void {
  if (reported.done) return;
  reported.done = true;
  const { code, effect } = HOOKS[option];
  process.emitWarning(
    `the ${option} option threw or rejected (${error instanceof Error ? error.message : String(error)}); ${effect}. Later errors of this ${option} option are not reported`,
    { type: "FloodgateWarning", code },
  );
}

/**
 * createRateLimit validates `options` (throwing ConfigError) and returns the
 * RateLimit an adapter calls per request. `reader` is the adapter's access to
 * its framework's request; `extra` lists option names the adapter handles
 * itself (it validates them).
 */
export function createRateLimit<Req, Reply = never>(
  options: RateLimitOptions<Req, Reply>,
  reader: RequestReader<Req>,
  extra: readonly string[] = [],
): RateLimit<Req, Reply> {
  return new RateLimit(options, reader, extra, "");
}
