// The contract's app on plain node:http.
import { createServer, type IncomingMessage } from "node:http";
import {
  type NodeRateLimit,
  type NodeRateLimitOptions,
  type RateLimitedRequest,
  rateLimit,
} from "../../../src/adapters/node/index.js";
import { type Harness, replyBody, replyStatus, userOf } from "../contract.js";
import { findRoute, served } from "./listen.js";

type AuthedRequest = IncomingMessage & { user?: string | undefined };

export const nodeHarness: Harness = {
  name: "node",
  kit: {
    header: (req: IncomingMessage, name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    user: (req: AuthedRequest) => req.user,
  },
  async start(spec) {
    const global = rateLimit(spec.global as NodeRateLimitOptions);
    const limits = new Map<object, NodeRateLimit[]>();
    for (const route of spec.routes) {
      limits.set(
        route,
        route.limits.map((l) =>
          l === "global"
            ? global
            : "route" in l
              ? global.route(l.route)
              : rateLimit(l.own as NodeRateLimitOptions),
        ),
      );
    }
    const server = createServer(async (req: AuthedRequest & RateLimitedRequest, res) => {
      const route = findRoute(spec.routes, req.method, req.url);
      if (route === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      if (spec.auth) req.user = userOf(req.headers.authorization);
      try {
        for (const limit of limits.get(route) ?? []) if (!(await limit(req, res))) return;
      } catch {
        res.statusCode = 500;
        res.end("Internal Server Error");
        return;
      }
      const password = req.headers["x-password"];
      res.statusCode = replyStatus(
        route.reply,
        typeof password === "string" ? password : undefined,
      );
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(replyBody(route.reply, req.rateLimit)));
    });
    return { ...(await served(server.listen(0, "127.0.0.1"))), limiter: global.limiter };
  },
};
