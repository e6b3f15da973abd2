/**
 * One hello-world server in its own process: a framework (fastify, express,
 * hono), a limiter (none, floodgate, the framework's peer) and a path
 * (`allowed`: a limit no run reaches; `rejected`: 1 per hour, so every
 * request after the first is a 429). It listens on a free loopback port,
 * sends `{ port }` over IPC, and answers each `"mark"` message with its
 * `process.cpuUsage()` and the requests it has served so far.
 */
import type { Server } from "node:http";
import type { RequestHandler } from "express";
import { BODY, FIXED_HEADERS, floodgateModule, HOUR } from "./common.js";

export type Framework = "fastify" | "express" | "hono";
/**
 * `noop` and `headers` are floors, not limiters: a middleware that does
 * nothing (what the framework charges for any middleware) and one that only
 * sets floodgate's five default headers with fixed values.
 */
export type LimiterKind = "none" | "floodgate" | "peer" | "noop" | "headers";
export type PathKind = "allowed" | "rejected";

export interface ServerJob {
  framework: Framework;
  limiter: LimiterKind;
  path: PathKind;
}

/** Mark is a server's reply to "mark": CPU microseconds used and requests served so far. */
export interface Mark {
  cpuUs: number;
  requests: number;
}

/** limits: `capacity` requests per hour. */
function capacity(path: PathKind): number {
  return path === "allowed" ? 1e9 : 1;
}

function policy(path: PathKind) {
  return { capacity: capacity(path), refillRate: 1, interval: HOUR };
}

async function fastifyServer(job: ServerJob): Promise<Server> {
  const { default: Fastify } = await import("fastify");
  const app = Fastify({ logger: false });
  if (job.limiter === "floodgate") {
    const mod = await floodgateModule<{ default: Parameters<typeof app.register>[0] }>("fastify");
    await app.register(mod.default, { policy: policy(job.path) } as never);
  } else if (job.limiter === "peer") {
    const { default: rateLimit } = await import("@fastify/rate-limit");
    await app.register(rateLimit, { max: capacity(job.path), timeWindow: HOUR });
  } else if (job.limiter === "noop") {
    app.addHook("onRequest", (_request, _reply, done) => done());
  } else if (job.limiter === "headers") {
    app.addHook("onRequest", (_request, reply, done) => {
      for (const [name, value] of FIXED_HEADERS) reply.header(name, value);
      done();
    });
  }
  app.get("/", async () => BODY);
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app.server;
}

async function expressServer(job: ServerJob): Promise<Server> {
  const { default: express } = await import("express");
  const { createServer } = await import("node:http");
  const app = express();
  if (job.limiter === "floodgate") {
    const { rateLimit } = await floodgateModule<{
      rateLimit: (o: object) => RequestHandler;
    }>("express");
    app.use(rateLimit({ policy: policy(job.path) }));
  } else if (job.limiter === "peer") {
    const { rateLimit } = await import("express-rate-limit");
    app.use(rateLimit({ windowMs: HOUR, limit: capacity(job.path) }));
  } else if (job.limiter === "noop") {
    app.use((_req, _res, next) => next());
  } else if (job.limiter === "headers") {
    app.use((_req, res, next) => {
      for (const [name, value] of FIXED_HEADERS) res.setHeader(name, value);
      next();
    });
  }
  app.get("/", (_req, res) => {
    res.json(BODY);
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

async function honoServer(job: ServerJob): Promise<Server> {
  const { Hono } = await import("hono");
  const { serve } = await import("@hono/node-server");
  const app = new Hono();
  if (job.limiter === "floodgate") {
    const { rateLimit } = await floodgateModule<{
      rateLimit: (o: object) => Parameters<typeof app.use>[0];
    }>("hono");
    app.use(rateLimit({ policy: policy(job.path) }));
  } else if (job.limiter === "peer") {
    const { rateLimiter } = await import("hono-rate-limiter");
    app.use(
      rateLimiter({
        windowMs: HOUR,
        limit: capacity(job.path),
        // hono-rate-limiter has no default key: the socket's address, as floodgate's default.
        keyGenerator: (c) =>
          (c.env as { incoming: { socket: { remoteAddress?: string } } }).incoming.socket
            .remoteAddress ?? "",
      }),
    );
  } else if (job.limiter === "noop") {
    app.use((_c, next) => next());
  } else if (job.limiter === "headers") {
    // Where floodgate/hono puts its headers on @hono/node-server: the Node response.
    app.use((c, next) => {
      const outgoing = (c.env as { outgoing: { setHeader(n: string, v: string): void } }).outgoing;
      for (const [name, value] of FIXED_HEADERS) outgoing.setHeader(name, value);
      return next();
    });
  }
  app.get("/", (c) => c.json(BODY));
  return await new Promise<Server>((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(server as Server),
    );
  });
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] as string) as ServerJob;
  const server =
    job.framework === "fastify"
      ? await fastifyServer(job)
      : job.framework === "express"
        ? await expressServer(job)
        : await honoServer(job);
  let requests = 0;
  server.on("request", () => {
    requests++;
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.on("message", (message) => {
    if (message === "mark") {
      const cpu = process.cpuUsage();
      process.send?.({ cpuUs: cpu.user + cpu.system, requests } satisfies Mark);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send?.({ port });
}

await main();
