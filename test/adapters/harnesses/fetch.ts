// The contract's app as a Fetch handler, served on Node by @hono/node-server,
// which passes the Node request after the Fetch Request: the `address`
// option reads the client's IP from it, as Deno's or Bun's would.
import type { Server as HttpServer } from "node:http";
import { serve } from "@hono/node-server";
import {
  type FetchHandler,
  type FetchRateLimitOptions,
  rateLimitOf,
  withRateLimit,
} from "../../../src/adapters/fetch/index.js";
import { type Harness, replyBody, replyStatus, userOf } from "../contract.js";
import { findRoute, served } from "./listen.js";

type NodeEnv = [{ incoming: { socket: { remoteAddress?: string | undefined } } }];
type Options = FetchRateLimitOptions<NodeEnv>;

const users = new WeakMap<Request, string>();
const address = (_request: Request, env: NodeEnv[0]) => env.incoming.socket.remoteAddress;

export const fetchHarness: Harness = {
  name: "fetch",
  kit: {
    header: (request: Request, name: string) => request.headers.get(name) ?? undefined,
    user: (request: Request) => users.get(request),
  },
  async start(spec) {
    const global = { ...spec.global, address } as Options;
    const handlers = new Map<object, FetchHandler<NodeEnv>>();
    for (const route of spec.routes) {
      let handler: FetchHandler<NodeEnv> = (request) =>
        Response.json(replyBody(route.reply, rateLimitOf(request)), {
          status: replyStatus(route.reply, request.headers.get("x-password") ?? undefined),
        });
      for (const l of [...route.limits].reverse()) {
        handler =
          l === "global"
            ? withRateLimit(handler, global)
            : "route" in l
              ? withRateLimit(handler, global, l.route)
              : withRateLimit(handler, { ...l.own, address } as Options);
      }
      handlers.set(route, handler);
    }
    const app = async (request: Request, env: NodeEnv[0]) => {
      const route = findRoute(spec.routes, request.method, new URL(request.url).pathname);
      const handler = route === undefined ? undefined : handlers.get(route);
      if (handler === undefined) return new Response(null, { status: 404 });
      if (spec.auth) {
        const user = userOf(request.headers.get("authorization") ?? undefined);
        if (user !== undefined) users.set(request, user);
      }
      try {
        return await handler(request, env);
      } catch {
        return new Response("Internal Server Error", { status: 500 });
      }
    };
    return served(serve({ fetch: app, port: 0, hostname: "127.0.0.1" }) as HttpServer);
  },
};
