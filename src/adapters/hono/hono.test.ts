import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { heard } from "../../../test/helpers/warnings.js";
import { rateLimit } from "./index.js";

const one = { name: "one", capacity: 1, refillRate: 1, interval: 60_000 };

describe("floodgate/hono", () => {
  it("reads the address with getConnInfo on any runtime, and exposes c.get('rateLimit')", async () => {
    const app = new Hono();
    app.use(
      rateLimit({
        policy: one,
        getConnInfo: (c) => ({ remote: { address: c.req.header("x-test-ip") } }),
      }),
    );
    app.get("/", (c) => c.json({ remaining: c.get("rateLimit")?.remaining }));
    const as = (ip: string) => ({ headers: { "x-test-ip": ip } });
    expect(await (await app.request("/", as("192.0.2.1"))).json()).toEqual({ remaining: 0 });
    expect((await app.request("/", as("192.0.2.1"))).status).toBe(429);
    expect((await app.request("/", as("192.0.2.2"))).status).toBe(200);
  });

  it("asks refund with the status of the handlers' Response, onError's included, off Node too", async () => {
    const statuses: number[] = [];
    const app = new Hono();
    app.use(
      rateLimit({
        policy: { ...one, capacity: 2 },
        key: () => "k",
        refund: (_c, status) => {
          statuses.push(status);
          return status !== 401;
        },
      }),
    );
    app.get("/ok", (c) => c.text("ok"));
    app.get("/boom", () => {
      throw new Error("boom");
    });
    app.get("/denied", (c) => c.text("no", 401));
    app.onError((_e, c) => c.text("error", 500));
    // No @hono/node-server here: Hono merges the headers itself (the other branch).
    for (let i = 0; i < 5; i++) expect((await app.request("/ok")).status).toBe(200);
    expect((await app.request("/boom")).status).toBe(500);
    expect((await app.request("/denied")).status).toBe(401);
    expect((await app.request("/denied")).status).toBe(401);
    expect((await app.request("/ok")).status).toBe(429);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 500, 401, 401]);
  });

  it("warns once that without an address every client shares one bucket", async () => {
    const seen = heard();
    try {
      const app = new Hono();
      app.use(rateLimit({ policy: { ...one, capacity: 5 } }));
      app.get("/", (c) => c.text("ok"));
      for (let i = 0; i < 3; i++) await app.request("/");
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(seen.codes).toEqual(["FLOODGATE_NO_CLIENT_ADDRESS"]);
    } finally {
      seen.stop();
    }
  });

  it("puts the headers on a Response the handler built itself, even an immutable one", async () => {
    const app = new Hono();
    app.use(rateLimit({ policy: { ...one, capacity: 5 }, key: () => "k" }));
    app.get("/raw", () => new Response("raw"));
    app.get("/redirect", () => Response.redirect("http://elsewhere.example/", 302));
    const raw = await app.request("/raw");
    expect(raw.headers.get("x-ratelimit-remaining")).toBe("4");
    const redirect = await app.request("/redirect");
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("x-ratelimit-remaining")).toBe("3");
    expect(redirect.headers.get("location")).toBe("http://elsewhere.example/");
  });

  it("answers through respond, and sends errors of the user's functions to onError", async () => {
    const app = new Hono();
    app.use(
      rateLimit({
        policy: one,
        key: (c) => {
          if (c.req.header("x-fail")) throw new Error("key failed");
          return "k";
        },
        respond: (c, _reply, d) => c.text(`slow down, ${d.policy}`, 429),
      }),
    );
    app.get("/", (c) => c.text("ok"));
    app.onError((error, c) => c.text(`error: ${error.message}`, 500));
    await app.request("/");
    const denied = await app.request("/");
    expect(await denied.text()).toBe("slow down, one");
    expect(denied.headers.get("retry-after")).toBe("60");
    expect(await (await app.request("/", { headers: { "x-fail": "1" } })).text()).toBe(
      "error: key failed",
    );
  });

  it("refuses a getConnInfo that is not a function", () => {
    expect(() => rateLimit({ policy: one, getConnInfo: "node" as never })).toThrow(
      /option "getConnInfo" must be Hono's getConnInfo function/,
    );
  });
});
