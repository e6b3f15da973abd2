// The tutorial's API on Koa, rate limited per client IP by floodgate:
// 10 requests of burst, 2 more each second. /health is never limited.
// Run: npx tsx examples/koa/server.ts, then curl -i http://127.0.0.1:8000/data
import { type RateLimitState, rateLimit } from "floodgate/koa";
import Koa from "koa";
import { wellFormed } from "../well-formed.js";

const app = new Koa<RateLimitState>();
// Answered before the limiter runs, so never limited: a malformed request
// (ctx.path would throw on it), and /health.
app.use(async (ctx, next) => {
  if (!wellFormed(ctx.req.url, ctx.req.headers.host)) {
    ctx.status = 400;
    ctx.body = { detail: "Bad request" };
  } else if (ctx.path === "/health") ctx.body = { status: "ok" };
  else await next();
});
app.use(rateLimit({ policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 } }));
app.use((ctx) => {
  if (ctx.path === "/") ctx.body = { message: "Hello, world!" };
  else if (ctx.path === "/data") {
    ctx.body = { data: "Some important information", remaining: ctx.state.rateLimit?.remaining };
  }
});

const port = Number(process.env.PORT ?? 8000);
app.listen(port, "127.0.0.1", () => console.log(`Koa on http://127.0.0.1:${port}`));
