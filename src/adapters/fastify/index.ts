// floodgate/fastify: the HTTP layer as a Fastify 5 plugin. It only translates:
// a RequestReader over Fastify's request, one hook per route, and the outcome
// written to the reply. Nothing here imports fastify at run time, so the
// package works (and `floodgate` loads) without it.
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RouteOptions,
} from "fastify";
import type { Decision } from "../../core/decision.js";
import { ConfigError, isFloodgateError } from "../../core/errors.js";
import {
  createRateLimit,
  type RateLimit,
  type RateLimitOptions,
  type RateLimitOutcome,
  type RequestReader,
} from "../../http/index.js";
import { readHeader } from "../incoming.js";
import { type Bag, recordIn, STACKED, stackedIn, stricter } from "../stack.js";
import { Warnings, type WarningsOption } from "../warnings.js";

/** FastifyRateLimitHook is the request phase the limit runs in. */
export type FastifyRateLimitHook = "onRequest" | "preValidation" | "preHandler";

/**
 * FastifyRateLimitOptions are floodgate's HTTP options plus `hook`: the phase
 * to check in. Default `"onRequest"`, before the body is read, so a 429 costs
 * least; use `"preHandler"` to key by a user that an auth hook sets later.
 */
export interface FastifyRateLimitOptions extends RateLimitOptions<FastifyRequest, FastifyReply> {
  hook?: FastifyRateLimitHook | undefined;
  /** Start-up warnings (see docs/proxies.md): false for none, or some of them off by code. */
  warnings?: WarningsOption | undefined;
}

/**
 * FastifyRouteRateLimitOptions are a route's `config.rateLimit`: options
 * merged over the plugin's, plus `stack`. With `stack: true` the route keeps
 * the plugin's limit and adds its own on top (both are charged, the
 * stricter answers), where without it the route's options replace the
 * plugin's for that route. A stacked limit needs policies of its own.
 */
export interface FastifyRouteRateLimitOptions extends FastifyRateLimitOptions {
  stack?: boolean | undefined;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The rate-limit decision for this request; null when it was skipped or its route is not limited. */
    rateLimit: Decision | null;
  }
  interface FastifyContextConfig {
    /**
     * This route's rate-limit options, merged over the plugin's (or, with
     * `stack: true`, a limit added on top of the plugin's); false turns
     * limiting off for it.
     */
    rateLimit?: FastifyRouteRateLimitOptions | false | undefined;
  }
}

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;
type Limit = RateLimit<FastifyRequest, FastifyReply>;
type Entry = { limit: Limit; hook: Hook; name: FastifyRateLimitHook; stack: boolean };

const HOOKS: readonly string[] = ["onRequest", "preValidation", "preHandler"];
// Options of fastify.register itself: meaningless for a plugin that applies
// to its parent's routes, so they are accepted and ignored.
const REGISTER_OPTIONS = ["prefix", "logLevel", "logSerializers"];

/** reader reads Fastify's request: the raw socket address and raw headers (what the client sent). */
const reader: RequestReader<FastifyRequest> = {
  address: (request) => request.raw.socket?.remoteAddress,
  header: (request, name) => readHeader(request.raw, name),
  method: (request) => request.raw.method,
};

function hookName(limit: Limit, option: string): FastifyRateLimitHook {
  const hook = (limit.options as FastifyRateLimitOptions).hook ?? "onRequest";
  if (!HOOKS.includes(hook)) {
    throw new ConfigError(
      option,
      hook,
      `must be one of ${HOOKS.join(", ")}`,
      'leave it out (onRequest), or use "preHandler" to run after authentication',
    );
  }
  return hook;
}

/** answer applies an outcome to the reply; it never throws, errors go to `done`. */
function answer(
  limit: Limit,
  outcome: RateLimitOutcome,
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  // Stacked plugins (a global one and another in a route's context) merge
  // their headers and expose the strictest decision, as every adapter does.
  const bag = request as Bag;
  const earlier = request.rateLimit;
  request.rateLimit =
    stackedIn(bag) !== undefined && earlier !== null
      ? stricter(earlier, outcome.decision)
      : outcome.decision;
  const headers = recordIn(bag, outcome);
  for (let i = 0; i < headers.length; i += 2) {
    reply.header(headers[i] as string, headers[i + 1]);
  }
  if (!outcome.limited) {
    const sent = outcome.sent;
    if (sent !== undefined) reply.raw.once("finish", () => sent(reply.statusCode));
    done();
    return;
  }
  const response = outcome.response;
  if (response !== undefined) {
    // A string body with its content type set is sent as is: no serializer runs.
    reply.code(response.status).type(response.contentType).send(response.body);
    return;
  }
  const respond = limit.respond as NonNullable<Limit["respond"]>;
  let answered: unknown;
  try {
    answered = respond(request, reply, outcome.decision);
  } catch (error) {
    done(error as Error);
    return;
  }
  Promise.resolve(answered).then(() => {
    if (!reply.sent) {
      done(new Error("floodgate: the respond option returned without sending a response"));
    }
  }, done);
}

