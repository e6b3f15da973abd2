// The contract's app on Koa (2 or 3, whichever module is passed), routed by
// hand so the suite needs no router package.
import type KoaApp from "koa";
import type { Context } from "koa";
import {
  type KoaRateLimit,
  type KoaRateLimitOptions,
  rateLimit,
} from "../../../src/adapters/koa/index.js";
import { type Harness, type Route, replyBody, replyStatus, userOf } from "../contract.js";
import { findRoute, served } from "./listen.js";

function run(
  ctx: Context,
  route: Route,
  limits: readonly KoaRateLimit[],
  i: number,
): Promise<void> {
  const limit = limits[i];
  if (limit === undefined) {
    ctx.status = replyStatus(route.reply, ctx.get("x-password") || undefined);
    ctx.body = replyBody(route.reply, ctx.state.rateLimit);
    return Promise.resolve();
  }
  return Promise.resolve(limit(ctx, () => run(ctx, route, limits, i + 1)));
}

export function koaHarness(name: string, Koa: typeof KoaApp): Harness {
  return {
    name,
    kit: {
      header: (ctx: Context, name: string) => ctx.get(name) || undefined,
      user: (ctx: Context) => ctx.state.user,
    },
    async start(spec) {
      const app = new Koa();
      app.silent = true;
      const global = rateLimit(spec.global as KoaRateLimitOptions);
      const table = spec.routes.map((route) => ({
        route,
        limits: route.limits.map((l) =>
          l === "global"
            ? global
            : "route" in l
              ? global.route(l.route)
              : rateLimit(l.own as KoaRateLimitOptions),
        ),
      }));
      app.use((ctx) => {
        if (spec.auth) ctx.state.user = userOf(ctx.get("authorization") || undefined);
        const route = findRoute(spec.routes, ctx.method, ctx.url);
        const entry = table.find((t) => t.route === route);
        if (entry === undefined) {
          ctx.status = 404;
          return undefined;
        }
        return run(ctx, entry.route, entry.limits, 0);
      });
      return { ...(await served(app.listen(0, "127.0.0.1"))), limiter: global.limiter };
    },
  };
}
