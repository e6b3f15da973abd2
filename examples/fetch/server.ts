// The tutorial's API as one Fetch handler (the shape of Next.js route
// handlers, Bun.serve, Deno.serve and Workers), rate limited by floodgate:
// 10 requests of burst, 2 more each second. /health is never limited.
// Here it runs on Node through @hono/node-server, which passes the Node
// request after the Fetch Request; `address` reads the client IP from it.
// (Bun: address: (req, server) => server.requestIP(req)?.address;
//  Deno: address: (req, info) => info.remoteAddr.hostname.)
// Run: npx tsx examples/fetch/server.ts, then curl -i http://127.0.0.1:8000/data
import { serve } from "@hono/node-server";
import { rateLimitOf, withRateLimit } from "floodgate/fetch";

/** What @hono/node-server passes after the Request: the Node request, with its socket. */
type NodeEnv = { incoming: { socket: { remoteAddress?: string | undefined } } };

const api = withRateLimit(
  (request: Request, _env: NodeEnv) => {
    const path = new URL(request.url).pathname;
    if (path === "/") return Response.json({ message: "Hello, world!" });
    if (path === "/data") {
      const remaining = rateLimitOf(request)?.remaining;
      return Response.json({ data: "Some important information", remaining });
    }
    return Response.json({ detail: "Not found" }, { status: 404 });
  },
  {
    policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
    address: (_request, env) => env.incoming.socket.remoteAddress,
  },
);

function handler(request: Request, env: NodeEnv): Response | Promise<Response> {
  if (new URL(request.url).pathname === "/health") return Response.json({ status: "ok" });
  return api(request, env);
}

const port = Number(process.env.PORT ?? 8000);
serve({ fetch: handler, port, hostname: "127.0.0.1" }, () =>
  console.log(`Fetch handler on http://127.0.0.1:${port}`),
);
