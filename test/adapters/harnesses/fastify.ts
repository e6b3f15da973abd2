// The contract's app on Fastify: the global limit is the plugin, overrides
// and opt-outs are route config, and a stacked limiter is the plugin
// registered again in the route's own context.
import Fastify, { type FastifyRequest, type RouteOptions } from "fastify";
import floodgate, { type FastifyRateLimitOptions } from "../../../src/adapters/fastify/index.js";
import { type Harness, type Route, replyBody, replyStatus, userOf } from "../contract.js";
import { served } from "./listen.js";

type AuthedRequest = FastifyRequest & { user?: string | undefined };

function routeOptions(route: Route, config: object | undefined): RouteOptions {
  return {
    method: route.method,
    url: route.path,
    ...(config === undefined ? {} : { config }),
    handler: async (request, reply) => {
      const password = request.headers["x-password"];
      reply.code(replyStatus(route.reply, typeof password === "string" ? password : undefined));
      return replyBody(route.reply, request.rateLimit);
    },
  };
}

export const fastifyHarness: Harness = {
  name: "fastify",
  kit: {
    header: (request: FastifyRequest, name: string) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    user: (request: AuthedRequest) => request.user,
  },
  async start(spec) {
    const app = Fastify();
    if (spec.auth) {
      app.addHook("onRequest", async (request: AuthedRequest) => {
        request.user = userOf(request.headers.authorization);
      });
    }
    await app.register(floodgate, {
      ...spec.global,
      ...(spec.auth ? { hook: "preHandler" } : {}),
    } as FastifyRateLimitOptions);
    for (const route of spec.routes) {
      const [first, second] = route.limits;
      if (first === undefined) app.route(routeOptions(route, { rateLimit: false }));
      else if (first !== "global" && "route" in first) {
        app.route(routeOptions(route, { rateLimit: first.route }));
      } else if (second !== undefined && second !== "global" && "own" in second) {
        await app.register(async (child) => {
          await child.register(floodgate, second.own as FastifyRateLimitOptions);
          child.route(routeOptions(route, undefined));
        });
      } else app.route(routeOptions(route, undefined));
    }
    await app.listen({ port: 0, host: "127.0.0.1" });
    const server = await served(app.server);
    return { url: server.url, close: () => app.close() };
  },
};
