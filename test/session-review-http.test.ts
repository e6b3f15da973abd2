/**
 * Review of the day's HTTP-layer changes: what the review found wrong,
 * each case failing before its fix.
 *
 * - The maxHeadersCount guard (src/adapters/incoming.ts) took an HTTP/2
 *   request for one whose header lines Node had dropped whenever the
 *   server's `maxHeadersCount` (an HTTP/1 setting, as set on an
 *   `http2.createSecureServer({ allowHTTP1 })` server for its HTTP/1
 *   clients) was below the request's header count, pseudo-headers
 *   included: the proxy's X-Forwarded-For read as absent and every client
 *   shared the proxy's bucket. HTTP/2 never drops header lines (a list
 *   beyond maxHeaderListPairs resets the stream).
 * - FLOODGATE_FORWARDED_NOT_TRUSTED: a middleware and its route overrides
 *   share one Warnings, and the first request through a route with a
 *   custom key turned the watch off for all of them: a proxy header
 *   reaching the default-key middleware later was never reported.
 * - Fastify: a route's `config.rateLimit.warnings` (typed, and accepted)
 *   was ignored and never validated.
 * - The logger's `loggable` threw on an error whose prototype has a `code`
 *   (or `name`) getter without a setter, as DOMException has (a store call
 *   aborted by AbortSignal.timeout(), a fetch-based Redis client): the store
 *   error was logged as a floodgate listener failing, with none of its fields.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import http2 from "node:http2";
import { Writable } from "node:stream";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import Koa from "koa";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { rateLimit as expressRateLimit } from "../src/adapters/express/index.js";
import floodgate from "../src/adapters/fastify/index.js";
import { rateLimit as honoRateLimit } from "../src/adapters/hono/index.js";
import { rateLimit as koaRateLimit } from "../src/adapters/koa/index.js";
import { rateLimit as nodeRateLimit } from "../src/adapters/node/index.js";
import { LimiterEvents } from "../src/events.js";
import { keys } from "../src/http/keys.js";
import { attachLogger, loggable } from "../src/logger.js";
import { type Closer, listenLocal } from "./helpers/local-server.js";
import { heard, tick } from "./helpers/warnings.js";

const roomy = { name: "roomy", capacity: 1_000_000_000, refillRate: 1, interval: 60_000 };

const closers: Closer[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** listen starts `server` on a loopback port, closed after the test, and resolves the port. */
async function listen(server: Server | http2.Http2Server): Promise<number> {
  return (await listenLocal(server, closers)).port;
}

/** h2get sends one HTTP/2 request (cleartext) with `headers` and resolves its status. */
function h2get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on("error", reject);
    const stream = client.request({ ":path": "/", ...headers });
    let status = 0;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.on("data", () => {});
    stream.on("end", () => {
      client.close();
      resolve(status);
    });
    stream.on("error", reject);
    stream.end();
  });
}

describe("the maxHeadersCount guard on HTTP/2 requests", () => {
  /** byOneHop is node:http's middleware keyed by one trusted hop, and the keys it gave, in order. */
  function byOneHop() {
    const seen: string[] = [];
    const byProxy = keys.ip({ trustProxy: 1 });
    const limit = nodeRateLimit({
      policy: roomy,
      key: (req, reader) => {
        const key = byProxy(req, reader);
        seen.push(key);
        return key;
      },
    });
    return { seen, limit };
  }

  it("keeps a proxy's X-Forwarded-For of an HTTP/2 request: maxHeadersCount is HTTP/1's, and HTTP/2 drops no lines", async () => {
    const { seen, limit } = byOneHop();
    const server = http2.createServer((req, res) => {
      const r = req as unknown as IncomingMessage;
      const s = res as unknown as ServerResponse;
      limit(r, s).then((ok) => ok && s.end("ok"));
    });
    // As set for the HTTP/1 clients of an allowHTTP1 server.
    (server as unknown as { maxHeadersCount: number }).maxHeadersCount = 8;
    const port = await listen(server);
    const headers: Record<string, string> = { "x-forwarded-for": "203.0.113.7" };
    for (let i = 0; i < 8; i++) headers[`x-extra-${i}`] = "v";
    expect(await h2get(port, headers)).toBe(200);
    expect(seen).toEqual(["203.0.113.7"]);
  });

  it("still reads a proxy header as absent on HTTP/1 when the server's maxHeadersCount was reached", async () => {
    const { seen, limit } = byOneHop();
    const server = createServer((req, res) => {
      limit(req, res).then((ok) => ok && res.end("ok"));
    });
    server.maxHeadersCount = 20;
    const port = await listen(server);
    const headers: Record<string, string> = { "x-forwarded-for": "203.0.113.7" };
    for (let i = 0; i < 24; i++) headers[`x-extra-${i}`] = "v";
    expect((await fetch(`http://127.0.0.1:${port}/`, { headers })).status).toBe(200);
    expect(
      (await fetch(`http://127.0.0.1:${port}/`, { headers: { "x-forwarded-for": "203.0.113.7" } }))
        .status,
    ).toBe(200);
    expect(seen).toEqual(["127.0.0.1", "203.0.113.7"]);
  });
});

const xff = { "x-forwarded-for": "192.0.2.1" };

/** Get sends GET `path` with the X-Forwarded-For of `xff` and resolves its status. */
type Get = (path: string) => Promise<number>;

/** fetchFrom is Get by fetch, against the server at `url`. */
const fetchFrom =
  (url: string): Get =>
  async (path) =>
    (await fetch(`${url}${path}`, { headers: xff })).status;

/**
 * watchSurvives starts an app (`start` resolves how to send it a request)
 * and sends the proxy header first to `quiet`, a route that decides the
 * warning is not its business (nothing is reported), then twice to `/`, the
 * plugin's or middleware's own check: FLOODGATE_FORWARDED_NOT_TRUSTED, once.
 */
