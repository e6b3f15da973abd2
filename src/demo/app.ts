// The tutorial's API on Fastify, rate limited per client IP.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { pino } from "pino";
import { Registry } from "prom-client";
import floodgate from "../adapters/fastify/index.js";
import type { PolicyInput } from "../core/policy.js";
import { RateLimiter } from "../limiter.js";
import { dashboard, loopbackOnly } from "../metrics/dashboard.js";
import { prometheusMetrics } from "../metrics/prometheus.js";
import { MemoryStore } from "../stores/memory-store.js";
import { RedisStore } from "../stores/redis/redis-store.js";
import type { Store } from "../stores/store.js";
import type { DemoConfig } from "./config.js";

/** policyOf is the demo's one policy, named "burst" as in the tutorial. */
export function policyOf(config: DemoConfig): PolicyInput {
  return {
    name: "burst",
    capacity: config.capacity,
    refillRate: config.refillRate,
    interval: config.interval,
  };
}

/**
 * createStore picks where the demo keeps its buckets: the one place to
 * choose a store. Redis when `REDIS_URL` is set (every instance shares one
 * limit), else the memory store (one process).
 */
export function createStore(config: DemoConfig): Store {
  if (config.redisUrl !== undefined) return new RedisStore({ url: config.redisUrl });
  return new MemoryStore();
}

/** storeName names the store in the start-up line. */
export function storeName(store: Store): string {
  if (store instanceof RedisStore) return "Redis store";
  return store instanceof MemoryStore ? "memory store" : (store.constructor?.name ?? "store");
}

/**
 * operationalRoutes adds the routes for operators, never rate limited (a
 * monitor must see the service even while clients are throttled): `/health`,
 * `/metrics` (Prometheus, the demo's own registry), and the dashboard at
 * `/ratelimit` for clients on this machine only.
 */
export function operationalRoutes(app: FastifyInstance, limiter: RateLimiter): void {
  app.get("/health", { config: { rateLimit: false } }, async () => ({ status: "ok" }));
  const metrics = prometheusMetrics(limiter, { registry: new Registry() });
  app.get("/metrics", { config: { rateLimit: false } }, async (_request, reply) => {
    reply.type(metrics.contentType);
    return metrics.metrics();
  });
  const board = dashboard({ limiter, guard: loopbackOnly, path: "/ratelimit" });
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const answer = await board.handle({
      method: request.method,
      url: request.url,
      headers: request.headers,
      remoteAddress: request.raw.socket.remoteAddress,
    });
    if (answer === undefined) return reply.callNotFound();
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  };
  for (const url of [board.path, `${board.path}/`, `${board.path}/stats.json`]) {
    app.get(url, { config: { rateLimit: false } }, serve);
  }
  app.addHook("onClose", async () => {
    metrics.stop();
    board.stop();
  });
}

/**
 * buildDemo returns the demo app, not yet listening: `/` and `/data` limited
 * by `limiter` per client IP (the socket's address), `/health` never.
 */
export async function buildDemo(limiter: RateLimiter): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  // Awaited so the plugin sees every route added below.
  await app.register(floodgate, { limiter });
  app.get("/", async () => ({ message: "Hello, world!" }));
  app.get("/data", async () => ({ data: "Some important information" }));
  operationalRoutes(app, limiter);
  return app;
}

/** createLimiter builds the demo's limiter from its settings. */
export function createLimiter(config: DemoConfig): RateLimiter {
  return new RateLimiter({
    policy: policyOf(config),
    store: createStore(config),
    // Store errors, the breaker and evicted throttled clients, at most once a minute per kind.
    logger: pino({ name: "floodgate-demo" }),
  });
}
