// The adapter contract: one suite every framework adapter runs through its
// framework's real server on 127.0.0.1, so behaviour cannot drift between
// frameworks. A harness builds the same app in its framework (the tutorial's
// routes plus an override, an opt-out and a stacked limiter) and says how its
// framework reads a header and the user an auth middleware set.
import { afterEach, describe, expect, it } from "vitest";
import type { Decision } from "../../src/core/decision.js";
import type { PolicyInput } from "../../src/core/policy.js";
import { keys } from "../../src/http/keys.js";
import { RateLimiter } from "../../src/limiter.js";
import { MemoryStore } from "../../src/stores/memory-store.js";
import { parseRateLimitList } from "../ratelimit-fields.js";

/** Kit reads a framework's request: what the suite's own key, skip and policies functions need. */
export interface Kit {
  header(request: never, name: string): string | undefined;
  /** user is the id the harness's auth middleware took from `Authorization: Bearer <id>`. */
  user(request: never): string | undefined;
}

/** Options are an adapter's options, built by the suite with the harness's Kit. */
export type Options = Record<string, unknown>;

/** Limit is one limiter on a route: the app's global one, a route override of it, or a limiter of its own stacked after it. */
export type Limit = "global" | { readonly route: Options } | { readonly own: Options };

/** Reply names a route's JSON body; `decision` shows the framework's view of the decision. */
export type Reply = "hello" | "data" | "health" | "ok" | "decision" | "password";

export interface Route {
  readonly method: "GET" | "POST" | "OPTIONS";
  readonly path: string;
  /** The limiters in order; empty: not limited. */
  readonly limits: readonly Limit[];
  readonly reply: Reply;
}

export interface AppSpec {
  readonly global: Options;
  readonly routes: readonly Route[];
  /** Run the auth middleware (and, on Fastify, the limit after it). */
  readonly auth: boolean;
}

export interface Server {
  readonly url: string;
  close(): Promise<void>;
  /** The global middleware's limiter, where the adapter hands it out (all but Fastify and Fetch). */
  readonly limiter?: RateLimiter;
}

export interface Harness {
  readonly name: string;
  readonly kit: Kit;
  /** start serves the app on 127.0.0.1 at a free port. */
  start(spec: AppSpec): Promise<Server>;
}

export const T0 = 1_700_000_000_000;
export const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 } as const;
const signup = { name: "signup", capacity: 2, refillRate: 1, interval: 60_000 } as const;
const strict = { name: "strict", capacity: 2, refillRate: 1, interval: 60_000 } as const;
export const DETAIL = { detail: "Too many requests. Try again later." };

/** replyBody is the JSON body of a route: the tutorial's, or the decision the handler saw. */
export function replyBody(reply: Reply, decision: Decision | null | undefined): unknown {
  switch (reply) {
    case "hello":
      return { message: "Hello, world!" };
    case "data":
      return { data: "Some important information" };
    case "health":
      return { status: "ok" };
    case "ok":
      return { ok: true };
    case "password":
      return { checked: true };
    case "decision":
      return decision == null
        ? { decision: null }
        : { allowed: decision.allowed, remaining: decision.remaining, policy: decision.policy };
  }
}

/** PASSWORD is the one password the "password" route accepts. */
export const PASSWORD = "open sesame";

/** replyStatus is a route's status: the "password" route answers 401 unless `x-password` is PASSWORD. */
export function replyStatus(reply: Reply, password: string | undefined): number {
  return reply !== "password" || password === PASSWORD ? 200 : 401;
}

/** userOf is the auth middleware's rule: `Authorization: Bearer <id>` names the user. */
export function userOf(authorization: string | undefined): string | undefined {
  return authorization?.startsWith("Bearer ") ? authorization.slice(7) : undefined;
}

/** A fake clock and a store on it, so refills happen when the test says. */
export function fakeClock() {
  const clock = { now: T0 };
  return { clock, store: new MemoryStore({ clock: () => clock.now }) };
}