function hookFor(limit: Limit, warnings: Warnings): Hook {
  // A custom key is not the socket's: nothing of this hook's to watch.
  let watching = limit.options.key === undefined;
  return function floodgateRateLimit(request, reply, done) {
    if (watching) {
      watching = warnings.watch(reader, request, "fastify", "key clients another way");
    }
    let result: ReturnType<Limit["check"]>;
    try {
      result = limit.check(request);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (result === null) {
      done();
    } else if (result instanceof Promise) {
      result.then((outcome) => {
        if (outcome === null) done();
        else answer(limit, outcome, request, reply, done);
      }, done);
    } else {
      answer(limit, result, request, reply, done);
    }
  };
}

function addHook(route: RouteOptions, name: FastifyRateLimitHook, hook: Hook): void {
  const current = route[name] as Hook | Hook[] | undefined;
  const list = current === undefined ? [] : Array.isArray(current) ? [...current] : [current];
  list.push(hook);
  (route as unknown as Record<string, Hook[]>)[name] = list;
}

function policyNames(options: Readonly<FastifyRateLimitOptions>): string[] | undefined {
  const source = options.policy ?? options.policies;
  if (source === undefined || typeof source === "function") return undefined;
  const list = Array.isArray(source) ? source : [source];
  return list.map((p: { name?: string }) => p.name ?? "default");
}

/**
 * routeEntry builds a route's limit from its `config.rateLimit`. `stack`
 * is floodgate/fastify's own: the route's limit runs after the plugin's
 * instead of replacing it, so it must charge other buckets than the
 * plugin's (its own policies, under their own names).
 */
function routeEntry(base: Limit, config: unknown, warnings: Warnings): Entry {
  const object = typeof config === "object" && config !== null && !Array.isArray(config);
  const { stack, ...own } = (object ? config : {}) as FastifyRouteRateLimitOptions;
  if (stack !== undefined && typeof stack !== "boolean") {
    throw new ConfigError(
      "config.rateLimit.stack",
      stack,
      "must be true or false",
      "stack: true adds the route's limit on top of the plugin's; leave it out to replace the plugin's",
    );
  }
  // Without `stack` (given as undefined too, which means it is left out);
  // anything but an object as given, for base.route's message about it.
  const limit = base.route((object ? own : config) as FastifyRateLimitOptions, "config.rateLimit.");
  if (stack === true) {
    const mine = policyNames(own);
    if (own.policy === undefined && own.policies === undefined) {
      throw new ConfigError(
        "config.rateLimit.stack",
        stack,
        "needs the route's own policy or policies",
        "stacked on the plugin's limit, the plugin's policies would be charged twice: add e.g. policy: { name: 'login', capacity: 5, refillRate: 1, interval: '1m' }",
      );
    }
    const shared = mine?.filter((name) => policyNames(base.options)?.includes(name));
    if (shared !== undefined && shared.length > 0) {
      throw new ConfigError(
        "config.rateLimit.policy",
        shared[0],
        "names a policy of the plugin's own limit, which a stacked route would charge twice",
        "give the route's policy a name of its own, e.g. name: 'login'",
      );
    }
  }
  // A route's own `warnings` (validated here) is that route's: the plugin's
  // are shared by every route that gives none.
  const mine =
    own.warnings === undefined ? warnings : new Warnings(own.warnings, "config.rateLimit.warnings");
  return {
    limit,
    hook: hookFor(limit, mine),
    name: hookName(limit, "config.rateLimit.hook"),
    stack: stack === true,
  };
}

/**
 * floodgate is the Fastify plugin. Register it (awaited, or before the routes
 * it should limit, since it reads each route as the route is added) with the
 * options every floodgate middleware takes, plus `hook`. A route's
 * `config: { rateLimit: {...} }` overrides the options for that route and
 * `config: { rateLimit: false }` turns limiting off for it;
 * `config: { rateLimit: { stack: true, policy } }` adds a route's limit on
 * top of the plugin's. Each request
 * gets `request.rateLimit` (its Decision, or null). Bad options are rejected
 * when the plugin or the route is registered, with a ConfigError.
 */
function floodgate(
  fastify: FastifyInstance,
  options: FastifyRateLimitOptions,
  done: (error?: Error) => void,
): void {
  let base: Limit;
  let warnings: Warnings;
  try {
    const own: Record<string, unknown> = { ...options };
    for (const name of REGISTER_OPTIONS) delete own[name];
    base = createRateLimit<FastifyRequest, FastifyReply>(own, reader, ["hook", "warnings"]);
    hookName(base, "hook");
    warnings = new Warnings(options.warnings);
  } catch (error) {
    done(error as Error);
    return;
  }
  if (!fastify.hasRequestDecorator("rateLimit")) fastify.decorateRequest("rateLimit", null);
  // Where stacked plugins keep their headers, declared so every request has it from the start.
  if (!fastify.hasRequestDecorator(STACKED)) fastify.decorateRequest(STACKED, null);
  // Routes that share one config object (GET and its HEAD, or the same limit
  // put on several routes) share one built limit.
  const built = new WeakMap<object, Entry>();
  const global: Entry = {
    limit: base,
    hook: hookFor(base, warnings),
    name: hookName(base, "hook"),
    stack: false,
  };
  fastify.addHook("onRoute", function floodgateOnRoute(route) {
    const config = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit;
    if (config === false) return;
    let entry = global;
    if (config !== undefined) {
      const known = typeof config === "object" && config !== null ? built.get(config) : undefined;
      if (known !== undefined) {
        entry = known;
      } else {
        try {
          entry = routeEntry(base, config, warnings);
        } catch (error) {
          if (isFloodgateError(error)) {
            error.message += ` (route ${String(route.method)} ${route.url})`;
          }
          throw error;
        }
        built.set(config as object, entry);
      }
    }
    if (entry.stack) addHook(route, global.name, global.hook);
    addHook(route, entry.name, entry.hook);
  });
  done();
}

// What fastify-plugin would add, inlined so the package needs no dependency
// for it: skip-override makes the hooks apply to the routes of the context
// that registers the plugin, not only to a child context of its own.
Object.assign(floodgate, {
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "floodgate",
  [Symbol.for("plugin-meta")]: { name: "floodgate", fastify: "5.x" },
});

export default floodgate;
export type { Decision } from "../../core/decision.js";
export type { Duration, PolicyInput } from "../../core/policy.js";
export { type KeyFunction, keys, type RequestReader } from "../../http/index.js";
export { floodgate };
