// The tutorial's API on plain node:http, rate limited per client IP by
// floodgate: 10 requests of burst, 2 more each second. /health is never limited.
// Run: npx tsx examples/node/server.ts, then curl -i http://127.0.0.1:8000/data
import { createServer, type ServerResponse } from "node:http";
import { type RateLimitedRequest, rateLimit } from "floodgate/node";
import { wellFormed } from "../well-formed.js";

const limit = rateLimit({ policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 } });

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req: RateLimitedRequest, res) => {
  if (!wellFormed(req.url, req.headers.host)) return json(res, 400, { detail: "Bad request" });
  if (req.url === "/health") return json(res, 200, { status: "ok" });
  if (req.url !== "/" && req.url !== "/data") return json(res, 404, { detail: "Not found" });
  // false: floodgate has answered 429 already.
  if (!(await limit(req, res))) return;
  if (req.url === "/") return json(res, 200, { message: "Hello, world!" });
  json(res, 200, { data: "Some important information", remaining: req.rateLimit?.remaining });
});

const port = Number(process.env.PORT ?? 8000);
server.listen(port, "127.0.0.1", () => console.log(`node:http on http://127.0.0.1:${port}`));
