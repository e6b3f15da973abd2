// The tutorial's API on Fastify, rate limited per client IP by floodgate:
// 10 requests of burst, 2 more each second. /health is never limited.
// Run: npx tsx examples/fastify/server.ts, then curl -i http://127.0.0.1:8000/data
import Fastify from "fastify";
import floodgate from "floodgate/fastify";
import { wellFormed } from "../well-formed.js";

const app = Fastify();
app.addHook("onRequest", async (request, reply) => {
  if (!wellFormed(request.raw.url, request.headers.host)) {
    return reply.code(400).send({ detail: "Bad request" });
  }
});
await app.register(floodgate, {
  policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
});
app.get("/", async () => ({ message: "Hello, world!" }));
app.get("/data", async (request) => ({
  data: "Some important information",
  remaining: request.rateLimit?.remaining,
}));
app.get("/health", { config: { rateLimit: false } }, async () => ({ status: "ok" }));

const port = Number(process.env.PORT ?? 8000);
await app.listen({ port, host: "127.0.0.1" });
console.log(`Fastify on http://127.0.0.1:${port}`);
