import { execFileSync } from "node:child_process";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { parseRateLimitList } from "../../../test/ratelimit-fields.js";
import type { Decision } from "../../core/decision.js";
import { ConfigError } from "../../core/errors.js";
import { keys } from "../../http/keys.js";
import { RateLimiter } from "../../limiter.js";
import { MemoryStore } from "../../stores/memory-store.js";
import floodgate, { type FastifyRateLimitOptions } from "./index.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const T0 = 1_700_000_000_000;

let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((app) => app.close()));
  apps = [];
});

/** demo builds an app with `/` and `/data` limited and `/health` not, on a clock the test moves. */
async function demo(options: Partial<FastifyRateLimitOptions> = {}) {
  const clock = { now: T0 };
  const app = Fastify();
  apps.push(app);
  const policy =
    options.policies === undefined && options.policy === undefined ? { policy: burst } : {};
  await app.register(floodgate, {
    ...policy,
    store: new MemoryStore({ clock: () => clock.now }),
    ...options,
  });
  app.get("/", async (request) => ({
    message: "Hello, world!",
    remaining: request.rateLimit?.remaining,
  }));
  app.get("/data", async () => ({ data: "Some important information" }));
  app.get("/health", { config: { rateLimit: false } }, async (request) => ({
    status: "ok",
    decided: request.rateLimit !== null,
  }));
  return { app, clock };
}

