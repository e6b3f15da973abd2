// The tutorial's API on Fastify, rate limited per client IP.
import Fastify, { type FastifyInstance } from "fastify";
import floodgate from "../adapters/fastify/index.js";
import type { PolicyInput } from "../core/policy.js";
import { RateLimiter } from "../limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
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
 * choose a store. Today, the memory store (one process).
 */
export function createStore(_config: DemoConfig): Store {
  return new MemoryStore();
}

/** storeName names the store in the start-up line. */
export function storeName(store: Store): string {
  return store instanceof MemoryStore ? "memory store" : (store.constructor?.name ?? "store");
}

/**
 * operationalRoutes adds the routes for operators, never rate limited (a
 * monitor must see the service even while clients are throttled): `/health`,
 * and the place for `/metrics`, which gets the demo's limiter.
 */
export function operationalRoutes(app: FastifyInstance, _limiter: RateLimiter): void {
  app.get("/health", { config: { rateLimit: false } }, async () => ({ status: "ok" }));
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
  return new RateLimiter({ policy: policyOf(config), store: createStore(config) });
}
