// The tutorial's API on Express, rate limited per client IP by floodgate:
// 10 requests of burst, 2 more each second. /health is never limited.
// Run: npx tsx examples/express/server.ts, then curl -i http://127.0.0.1:8000/data
import express from "express";
import { type RateLimitedRequest, rateLimit } from "floodgate/express";
import { wellFormed } from "../well-formed.js";

const app = express();
app.use((req, res, next) => {
  if (wellFormed(req.url, req.headers.host)) next();
  else res.status(400).json({ detail: "Bad request" });
});
// Routes added before the limiter are not limited.
app.get("/health", (_req, res) => {
  res.json({ status: "ok" });
});
app.use(rateLimit({ policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 } }));
app.get("/", (_req, res) => {
  res.json({ message: "Hello, world!" });
});
app.get("/data", (req: RateLimitedRequest, res) => {
  res.json({ data: "Some important information", remaining: req.rateLimit?.remaining });
});

const port = Number(process.env.PORT ?? 8000);
app.listen(port, "127.0.0.1", () => console.log(`Express on http://127.0.0.1:${port}`));