/** appSpec is the suite's app: the tutorial's routes, an override, an opt-out and a stacked limit. */
export function appSpec(global: Options, store: MemoryStore, auth = false): AppSpec {
  return {
    global,
    auth,
    routes: [
      { method: "GET", path: "/", limits: ["global"], reply: "hello" },
      { method: "GET", path: "/data", limits: ["global"], reply: "data" },
      { method: "GET", path: "/decision", limits: ["global"], reply: "decision" },
      { method: "GET", path: "/health", limits: [], reply: "health" },
      { method: "OPTIONS", path: "/", limits: ["global"], reply: "ok" },
      { method: "GET", path: "/report", limits: [{ route: { cost: 5 } }], reply: "ok" },
      { method: "POST", path: "/signup", limits: [{ route: { policy: signup } }], reply: "ok" },
      {
        method: "POST",
        path: "/login",
        limits: ["global", { own: { policy: strict, store } }],
        reply: "ok",
      },
    ],
  };
}

/** Reply is what the suite sees of a response: status, lower-case headers, body text. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** send makes one request over a real socket and reads the whole answer. */
export async function send(
  server: Server,
  path: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const r = await fetch(server.url + path, init);
  const headers: Record<string, string> = {};
  r.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { status: r.status, headers, body: await r.text() };
}

/** RATE_HEADERS are the headers floodgate writes, the ones that must match across frameworks. */
export const RATE_HEADERS = [
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "ratelimit-policy",
  "ratelimit",
  "retry-after",
] as const;

