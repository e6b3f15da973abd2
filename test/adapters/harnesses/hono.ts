// The contract's app on Hono, served on Node by @hono/node-server.

import type { Server as HttpServer } from "node:http";
import { serve } from "@hono/node-server";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { type HonoRateLimitOptions, rateLimit } from "../../../src/adapters/hono/index.js";
import { type Harness, replyBody, replyStatus, userOf } from "../contract.js";
import { served } from "./listen.js";

type Env = { Variables: { user: string | undefined } };

export const honoHarness: Harness = {
  name: "hono",
  kit: {
    header: (c: Context, name: string) => c.req.header(name),
    user: (c: Context<Env>) => c.get("user"),
  },
  async start(spec) {
    const app = new Hono<Env>();
    if (spec.auth) {
      app.use(async (c, next) => {
        c.set("user", userOf(c.req.header("authorization")));
        await next();
      });
    }
    const global = rateLimit(spec.global as HonoRateLimitOptions);
    for (const route of spec.routes) {
      const limits = route.limits.map((l) =>
        l === "global"
          ? global
          : "route" in l
            ? global.route(l.route)
            : rateLimit(l.own as HonoRateLimitOptions),
      );
      const on = app.on as (method: string, path: string, ...handlers: MiddlewareHandler[]) => void;
      on.call(app, route.method, route.path, ...limits, async (c) =>
        c.json(
          replyBody(route.reply, c.get("rateLimit")),
          replyStatus(route.reply, c.req.header("x-password")) as 200,
        ),
      );
    }
    app.onError((_error, c) => c.text("Internal Server Error", 500));
    return {
      ...(await served(serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }) as HttpServer)),
      limiter: global.limiter,
    };
  },
};
