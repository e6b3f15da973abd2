/**
 * The HTTP layer from decision to response, under hostile conditions: 429
 * bodies the options describe in ways JSON cannot (a Buffer, a promise, a
 * value JSON writes as nothing), responses another middleware has already
 * started, and handlers that answer with Responses the adapter must not
 * break or contradict (`Response.error()`, an upstream's own rate-limit
 * headers).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import express5 from "express";
import express4 from "express4";
import { Hono } from "hono";
import Koa3 from "koa";
import Koa2 from "koa2";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { rateLimit as expressLimit } from "../src/adapters/express/index.js";
import { withRateLimit } from "../src/adapters/fetch/index.js";
import { rateLimit as honoLimit } from "../src/adapters/hono/index.js";
import { rateLimit as koaLimit } from "../src/adapters/koa/index.js";
import { rateLimit as nodeLimit } from "../src/adapters/node/index.js";
import { ConfigError } from "../src/core/errors.js";
import { appSpec, burst, fakeClock, type Options, type Server, send } from "./adapters/contract.js";
import { allHarnesses } from "./adapters/harnesses/all.js";
import { served } from "./adapters/harnesses/listen.js";

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
process.on("unhandledRejection", onUnhandled);
process.on("uncaughtException", onUnhandled);

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  unhandled.length = 0;
});
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
});

/** settle lets promise callbacks and a macrotask run, so a late rejection or 'finish' is seen. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("the 429 body option", () => {
  it("refuses at build a body JSON would garble or drop: a Buffer, a typed array, a promise, a toJSON giving nothing", () => {
    const policy = { capacity: 1, refillRate: 1, interval: 1000 };
    const bad: [string, unknown][] = [
      ["a Buffer", Buffer.from("slow down")],
      ["a Uint8Array", new Uint8Array([1, 2])],
      ["an ArrayBuffer", new ArrayBuffer(4)],
      ["a promise", Promise.resolve({ detail: "later" })],
      ["a toJSON returning undefined", { toJSON: () => undefined }],
    ];
    for (const [what, body] of bad) {
      expect(() => expressLimit({ policy, body: body as object }), what).toThrow(ConfigError);
      expect(() => expressLimit({ policy, body: body as object }), what).toThrow(/"body"/);
    }
  });
});

describe.each(allHarnesses.map((h) => [h.name, h] as const))("429 bodies: %s", (_, h) => {
  async function start(options: Options): Promise<Server> {
    const { store } = fakeClock();
    const server = await h.start(
      appSpec({ policy: burst, store, key: () => "k", ...options }, store),
    );
    servers.push(server);
    return server;
  }

  async function drain(server: Server): Promise<void> {
    for (let i = 0; i < 10; i++) expect((await send(server, "/")).status).toBe(200);
  }

  it("sends what an async body function resolves to, not {}", async () => {
    const server = await start({
      body: async (_request: unknown, decision: { retryAfter: number }) => ({
        error: "slow down",
        wait: decision.retryAfter,
      }),
    });
    await drain(server);
    const a = await send(server, "/");
    expect(a.status).toBe(429);
    expect(a.headers["retry-after"]).toBe("1");
    expect(a.headers["content-type"]).toMatch(/^application\/json/);
    expect(JSON.parse(a.body)).toEqual({ error: "slow down", wait: 1000 });
    // An async body that resolves to text is sent as text.
    const text = await start({ body: async () => "slow down" });
    await drain(text);
    const t = await send(text, "/");
    expect([t.status, t.headers["content-type"], t.body]).toEqual([
      429,
      "text/plain; charset=utf-8",
      "slow down",
    ]);
    await settle();
    expect(unhandled).toEqual([]);
  });

  it("a body function returning what JSON cannot write (undefined, a Buffer) is an error, never an empty or garbled 429", async () => {
    for (const body of [() => undefined, () => Buffer.from("slow down"), async () => undefined]) {
      const server = await start({ body });
      await drain(server);
      for (let i = 0; i < 2; i++) expect((await send(server, "/")).status).toBe(500);
    }
    await settle();
    expect(unhandled).toEqual([]);
  });
});

type Early = (req: IncomingMessage, res: ServerResponse) => void;

/** early is a middleware that starts the response itself (a stream, a progress line) before the limiter runs. */
const early: Early = (_req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.write("early ");
};

