// The tutorial's API on Hono (served on Node by @hono/node-server), rate
// limited per client IP by floodgate: 10 requests of burst, 2 more each
// second. /health is never limited.
// Run: npx tsx examples/hono/server.ts, then curl -i http://127.0.0.1:8000/data
import { serve } from "@hono/node-server";
import { rateLimit } from "floodgate/hono";
import { Hono } from "hono";

const app = new Hono();
const limit = rateLimit({ policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 } });
app.get("/health", (c) => c.json({ status: "ok" }));
app.get("/", limit, (c) => c.json({ message: "Hello, world!" }));
app.get("/data", limit, (c) =>
  c.json({ data: "Some important information", remaining: c.get("rateLimit")?.remaining }),
);

const port = Number(process.env.PORT ?? 8000);
serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, () =>
  console.log(`Hono on http://127.0.0.1:${port}`),
);