async function watchSurvives(start: () => Promise<Get> | Get, quiet = "/login"): Promise<void> {
  const seen = heard();
  try {
    const get = await start();
    expect(await get(quiet)).toBe(200);
    await tick();
    expect(seen.codes).toEqual([]);
    expect(await get("/")).toBe(200);
    expect(await get("/")).toBe(200);
    await tick();
    expect(seen.codes).toEqual(["FLOODGATE_FORWARDED_NOT_TRUSTED"]);
  } finally {
    seen.stop();
  }
}

/** fastifyWith is a Fastify app with the plugin, `/` and a route at `path` with `rateLimit` in its config. */
async function fastifyWith(path: string, rateLimit: object): Promise<Get> {
  const app = Fastify();
  closers.push(() => app.close());
  await app.register(floodgate, { policy: roomy });
  app.get(path, { config: { rateLimit } }, async () => "ok");
  app.get("/", async () => "ok");
  return async (url) => (await app.inject({ url, headers: xff })).statusCode;
}

describe("FLOODGATE_FORWARDED_NOT_TRUSTED with route overrides of their own key", () => {
  // The custom key does not key by the socket: nothing to report for it.
  it("node: a first request through a custom-key route does not end the watch of the default-key check", () =>
    watchSurvives(async () => {
      const limit = nodeRateLimit({ policy: roomy });
      const login = limit.route({ key: () => "user-1" });
      const server = createServer((req, res) => {
        (req.url === "/login" ? login : limit)(req, res).then((ok) => ok && res.end("ok"));
      });
      return fetchFrom(`http://127.0.0.1:${await listen(server)}`);
    }));

  it("express: the same", () =>
    watchSurvives(async () => {
      const limit = expressRateLimit({ policy: roomy });
      const app = express();
      app.get("/login", limit.route({ key: () => "user-1" }), (_req, res) => {
        res.send("ok");
      });
      app.use(limit);
      app.get("/", (_req, res) => {
        res.send("ok");
      });
      return fetchFrom(`http://127.0.0.1:${await listen(createServer(app))}`);
    }));

  it("koa: the same", () =>
    watchSurvives(async () => {
      const limit = koaRateLimit({ policy: roomy });
      const login = limit.route({ key: () => "user-1" });
      const app = new Koa();
      app.use((ctx, next) => (ctx.path === "/login" ? login(ctx, next) : limit(ctx, next)));
      app.use((ctx) => {
        ctx.body = "ok";
      });
      return fetchFrom(`http://127.0.0.1:${await listen(createServer(app.callback()))}`);
    }));

  it("hono: the same", () =>
    watchSurvives(() => {
      const limit = honoRateLimit({
        policy: roomy,
        getConnInfo: () => ({ remote: { address: "127.0.0.1" } }),
      });
      const app = new Hono();
      app.get("/login", limit.route({ key: () => "user-1" }), (c) => c.text("ok"));
      app.get("/", limit, (c) => c.text("ok"));
      return async (path) => (await app.request(path, { headers: xff })).status;
    }));

  it("fastify: a route's config.rateLimit.key does not end the plugin's watch", () =>
    watchSurvives(() => fastifyWith("/login", { key: () => "user-1" })));

  it("a custom key on the middleware itself still turns the warning off", async () => {
    const seen = heard();
    try {
      const limit = nodeRateLimit({ policy: roomy, key: () => "k" });
      const server = createServer((req, res) => {
        limit(req, res).then((ok) => ok && res.end("ok"));
      });
      const url = `http://127.0.0.1:${await listen(server)}`;
      for (let i = 0; i < 2; i++) expect((await fetch(url, { headers: xff })).status).toBe(200);
      await tick();
      expect(seen.codes).toEqual([]);
    } finally {
      seen.stop();
    }
  });
});

describe("fastify: a route's config.rateLimit.warnings", () => {
  // The plugin's own routes still report it.
  it("warnings: false in a route's config turns the warnings off for that route", () =>
    watchSurvives(() => fastifyWith("/quiet", { warnings: false }), "/quiet"));

  it("a route's warnings that is no switch is refused when the route is added", async () => {
    const app = Fastify();
    closers.push(() => app.close());
    await app.register(floodgate, { policy: roomy });
    expect(() =>
      app.get("/bad", { config: { rateLimit: { warnings: "off" as never } } }, async () => "ok"),
    ).toThrow(/warnings/);
  });
});

describe("the logger's loggable, on errors with getter-only fields", () => {
  it("keeps a DOMException's name, message and code, also as a cause, without throwing", () => {
    const timeout = new DOMException("The operation was aborted due to timeout", "TimeoutError");
    const safe = loggable(timeout) as DOMException;
    expect(safe).toBeInstanceOf(DOMException);
    expect([safe.name, safe.message, safe.code]).toEqual([
      "TimeoutError",
      "The operation was aborted due to timeout",
      23,
    ]);
    const outer = loggable(
      new Error("store call failed", { cause: AbortSignal.abort().reason }),
    ) as {
      cause: DOMException;
    };
    expect(outer.cause.name).toBe("AbortError");
  });

  it("logs a store error that is a DOMException as the store error it is", () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const events = new LimiterEvents();
    attachLogger(events, pino(sink), 0, () => 0);
    events.emit(
      "store-error",
      new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      "timeout",
    );
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const kinds = lines.map((l) => l.floodgate);
      expect(kinds).toEqual(["store-timeout"]);
      const failed = lines[0] as { err: Record<string, unknown> };
      expect(failed.err).toMatchObject({ message: "The operation was aborted due to timeout" });
    });
  });
});