type Refund = (request: unknown, status: number) => boolean;
const small = { capacity: 2, refillRate: 1, interval: 60_000 };

/**
 * Apps where a middleware has sent the response head before the limiter,
 * with a `refund` that gives every request back: each charged request
 * must still be asked, once its response has been sent.
 */
function expressApp(express: typeof express5) {
  return async (refund: Refund): Promise<Server> => {
    const app = express();
    app.use((req, res, next) => {
      early(req, res);
      next();
    });
    app.use(expressLimit({ policy: small, refund }));
    app.get("/", (_req, res) => {
      res.end("done");
    });
    return served(app.listen(0, "127.0.0.1"));
  };
}

function koaApp(Koa: typeof Koa3) {
  return async (refund: Refund): Promise<Server> => {
    const app = new Koa();
    app.silent = true;
    app.use((ctx, next) => {
      early(ctx.req, ctx.res);
      return next();
    });
    app.use(koaLimit({ policy: small, refund }));
    app.use((ctx) => {
      ctx.body = "done";
    });
    return served(app.listen(0, "127.0.0.1"));
  };
}

async function nodeApp(refund: Refund): Promise<Server> {
  const limit = nodeLimit({ policy: small, refund });
  const server = createServer(async (req, res) => {
    early(req, res);
    if (!(await limit(req, res))) return;
    res.end("done");
  });
  return served(server.listen(0, "127.0.0.1"));
}

const startedApps: [string, (refund: Refund) => Promise<Server>][] = [
  ["express 5", expressApp(express5)],
  ["express 4", expressApp(express4)],
  ["koa 3", koaApp(Koa3)],
  ["koa 2", koaApp(Koa2)],
  ["node", nodeApp],
];

describe.each(startedApps)("a response another middleware started: %s", (_, startApp) => {
  it("asks refund about every request it charged, so refunded requests are never limited", async () => {
    const asked: number[] = [];
    const server = await startApp((_request, status) => {
      asked.push(status);
      return true;
    });
    servers.push(server);
    for (let i = 0; i < 5; i++) {
      const a = await send(server, "/");
      expect(a.body).toBe("early done");
      await settle();
    }
    expect(asked).toEqual([200, 200, 200, 200, 200]);
    expect(unhandled).toEqual([]);
  });
});

describe("Responses a handler builds itself", () => {
  const policy = { name: "edge", capacity: 5, refillRate: 1, interval: 60_000 };
  const key = () => "k";

  it("passes Response.error() through floodgate/fetch and Hono instead of throwing", async () => {
    const fetchHandler = withRateLimit(() => Response.error(), { policy, key });
    const r = await fetchHandler(new Request("http://localhost/"));
    expect(r.type).toBe("error");
    const app = new Hono();
    app.use(honoLimit({ policy: { ...policy, name: "edge2" }, key }));
    app.get("/", () => Response.error());
    const h = await app.request("/");
    expect(h.type).toBe("error");
  });

  it("on Hono without Node, this limiter's headers replace an upstream's own on a proxied Response", async () => {
    const upstream = () =>
      new Response("from upstream", {
        headers: {
          "x-ratelimit-limit": "5000",
          "x-ratelimit-remaining": "4999",
          "x-ratelimit-reset": "1",
          "ratelimit-policy": '"upstream";q=5000;w=3600',
          ratelimit: '"upstream";r=4999;t=3600',
        },
      });
    const app = new Hono();
    app.use(honoLimit({ policy: { ...policy, name: "edge3" }, key }));
    app.get("/", upstream);
    const h = await app.request("/");
    expect(await h.text()).toBe("from upstream");
    expect(h.headers.get("x-ratelimit-limit")).toBe("5");
    expect(h.headers.get("x-ratelimit-remaining")).toBe("4");
    expect(h.headers.get("ratelimit-policy")).toBe('"edge3";q=5;w=300');
    expect(h.headers.get("ratelimit")).toBe('"edge3";r=4;t=60');
    // floodgate/fetch already does so: the same answer through it.
    const f = withRateLimit(upstream, { policy: { ...policy, name: "edge4" }, key });
    const r = await f(new Request("http://localhost/"));
    expect(r.headers.get("x-ratelimit-remaining")).toBe("4");
    expect(r.headers.get("ratelimit")).toBe('"edge4";r=4;t=60');
  });
});