/** rateHeaders picks floodgate's headers out of an answer. */
export function rateHeaders(answer: Answer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of RATE_HEADERS) {
    const value = answer.headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** transcript runs one fixed sequence against a harness and returns what a client saw: identical in every framework. */
export async function transcript(harness: Harness): Promise<unknown[]> {
  const { clock, store } = fakeClock();
  const server = await harness.start(appSpec({ policy: burst, store }, store));
  const seen: unknown[] = [];
  const step = async (path: string, method = "GET") => {
    const a = await send(server, path, { method });
    const limited = a.status >= 400;
    seen.push({
      path,
      status: a.status,
      ...rateHeaders(a),
      ...(limited ? { type: a.headers["content-type"], body: a.body } : {}),
    });
  };
  try {
    for (let i = 0; i < 3; i++) await step("/login", "POST");
    for (let i = 0; i < 2; i++) await step("/report");
    for (let i = 0; i < 3; i++) await step("/signup", "POST");
    for (let i = 0; i < 4; i++) await step("/data");
    await step("/health");
    clock.now = T0 + 2500;
    await step("/");
    clock.now = T0 + 61_000;
    await step("/login", "POST");
  } finally {
    await server.close();
  }
  return seen;
}

/** contract runs the shared adapter suite against `harness`. */
export function contract(harness: Harness): void {
  const kit = harness.kit;
  let servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });
  async function app(options: Options = {}, auth = false) {
    const { clock, store } = fakeClock();
    const global =
      options.policy === undefined && options.policies === undefined
        ? { policy: burst, store, ...options }
        : { store, ...options };
    const server = await harness.start(appSpec(global, store, auth));
    servers.push(server);
    return { server, clock };
  }

  describe(`adapter contract: ${harness.name}`, () => {
    it("answers the tutorial's burst: 10 allowed with remaining 9..0, then 429 with Retry-After and the JSON body", async () => {
      const { server, clock } = await app();
      for (let i = 9; i >= 0; i--) {
        const a = await send(server, "/data");
        expect(a.status).toBe(200);
        expect(JSON.parse(a.body)).toEqual({ data: "Some important information" });
        expect(rateHeaders(a)).toEqual({
          "x-ratelimit-limit": "10",
          "x-ratelimit-remaining": String(i),
          "x-ratelimit-reset": String((T0 + 1000) / 1000),
          "ratelimit-policy": '"burst";q=10;w=5',
          ratelimit: `"burst";r=${i};t=1`,
        });
      }
      for (let i = 0; i < 5; i++) {
        const a = await send(server, "/data");
        expect(a.status).toBe(429);
        expect(a.headers["retry-after"]).toBe("1");
        expect(a.headers["x-ratelimit-remaining"]).toBe("0");
        expect(a.headers["content-type"]).toBe("application/json; charset=utf-8");
        expect(JSON.parse(a.body)).toEqual(DETAIL);
      }
      clock.now = T0 + 3000;
      const later = await send(server, "/data");
      expect(later.status).toBe(200);
      expect(later.headers["x-ratelimit-remaining"]).toBe("5");
      expect(later.headers.ratelimit).toBe('"burst";r=5;t=1');
    });

    it("sends legacy and IETF headers that parse back as structured fields", async () => {
      const { server } = await app({
        policies: [burst, { name: "daily", capacity: 1000, refillRate: 1000, interval: "1d" }],
      });
      const a = await send(server, "/");
      expect(a.headers["x-ratelimit-limit"]).toBe("10");
      expect(a.headers["x-ratelimit-remaining"]).toBe("9");
      expect(Number(a.headers["x-ratelimit-reset"])).toBe(Math.ceil((T0 + 1000) / 1000));
      expect(parseRateLimitList(a.headers["ratelimit-policy"] as string)).toEqual([
        { id: "burst", params: { q: 10, w: 5 } },
        { id: "daily", params: { q: 1000, w: 86_400 } },
      ]);
      expect(parseRateLimitList(a.headers.ratelimit as string)).toEqual([
        { id: "burst", params: { r: 9, t: 1 } },
        { id: "daily", params: { r: 999, t: 86_400 } },
      ]);
      const ietf = (await app({ headers: "ietf" })).server;
      expect(Object.keys(rateHeaders(await send(ietf, "/")))).toEqual([
        "ratelimit-policy",
        "ratelimit",
      ]);
    });

    it("gives the handler its decision the framework's way", async () => {
      const { server } = await app();
      expect(JSON.parse((await send(server, "/decision")).body)).toEqual({
        allowed: true,
        remaining: 9,
        policy: "burst",
      });
      expect(JSON.parse((await send(server, "/health")).body)).toEqual({ status: "ok" });
    });

    it("holds a route to its override, sharing the limiter, and never limits an opted-out route", async () => {
      const { server } = await app();
      const report = await send(server, "/report");
      expect(report.status).toBe(200);
      expect(report.headers["x-ratelimit-remaining"]).toBe("5");
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe("4");
      expect((await send(server, "/signup", { method: "POST" })).headers["ratelimit-policy"]).toBe(
        '"signup";q=2;w=120',
      );
      await send(server, "/signup", { method: "POST" });
      const denied = await send(server, "/signup", { method: "POST" });
      expect(denied.status).toBe(429);
      expect(denied.headers["retry-after"]).toBe("60");
      for (let i = 0; i < 15; i++) {
        const health = await send(server, "/health");
        expect(health.status).toBe(200);
        expect(rateHeaders(health)).toEqual({});
      }
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe("3");
    });

    it("lets CORS preflights pass uncounted and without headers, unless countPreflights", async () => {
      const preflight = {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "POST" },
      };
      const { server } = await app();
      for (let i = 0; i < 15; i++) {
        const a = await send(server, "/", preflight);
        expect(a.status).toBe(200);
        expect(rateHeaders(a)).toEqual({});
      }
      // An OPTIONS request that is no preflight is counted.
      const plain = await send(server, "/", { method: "OPTIONS" });
      expect(plain.headers["x-ratelimit-remaining"]).toBe("9");
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe("8");
      const counted = (await app({ countPreflights: true })).server;
      for (let i = 9; i >= 0; i--) {
        const a = await send(counted, "/", preflight);
        expect(a.headers["x-ratelimit-remaining"]).toBe(String(i));
      }
      expect((await send(counted, "/", preflight)).status).toBe(429);
    });

    it("skips what skip says: no headers, nothing counted", async () => {
      const { server } = await app({
        skip: (request: never) => kit.header(request, "x-internal") === "yes",
      });
      for (let i = 0; i < 15; i++) {
        const a = await send(server, "/", { headers: { "x-internal": "yes" } });
        expect(a.status).toBe(200);
        expect(rateHeaders(a)).toEqual({});
      }
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe("9");
    });

    it("keys by an API key header: one address, two keys, two buckets", async () => {
      const { server } = await app({ key: keys.header("x-api-key") });
      for (let i = 0; i < 10; i++) await send(server, "/", { headers: { "x-api-key": "a" } });
      expect((await send(server, "/", { headers: { "x-api-key": "a" } })).status).toBe(429);
      expect((await send(server, "/", { headers: { "x-api-key": "b" } })).status).toBe(200);
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe("9");
    });

    it("keys by the user an auth middleware set", async () => {
      const { server } = await app(
        { key: (request: never) => kit.user(request) ?? "anonymous" },
        true,
      );
      const as = (user: string) => ({ headers: { authorization: `Bearer ${user}` } });
      for (let i = 0; i < 10; i++) await send(server, "/decision", as("alice"));
      expect((await send(server, "/decision", as("alice"))).status).toBe(429);
      expect(JSON.parse((await send(server, "/decision", as("bob"))).body)).toMatchObject({
        remaining: 9,
      });
    });

    it("holds each plan to its tier's policies", async () => {
      const free = [{ name: "free", capacity: 2, refillRate: 1, interval: 1000 }];
      const paid = [{ name: "paid", capacity: 100, refillRate: 50, interval: 1000 }];
      const { server } = await app({
        policies: (request: never) => (kit.header(request, "x-plan") === "paid" ? paid : free),
      });
      const p = await send(server, "/", { headers: { "x-plan": "paid" } });
      expect(p.headers["ratelimit-policy"]).toBe('"paid";q=100;w=2');
      expect(p.headers["x-ratelimit-remaining"]).toBe("99");
      await send(server, "/");
      await send(server, "/");
      expect((await send(server, "/")).status).toBe(429);
      expect((await send(server, "/", { headers: { "x-plan": "paid" } })).status).toBe(200);
    });

    describe("reset(key) forgets every bucket of the key: base, tiers and route policies", () => {
      const free = [{ name: "free", capacity: 2, refillRate: 1, interval: 60_000 }];
      const paid = [{ name: "paid", capacity: 3, refillRate: 1, interval: 60_000 }];
      const as = (user: string, plan = "free") => ({
        headers: { "x-api-key": user, "x-plan": plan },
      });
      const tiers = (request: never) => (kit.header(request, "x-plan") === "paid" ? paid : free);

      /** drained sends requests until one is limited; true when one was. */
      async function drained(server: Server, path: string, init: object): Promise<boolean> {
        const method = path === "/signup" ? "POST" : "GET";
        for (let i = 0; i < 12; i++) {
          if ((await send(server, path, { method, ...init })).status === 429) return true;
        }
        return false;
      }

      async function check(server: Server, reset: (key: string) => Promise<void>) {
        expect(await drained(server, "/", as("alice"))).toBe(true);
        expect(await drained(server, "/", as("alice", "paid"))).toBe(true);
        expect(await drained(server, "/signup", as("alice"))).toBe(true);
        expect(await drained(server, "/", as("bob"))).toBe(true);
        await reset("x-api-key=alice");
        const tier = await send(server, "/", as("alice"));
        expect(tier.status).toBe(200);
        expect(tier.headers.ratelimit).toBe('"free";r=1;t=60');
        expect((await send(server, "/", as("alice", "paid"))).headers.ratelimit).toBe(
          '"paid";r=2;t=60',
        );
        expect((await send(server, "/signup", { method: "POST", ...as("alice") })).status).toBe(
          200,
        );
        expect((await send(server, "/", as("bob"))).status).toBe(429);
      }

      it("through a RateLimiter the operator passes in", async () => {
        const { store } = fakeClock();
        const limiter = new RateLimiter({ policy: burst, store });
        const global = { limiter, policies: tiers, key: keys.header("x-api-key") };
        const server = await harness.start(appSpec(global, store));
        servers.push(server);
        await check(server, (key) => limiter.reset(key));
      });

      it.runIf(harness.name !== "fastify" && harness.name !== "fetch")(
        "through the middleware's own limiter",
        async () => {
          const { store } = fakeClock();
          const global = { store, policies: tiers, key: keys.header("x-api-key") };
          const server = await harness.start(appSpec(global, store));
          servers.push(server);
          const limiter = server.limiter as RateLimiter;
          expect(limiter).toBeInstanceOf(RateLimiter);
          await check(server, (key) => limiter.reset(key));
        },
      );
    });

    it("in shadow mode blocks no one, and still reports the decision", async () => {
      const limited: Decision[] = [];
      const { server } = await app({
        mode: "shadow",
        onLimited: (_: never, d: Decision) => limited.push(d),
      });
      for (let i = 0; i < 15; i++) {
        const a = await send(server, "/decision");
        expect(a.status).toBe(200);
        expect(rateHeaders(a)).toEqual({});
        expect(JSON.parse(a.body)).toEqual({
          allowed: i < 10,
          remaining: Math.max(0, 9 - i),
          policy: "burst",
        });
      }
      expect(limited).toHaveLength(5);
    });

    it("stacks limiters: every limiter's headers appear and the stricter 429 wins", async () => {
      const { server } = await app();
      const first = await send(server, "/login", { method: "POST" });
      expect(first.status).toBe(200);
      expect(rateHeaders(first)).toEqual({
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "1",
        "x-ratelimit-reset": String((T0 + 60_000) / 1000),
        "ratelimit-policy": '"burst";q=10;w=5, "strict";q=2;w=120',
        ratelimit: '"burst";r=9;t=1, "strict";r=1;t=60',
      });
      for (const item of parseRateLimitList(first.headers.ratelimit as string)) {
        expect(Object.keys(item.params)).toEqual(["r", "t"]);
      }
      await send(server, "/login", { method: "POST" });
      const denied = await send(server, "/login", { method: "POST" });
      expect(denied.status).toBe(429);
      expect(denied.headers["retry-after"]).toBe("60");
      expect(denied.headers["x-ratelimit-limit"]).toBe("2");
      expect(denied.headers.ratelimit).toBe('"burst";r=7;t=1, "strict";r=0;t=60');
      expect(JSON.parse(denied.body)).toEqual(DETAIL);
      // Where the global limit is the stricter one, its legacy values show.
      for (let i = 0; i < 7; i++) await send(server, "/");
      const globalFirst = await send(server, "/login", { method: "POST" });
      expect(globalFirst.status).toBe(429);
      expect(globalFirst.headers.ratelimit).toBe('"burst";r=0;t=1');
    });

    it("ignores a spoofed X-Forwarded-For by default, and honours it only from a trusted hop", async () => {
      const open = (await app()).server;
      for (let i = 0; i < 10; i++) {
        await send(open, "/", { headers: { "x-forwarded-for": `6.6.6.${i}` } });
      }
      expect((await send(open, "/", { headers: { "x-forwarded-for": "6.6.6.99" } })).status).toBe(
        429,
      );
      const behind = (await app({ key: keys.ip({ trustProxy: "loopback" }) })).server;
      const from = (ip: string) => ({ headers: { "x-forwarded-for": `203.0.113.9, ${ip}` } });
      for (let i = 0; i < 10; i++) await send(behind, "/", from("198.51.100.1"));
      expect((await send(behind, "/", from("198.51.100.1"))).status).toBe(429);
      expect((await send(behind, "/", from("198.51.100.2"))).status).toBe(200);
      const oneHop = (await app({ key: keys.ip({ trustProxy: 1 }) })).server;
      for (let i = 0; i < 10; i++) await send(oneHop, "/", from("198.51.100.1"));
      // One hop trusted: the client is the rightmost address; what it wrote to the left is ignored.
      const spoof = { headers: { "x-forwarded-for": "1.1.1.1, 198.51.100.1" } };
      expect((await send(oneHop, "/", spoof)).status).toBe(429);
    });

    it("answers malformed proxy headers and odd keys cleanly", async () => {
      const behind = (await app({ key: keys.ip({ trustProxy: "loopback" }) })).server;
      for (const headers of [
        { "x-forwarded-for": "not-an-ip, , ,[::1" },
        { forwarded: 'for="[2001:db8::1', "x-forwarded-for": "1.2.3.4" },
        { forwarded: "for=unknown;by=;;,,;for" },
        { "x-forwarded-for": `${"9.".repeat(4000)}9` },
      ]) {
        const a = await send(behind, "/", { headers });
        expect(a.status).toBe(200);
        expect(Number(a.headers["x-ratelimit-remaining"])).toBeGreaterThanOrEqual(0);
        parseRateLimitList(a.headers.ratelimit as string);
      }
      const byKey = (await app({ key: keys.header("x-api-key") })).server;
      const empty = await send(byKey, "/", { headers: { "x-api-key": "" } });
      expect(empty.status).toBe(200);
      expect(empty.headers["x-ratelimit-remaining"]).toBe("9");
    });

    it("sends an error of the user's key function to the framework's error path", async () => {
      const { server } = await app({
        key: (request: never) => {
          if (kit.header(request, "x-boom") !== undefined) throw new Error("key failed");
          return "k";
        },
      });
      const failed = await send(server, "/", { headers: { "x-boom": "1" } });
      expect(failed.status).toBe(500);
      expect(rateHeaders(failed)).toEqual({});
      expect((await send(server, "/")).status).toBe(200);
    });

    it("changes the limited response: status and body", async () => {
      const { server } = await app({
        policy: { capacity: 5, refillRate: 5, interval: 1000 },
        statusCode: 503,
        body: { error: "busy" },
      });
      for (let i = 0; i < 5; i++) await send(server, "/");
      const a = await send(server, "/");
      expect(a.status).toBe(503);
      expect(JSON.parse(a.body)).toEqual({ error: "busy" });
      expect(a.headers["retry-after"]).toBe("1");
    });

    describe("refund and blocks", () => {
      const login = { name: "login", capacity: 5, refillRate: 5, interval: "15m" } as const;
      const signin: Route = {
        method: "POST",
        path: "/signin",
        limits: ["global"],
        reply: "password",
      };
      const right = { method: "POST", headers: { "x-password": PASSWORD } };
      const wrong = { method: "POST", headers: { "x-password": "guess" } };
      async function start(global: Options, routes: readonly Route[] = [signin]) {
        const server = await harness.start({ global, routes, auth: false });
        servers.push(server);
        return server;
      }

      it("refunds successful logins: 100 in a row pass, the 6th failed password is 429", async () => {
        const { store } = fakeClock();
        const asked: number[] = [];
        const server = await start({
          policy: login,
          store,
          refund: (_request: never, status: number) => {
            asked.push(status);
            return status < 400;
          },
        });
        for (let i = 0; i < 100; i++) {
          const a = await send(server, "/signin", right);
          expect(a.status).toBe(200);
          expect(a.headers["x-ratelimit-remaining"]).toBe("4");
        }
        for (let i = 4; i >= 0; i--) {
          const a = await send(server, "/signin", wrong);
          expect(a.status).toBe(401);
          expect(a.headers["x-ratelimit-remaining"]).toBe(String(i));
        }
        const sixth = await send(server, "/signin", wrong);
        expect(sixth.status).toBe(429);
        // The 5 tokens come back 15 min after the first was spent.
        expect(sixth.headers["retry-after"]).toBe("900");
        const right6 = await send(server, "/signin", right);
        expect(right6.status).toBe(429);
        // Asked once per charged request, never for a 429 (it spent nothing).
        expect(asked).toEqual([...Array(100).fill(200), ...Array(5).fill(401)]);
      });

      it("refunds under a route's own policy, and asks for nothing it skipped", async () => {
        const { store } = fakeClock();
        const route: Route = {
          method: "POST",
          path: "/signin",
          limits: [{ route: { policy: login, refund: (_r: never, s: number) => s < 400 } }],
          reply: "password",
        };
        const server = await start({ policy: burst, store }, [route]);
        for (let i = 0; i < 20; i++)
          expect((await send(server, "/signin", right)).status).toBe(200);
        for (let i = 0; i < 5; i++) expect((await send(server, "/signin", wrong)).status).toBe(401);
        expect((await send(server, "/signin", wrong)).status).toBe(429);
      });

      it("keeps the cost when refund throws or rejects, and still answers", async () => {
        const { store } = fakeClock();
        const heard: string[] = [];
        const hear = (w: Error & { code?: string }) => heard.push(w.code ?? "");
        process.on("warning", hear);
        let n = 0;
        const server = await start({
          policy: login,
          store,
          refund: () => {
            n++;
            if (n % 2 === 0) throw new Error("refund threw");
            return Promise.reject(new Error("refund rejected"));
          },
        });
        for (let i = 4; i >= 0; i--) {
          const a = await send(server, "/signin", right);
          expect(a.status).toBe(200);
          expect(a.headers["x-ratelimit-remaining"]).toBe(String(i));
        }
        expect((await send(server, "/signin", right)).status).toBe(429);
        await new Promise((resolve) => setImmediate(resolve));
        process.off("warning", hear);
        expect(n).toBe(5);
        expect(heard).toEqual(["FLOODGATE_REFUND_ERROR"]);
      });

      it("answers a blocked client 429 with Retry-After = the time left in the block", async () => {
        const { clock, store } = fakeClock();
        const server = await start({
          policy: {
            name: "guarded",
            capacity: 5,
            refillRate: 5,
            interval: "1m",
            blockFor: 600_000,
          },
          store,
        });
        for (let i = 0; i < 5; i++) expect((await send(server, "/signin", right)).status).toBe(200);
        const first = await send(server, "/signin", right);
        expect(first.status).toBe(429);
        expect(first.headers["retry-after"]).toBe("600");
        clock.now = T0 + 250_000;
        const during = await send(server, "/signin", right);
        expect(during.status).toBe(429);
        expect(during.headers["retry-after"]).toBe("350");
        expect(JSON.parse(during.body)).toEqual(DETAIL);
        clock.now = T0 + 600_000;
        expect((await send(server, "/signin", right)).status).toBe(200);
      });
    });
  });
}

/** The policies the suite uses, for harness-specific tests. */
export const POLICIES: Record<string, PolicyInput> = { burst, signup, strict };