describe("floodgate/fastify", () => {
  it("answers the tutorial's burst: 10 x 200 (remaining 9..0), then 429 with Retry-After 1 and the JSON detail", async () => {
    const { app, clock } = await demo();
    for (let i = 9; i >= 0; i--) {
      const r = await app.inject("/data");
      expect(r.statusCode).toBe(200);
      expect(r.json()).toEqual({ data: "Some important information" });
      expect(r.headers).toMatchObject({
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": String(i),
        "x-ratelimit-reset": String((T0 + 1000) / 1000),
      });
    }
    for (let i = 0; i < 5; i++) {
      const r = await app.inject("/data");
      expect(r.statusCode).toBe(429);
      expect(r.headers["retry-after"]).toBe("1");
      expect(r.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(r.json()).toEqual({ detail: "Too many requests. Try again later." });
      expect(r.headers["x-ratelimit-remaining"]).toBe("0");
    }
    // Three seconds later, 6 tokens are back.
    clock.now = T0 + 3000;
    const later = await app.inject("/data");
    expect(later.statusCode).toBe(200);
    expect(later.headers["x-ratelimit-remaining"]).toBe("5");
  });

  it("sends IETF RateLimit-Policy and RateLimit as valid structured fields", async () => {
    const { app } = await demo({
      policies: [burst, { name: "daily", capacity: 1000, refillRate: 1000, interval: "1d" }],
    });
    const r = await app.inject("/");
    expect(parseRateLimitList(r.headers["ratelimit-policy"] as string)).toEqual([
      { id: "burst", params: { q: 10, w: 5 } },
      { id: "daily", params: { q: 1000, w: 86_400 } },
    ]);
    expect(parseRateLimitList(r.headers.ratelimit as string)).toEqual([
      { id: "burst", params: { r: 9, t: 1 } },
      { id: "daily", params: { r: 999, t: 86_400 } },
    ]);
  });

  it("sends only the legacy headers, or none, when told", async () => {
    const legacy = (await demo({ headers: "legacy" })).app;
    const r = await legacy.inject("/");
    expect(r.headers["x-ratelimit-remaining"]).toBe("9");
    expect(r.headers.ratelimit).toBeUndefined();
    const none = (
      await demo({ headers: false, policy: { capacity: 1, refillRate: 1, interval: 1000 } })
    ).app;
    const first = await none.inject("/");
    expect(Object.keys(first.headers).filter((h) => h.includes("ratelimit"))).toEqual([]);
    const denied = await none.inject("/");
    expect(denied.statusCode).toBe(429);
    expect(denied.headers["retry-after"]).toBe("1");
  });

  it("gives the handler its decision, and never limits a route with rateLimit: false", async () => {
    const { app } = await demo();
    expect((await app.inject("/")).json()).toMatchObject({ remaining: 9 });
    for (let i = 0; i < 30; i++) {
      const r = await app.inject("/health");
      expect(r.statusCode).toBe(200);
      expect(r.json()).toEqual({ status: "ok", decided: false });
      expect(r.headers["x-ratelimit-remaining"]).toBeUndefined();
    }
  });

  it("holds a route to its own config.rateLimit, apart from the global limit", async () => {
    const { app } = await demo();
    const login = { policy: { name: "login", capacity: 2, refillRate: 1, interval: 60_000 } };
    app.post("/login", { config: { rateLimit: login } }, async () => ({ ok: true }));
    app.post("/signup", { config: { rateLimit: login } }, async () => ({ ok: true }));
    app.get("/report", { config: { rateLimit: { cost: 5 } } }, async () => ({ ok: true }));
    expect((await app.inject({ method: "POST", url: "/login" })).statusCode).toBe(200);
    // The same config object on two routes: one shared bucket.
    expect((await app.inject({ method: "POST", url: "/signup" })).statusCode).toBe(200);
    const denied = await app.inject({ method: "POST", url: "/login" });
    expect(denied.statusCode).toBe(429);
    expect(denied.headers["retry-after"]).toBe("60");
    expect(denied.headers["ratelimit-policy"]).toBe('"login";q=2;w=120');
    // The global bucket is untouched by /login, and /report spends 5 of it.
    expect((await app.inject("/report")).headers["x-ratelimit-remaining"]).toBe("5");
    expect((await app.inject("/")).headers["x-ratelimit-remaining"]).toBe("4");
  });

  it("adds a route's own limit on top of the global one with stack: true: both charged, the stricter answers", async () => {
    const { app, clock } = await demo();
    const login = {
      stack: true,
      policy: { name: "login", capacity: 2, refillRate: 1, interval: 60_000 },
    };
    app.post("/login", { config: { rateLimit: login } }, async (request) => ({
      policy: request.rateLimit?.policy,
      remaining: request.rateLimit?.remaining,
    }));
    const first = await app.inject({ method: "POST", url: "/login" });
    expect(first.json()).toEqual({ policy: "login", remaining: 1 });
    expect(first.headers["ratelimit-policy"]).toBe('"burst";q=10;w=5, "login";q=2;w=120');
    expect(first.headers.ratelimit).toBe('"burst";r=9;t=1, "login";r=1;t=60');
    expect((await app.inject({ method: "POST", url: "/login" })).statusCode).toBe(200);
    const denied = await app.inject({ method: "POST", url: "/login" });
    expect(denied.statusCode).toBe(429);
    expect(denied.headers["retry-after"]).toBe("60");
    // /login spends the global bucket too, the denied third included: the
    // global limit runs first and admitted it, as with any stacked middleware.
    expect((await app.inject("/")).headers["x-ratelimit-remaining"]).toBe("6");
    // The global limit still holds /login once the global bucket is empty.
    clock.now += 60_000;
    for (let i = 0; i < 10; i++) await app.inject("/data");
    const global = await app.inject({ method: "POST", url: "/login" });
    expect(global.statusCode).toBe(429);
    expect(global.headers["retry-after"]).toBe("1");
  });

  it("refuses a stacked route limit that would charge the global policies twice", async () => {
    const { app } = await demo();
    expect(() =>
      app.get("/a", { config: { rateLimit: { stack: true, cost: 2 } } }, async () => 1),
    ).toThrow(/"config.rateLimit.stack" needs the route's own policy or policies/);
    expect(() =>
      app.get("/b", { config: { rateLimit: { stack: true, policy: burst } } }, async () => 1),
    ).toThrow(/"config.rateLimit.policy" names a policy of the plugin's own limit/);
    expect(() =>
      app.get("/c", { config: { rateLimit: { stack: "yes" as never } } }, async () => 1),
    ).toThrow(/"config.rateLimit.stack" must be true or false/);
  });

  it("takes stack: undefined in a route's config as stack left out", async () => {
    const { app } = await demo();
    app.get("/u", { config: { rateLimit: { stack: undefined, cost: 4 } } }, async () => 1);
    const r = await app.inject("/u");
    expect(r.statusCode).toBe(200);
    expect(r.headers["x-ratelimit-remaining"]).toBe("6");
  });

  it("skips what skip says", async () => {
    const { app } = await demo({ skip: (request) => request.headers["x-internal"] === "yes" });
    for (let i = 0; i < 20; i++) {
      const r = await app.inject({ url: "/", headers: { "x-internal": "yes" } });
      expect(r.statusCode).toBe(200);
      expect(r.headers["x-ratelimit-limit"]).toBeUndefined();
    }
    expect((await app.inject("/")).headers["x-ratelimit-remaining"]).toBe("9");
  });

  it("keys by an API key header, so one address with two keys has two buckets", async () => {
    const { app } = await demo({ key: keys.header("x-api-key") });
    for (let i = 0; i < 10; i++) await app.inject({ url: "/", headers: { "x-api-key": "a" } });
    expect((await app.inject({ url: "/", headers: { "x-api-key": "a" } })).statusCode).toBe(429);
    expect((await app.inject({ url: "/", headers: { "x-api-key": "b" } })).statusCode).toBe(200);
    expect((await app.inject("/")).headers["x-ratelimit-remaining"]).toBe("9");
  });

  it("keys by the socket, ignoring a spoofed X-Forwarded-For unless a proxy is trusted", async () => {
    const spoof = (app: FastifyInstance, ip: string) =>
      app.inject({ url: "/", remoteAddress: "10.0.0.1", headers: { "x-forwarded-for": ip } });
    const { app } = await demo();
    for (let i = 0; i < 10; i++) await spoof(app, `6.6.6.${i}`);
    expect((await spoof(app, "6.6.6.99")).statusCode).toBe(429);
    const behind = (await demo({ key: keys.ip({ trustProxy: ["10.0.0.0/8"] }) })).app;
    for (let i = 0; i < 10; i++) await spoof(behind, "1.2.3.4");
    expect((await spoof(behind, "1.2.3.4")).statusCode).toBe(429);
    expect((await spoof(behind, "5.6.7.8")).statusCode).toBe(200);
  });

  it("holds each plan to its tier's policies", async () => {
    const free = [{ name: "free", capacity: 2, refillRate: 1, interval: 1000 }];
    const paid = [{ name: "paid", capacity: 100, refillRate: 50, interval: 1000 }];
    const { app } = await demo({
      policies: (request) => (request.headers["x-plan"] === "paid" ? paid : free),
    });
    const paidReply = await app.inject({ url: "/", headers: { "x-plan": "paid" } });
    expect(paidReply.headers["ratelimit-policy"]).toBe('"paid";q=100;w=2');
    expect(paidReply.headers["x-ratelimit-remaining"]).toBe("99");
    await app.inject("/");
    await app.inject("/");
    expect((await app.inject("/")).statusCode).toBe(429);
    expect((await app.inject({ url: "/", headers: { "x-plan": "paid" } })).statusCode).toBe(200);
  });

  it("in shadow mode blocks no one but still decides, reports and counts", async () => {
    const limited: Decision[] = [];
    const { app } = await demo({ mode: "shadow", onLimited: (_, d) => limited.push(d) });
    for (let i = 0; i < 15; i++) {
      const r = await app.inject("/");
      expect(r.statusCode).toBe(200);
      expect(r.headers["x-ratelimit-remaining"]).toBeUndefined();
      expect(r.json().remaining).toBe(Math.max(0, 9 - i));
    }
    expect(limited).toHaveLength(5);
    expect(limited[0]).toMatchObject({ allowed: false, policy: "burst" });
  });

  it("calls onLimited with the request and decision before each 429", async () => {
    const seen: string[] = [];
    const { app } = await demo({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      onLimited: (request, d) => seen.push(`${request.url} ${d.retryAfter}`),
    });
    await app.inject("/data");
    await app.inject("/data");
    await app.inject("/");
    expect(seen).toEqual(["/data 1000", "/ 1000"]);
  });

  it("lets the limited response be changed: status and body, or a respond function", async () => {
    const one = { capacity: 1, refillRate: 1, interval: 1000 };
    const custom = (await demo({ policy: one, statusCode: 503, body: { error: "busy" } })).app;
    await custom.inject("/");
    const r = await custom.inject("/");
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: "busy" });
    expect(r.headers["retry-after"]).toBe("1");

    const own = (
      await demo({
        policy: one,
        respond: (_, reply, d) =>
          reply.code(429).type("text/plain").send(`wait ${d.retryAfter} ms`),
      })
    ).app;
    await own.inject("/");
    const mine = await own.inject("/");
    expect(mine.body).toBe("wait 1000 ms");
    expect(mine.headers["x-ratelimit-remaining"]).toBe("0");

    const asyncOwn = (
      await demo({
        policy: one,
        respond: async (_, reply) => reply.code(429).send({ later: true }),
      })
    ).app;
    await asyncOwn.inject("/");
    expect((await asyncOwn.inject("/")).json()).toEqual({ later: true });

    const throwing = (
      await demo({
        policy: one,
        key: async () => "k",
        respond: () => {
          throw new Error("respond failed");
        },
      })
    ).app;
    await throwing.inject("/");
    const failed = await throwing.inject("/");
    expect(failed.statusCode).toBe(500);
    expect(failed.json().message).toBe("respond failed");

    const silent = (await demo({ policy: one, respond: () => undefined })).app;
    await silent.inject("/");
    const broken = await silent.inject("/");
    expect(broken.statusCode).toBe(500);
    expect(broken.json().message).toMatch(/respond option returned without sending/);
  });

  it("keys by the user an auth hook set, when checking in preHandler", async () => {
    const { app } = await demo({
      hook: "preHandler",
      key: async (request: FastifyRequest) => (request as FastifyRequest & { user: string }).user,
    });
    app.addHook("preValidation", async (request) => {
      (request as FastifyRequest & { user: string }).user = String(request.headers.authorization);
    });
    app.get("/me", async (request) => ({ remaining: request.rateLimit?.remaining }));
    for (let i = 0; i < 10; i++)
      await app.inject({ url: "/me", headers: { authorization: "alice" } });
    expect((await app.inject({ url: "/me", headers: { authorization: "alice" } })).statusCode).toBe(
      429,
    );
    expect((await app.inject({ url: "/me", headers: { authorization: "bob" } })).json()).toEqual({
      remaining: 9,
    });
  });

  it("sends errors of the user's functions to Fastify's error handler", async () => {
    const { app } = await demo({
      key: (request) => {
        if (request.headers.boom) throw new Error("key failed");
        return "k";
      },
      cost: async (request) => (request.headers.cost ? Number(request.headers.cost) : 1),
    });
    expect((await app.inject({ url: "/", headers: { boom: "1" } })).statusCode).toBe(500);
    const tooMuch = await app.inject({ url: "/", headers: { cost: "11" } });
    expect(tooMuch.statusCode).toBe(500);
    expect(tooMuch.json().message).toMatch(/cost 11 exceeds policy "burst" capacity 10/);
    expect((await app.inject("/")).statusCode).toBe(200);
  });

  it("works with a limiter the app built itself (for its failure mode and metrics)", async () => {
    const limiter = new RateLimiter({ policy: burst });
    const app = Fastify();
    apps.push(app);
    await app.register(floodgate, { limiter });
    app.get("/", async () => "ok");
    expect((await app.inject("/")).headers["x-ratelimit-remaining"]).toBe("9");
  });

  it("refuses bad options when registered and bad route options when the route is added", async () => {
    const bad = Fastify();
    apps.push(bad);
    bad.register(floodgate, { policy: burst, windowMs: 1000 } as FastifyRateLimitOptions);
    await expect(bad.ready()).rejects.toThrow(/"windowMs" is not a rate limit option/);

    const hook = Fastify();
    apps.push(hook);
    hook.register(floodgate, {
      policy: burst,
      hook: "onSend",
    } as unknown as FastifyRateLimitOptions);
    await expect(hook.ready()).rejects.toThrow(
      /"hook" must be one of onRequest, preValidation, preHandler/,
    );

    const { app } = await demo();
    expect(() =>
      app.get(
        "/x",
        { config: { rateLimit: { policy: { ...burst, capacity: 5 } } } },
        async () => 1,
      ),
    ).toThrow(/option "config.rateLimit.policy" names a policy .* \(route GET \/x\)/);
    expect(() => app.get("/y", { config: { rateLimit: { cost: 0 } } }, async () => 1)).toThrow(
      ConfigError,
    );
    expect(() =>
      app.get("/z", { config: { rateLimit: { hook: "onSend" } as never } }, async () => 1),
    ).toThrow(/"config.rateLimit.hook" must be one of/);
    expect(() => app.get("/w", { config: { rateLimit: "off" as never } }, async () => 1)).toThrow(
      /"config.rateLimit" must be an object of rate limit options, or false/,
    );
  });

  it("can be registered in two contexts, each limiting its own routes", async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(async (api) => {
      await api.register(floodgate, {
        policy: { name: "api", capacity: 1, refillRate: 1, interval: 1000 },
      });
      api.get("/api", async () => "api");
    });
    await app.register(async (web) => {
      await web.register(floodgate, {
        policy: { name: "web", capacity: 5, refillRate: 1, interval: 1000 },
        prefix: "/ignored",
      } as FastifyRateLimitOptions);
      web.get("/web", async () => "web");
    });
    app.get("/open", async () => "open");
    expect((await app.inject("/api")).headers["ratelimit-policy"]).toBe('"api";q=1;w=1');
    expect((await app.inject("/api")).statusCode).toBe(429);
    expect((await app.inject("/web")).headers["ratelimit-policy"]).toBe('"web";q=5;w=5');
    expect((await app.inject("/open")).headers["ratelimit-policy"]).toBeUndefined();
  });

  it("answers the burst over a real socket", async () => {
    const { app } = await demo();
    await app.listen({ port: 0, host: "127.0.0.1" });
    const address = app.server.address();
    if (typeof address !== "object" || address === null) throw new Error("no address");
    const url = `http://127.0.0.1:${address.port}/data`;
    const statuses: number[] = [];
    const remaining: string[] = [];
    for (let i = 0; i < 15; i++) {
      const r = await fetch(url);
      statuses.push(r.status);
      remaining.push(r.headers.get("x-ratelimit-remaining") ?? "");
      if (r.status === 429) {
        expect(r.headers.get("retry-after")).toBe("1");
        expect(await r.json()).toEqual({ detail: "Too many requests. Try again later." });
      } else {
        await r.arrayBuffer();
      }
    }
    expect(statuses).toEqual([...Array(10).fill(200), ...Array(5).fill(429)]);
    expect(remaining.slice(0, 10)).toEqual(["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
  });

  it("never loads fastify when floodgate or floodgate/fastify is imported", () => {
    const script = `
      await import("./src/index.ts");
      await import("./src/adapters/fastify/index.ts");
      const { createRequire } = await import("node:module");
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify(loaded.filter((f) => f.includes("/node_modules/fastify/"))));
    `;
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: new URL("../../..", import.meta.url).pathname,
        encoding: "utf8",
      },
    );
    expect(JSON.parse(out.trim())).toEqual([]);
  });
});
