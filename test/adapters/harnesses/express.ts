// The contract's app on Express (4 or 5, whichever module is passed).

import type express5 from "express";
import type { NextFunction, Request, Response } from "express";
import {
  type ExpressRateLimit,
  type ExpressRateLimitOptions,
  type RateLimitedRequest,
  rateLimit,
} from "../../../src/adapters/express/index.js";
import { type Harness, replyBody, replyStatus, userOf } from "../contract.js";
import { served } from "./listen.js";

type AuthedRequest = Request & { user?: string | undefined };

export function expressHarness(name: string, express: typeof express5): Harness {
  return {
    name,
    kit: {
      header: (req: Request, name: string) => req.get(name),
      user: (req: AuthedRequest) => req.user,
    },
    async start(spec) {
      const app = express();
      if (spec.auth) {
        app.use((req: AuthedRequest, _res: Response, next: NextFunction) => {
          req.user = userOf(req.headers.authorization);
          next();
        });
      }
      const global = rateLimit(spec.global as ExpressRateLimitOptions);
      for (const route of spec.routes) {
        const limits: ExpressRateLimit[] = route.limits.map((l) =>
          l === "global"
            ? global
            : "route" in l
              ? global.route(l.route)
              : rateLimit(l.own as ExpressRateLimitOptions),
        );
        const handler = (req: Request, res: Response) => {
          res
            .status(replyStatus(route.reply, req.get("x-password")))
            .json(replyBody(route.reply, (req as RateLimitedRequest).rateLimit));
        };
        if (route.method === "GET") app.get(route.path, ...limits, handler);
        else if (route.method === "OPTIONS") app.options(route.path, ...limits, handler);
        else app.post(route.path, ...limits, handler);
      }
      return { ...(await served(app.listen(0, "127.0.0.1"))), limiter: global.limiter };
    },
  };
}
