import { createServer } from "node:http";
import express, { type Express as App } from "express";
import { afterEach, describe, expect, it } from "vitest";
import { type Closer, listenLocal } from "../../../test/helpers/local-server.js";
import { heard, tick } from "../../../test/helpers/warnings.js";
import type { Decision } from "../../core/decision.js";
import { ConfigError } from "../../core/errors.js";
import { rateLimit as nodeRateLimit } from "../node/index.js";
import { type ExpressRateLimitOptions, rateLimit, rateLimitOf } from "./index.js";

// Opted in, as a user would: floodgate/express does not re-type Express's Request itself.
declare global {
  namespace Express {
    interface Request {
      rateLimit?: Decision;
    }
  }
}

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const closers: Closer[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function serve(app: App): Promise<string> {
  return (await listenLocal(createServer(app), closers)).url;
}

describe("floodgate/express", () => {
  it("warns once, with a code, when Express trusts every proxy; and can be told not to", async () => {
    const seen = heard();
    try {
      const app = express();
      app.set("trust proxy", true);
      app.use(rateLimit({ policy: burst }));
      app.get("/", (req, res) => {
        res.json({ ip: req.ip });
      });
      const url = await serve(app);
      for (let i = 0; i < 3; i++) await (await fetch(url)).text();
      await tick();
      expect(seen.codes).toEqual(["FLOODGATE_PERMISSIVE_TRUST_PROXY"]);

      const quiet = express();
      quiet.set("trust proxy", true);
      quiet.use(
        rateLimit({ policy: burst, warnings: { FLOODGATE_PERMISSIVE_TRUST_PROXY: false } }),
      );
      quiet.get("/", (_req, res) => {
        res.end();
      });
      const counted = express();
      counted.set("trust proxy", 1);
      counted.use(rateLimit({ policy: burst }));
      counted.get("/", (_req, res) => {
        res.end();
      });
      await (await fetch(await serve(quiet))).text();
      await (await fetch(await serve(counted))).text();
      await tick();
      expect(seen.codes).toEqual(["FLOODGATE_PERMISSIVE_TRUST_PROXY"]);
    } finally {
      seen.stop();
    }
  });

  it("warns when proxy headers arrive while floodgate keys by the socket", async () => {
    const seen = heard();
    try {
      const app = express();
      app.use(rateLimit({ policy: burst }));
      app.get("/", (_req, res) => {
        res.end();
      });
      await (await fetch(await serve(app), { headers: { "x-forwarded-for": "1.2.3.4" } })).text();
      await tick();
      expect(seen.codes).toEqual(["FLOODGATE_FORWARDED_NOT_TRUSTED"]);
      expect(seen.messages[0]).toContain("keys.ip({ trustProxy: 1 })");
      const forwarded = express();
      forwarded.use(rateLimit({ policy: burst }));
      forwarded.get("/", (_req, res) => {
        res.end();
      });
      await (await fetch(await serve(forwarded), { headers: { forwarded: "for=1.2.3.4" } })).text();
      await tick();
      expect(seen.messages[1]).toContain('keys.ip({ trustProxy: 1, proxyHeader: "forwarded" })');
    } finally {
      seen.stop();
    }
  });

  it("answers with the respond option, and reports a respond that sends nothing", async () => {
    const one = { capacity: 1, refillRate: 1, interval: 1000 };
    const app = express();
    app.get(
      "/own",
      rateLimit({
        policy: one,
        respond: (req, res, d) => {
          res
            .status(429)
            .type("text/plain")
            .send(`${req.path}: ${d.allowed ? "allowed" : "denied"}`);
        },
      }),
      (_req, res) => {
        res.end("ok");
      },
    );
    app.get("/silent", rateLimit({ policy: one, respond: () => undefined }), (_req, res) => {
      res.end("ok");
    });
    const url = await serve(app);
    await (await fetch(`${url}/own`)).text();
    const own = await fetch(`${url}/own`);
    expect(own.status).toBe(429);
    expect(await own.text()).toBe("/own: denied");
    expect(own.headers.get("x-ratelimit-remaining")).toBe("0");
    await (await fetch(`${url}/silent`)).text();
    expect((await fetch(`${url}/silent`)).status).toBe(500);
  });

  it("adds nothing once another middleware has sent the headers", async () => {
    const app = express();
    app.use((_req, res, next) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("streaming ");
      next();
    });
    app.use(rateLimit({ policy: { capacity: 1, refillRate: 1, interval: 60_000 } }));
    app.get("/", (_req, res) => {
      res.end("done");
    });
    const url = await serve(app);
    const first = await fetch(url);
    expect(first.headers.get("x-ratelimit-remaining")).toBeNull();
    expect(await first.text()).toBe("streaming done");
    // Limited after the headers went out: the response ends, the handler does not run.
    expect(await (await fetch(url)).text()).toBe("streaming ");
  });

  it("stacks with floodgate/node on the same request, adding no key to the request", async () => {
    const app = express();
    let before: (string | symbol)[] = [];
    app.use((req, _res, next) => {
      before = Reflect.ownKeys(req);
      next();
    });
    app.use(rateLimit({ policy: burst }));
    app.use(
      nodeRateLimit({ policy: { name: "strict", capacity: 2, refillRate: 1, interval: 60_000 } }),
    );
    let added: string[] = [];
    app.use((req, _res, next) => {
      added = Reflect.ownKeys(req)
        .filter((k) => !before.includes(k))
        .map(String);
      next();
    });
    app.get("/", (_req, res) => {
      res.end();
    });
    const url = await serve(app);
    const first = await fetch(url);
    expect(first.headers.get("ratelimit-policy")).toBe('"burst";q=10;w=5, "strict";q=2;w=120');
    expect(first.headers.get("ratelimit")).toBe('"burst";r=9;t=1, "strict";r=1;t=60');
    expect(first.headers.get("x-ratelimit-limit")).toBe("2");
    await first.text();
    // req.rateLimit reads res.locals through Express's base request prototype (see decision-property.ts).
    expect(added).toEqual([]);
  });

  it("shows req.rateLimit (and rateLimitOf(req)) in mounted apps and routers, and lets later middleware replace it", async () => {
    const app = express();
    const sub = express();
    const router = express.Router();
    app.use(rateLimit({ policy: burst }));
    sub.get("/", (req, res) => {
      res.json({ remaining: rateLimitOf(req)?.remaining });
    });
    router.get("/", (req, _res, next) => {
      req.rateLimit = { ...(req.rateLimit as NonNullable<typeof req.rateLimit>), remaining: -1 };
      next();
    });
    router.get("/", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining, own: Object.hasOwn(req, "rateLimit") });
    });
    app.use("/sub", sub);
    app.use("/router", router);
    app.get("/", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining });
    });
    const other = express();
    other.get("/", (req, res) => {
      res.json({ seen: rateLimitOf(req) === undefined ? "none" : "some" });
    });
    const url = await serve(app);
    const otherUrl = await serve(other);
    expect(await (await fetch(`${url}/`)).json()).toEqual({ remaining: 9 });
    expect(await (await fetch(`${url}/sub`)).json()).toEqual({ remaining: 8 });
    expect(await (await fetch(`${url}/router`)).json()).toEqual({ remaining: -1, own: true });
    expect(await (await fetch(`${url}/`)).json()).toEqual({ remaining: 6 });
    // An app without the limiter sees nothing, though the same process defined the accessor elsewhere.
    expect(await (await fetch(otherUrl)).json()).toEqual({ seen: "none" });
  });

  it("keeps a sub-app's decision when the request falls through to the parent app", async () => {
    const app = express();
    const sub = express();
    sub.use(rateLimit({ policy: burst }));
    app.use("/api", sub);
    app.get("/api/late", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining });
    });
    const url = await serve(app);
    expect(await (await fetch(`${url}/api/late`)).json()).toEqual({ remaining: 9 });
  });

  it("shows the strictest decision across an app called as a function and one mounted twice", async () => {
    const outer = express();
    const inner = express();
    const shared = express();
    const other = express();
    outer.use(
      rateLimit({ policy: { name: "outer", capacity: 3, refillRate: 1, interval: 60_000 } }),
    );
    inner.use(
      rateLimit({ policy: { name: "inner", capacity: 100, refillRate: 1, interval: 60_000 } }),
    );
    inner.get("/inner", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining });
    });
    outer.use((req, res, next) => inner(req, res, next));
    // Mounted in outer, then in other: its prototype now follows other's.
    outer.use("/shared", shared);
    other.use("/shared", shared);
    outer.get("/shared/late", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining });
    });
    const url = await serve(outer);
    const inside = await fetch(`${url}/inner`);
    expect(inside.headers.get("x-ratelimit-remaining")).toBe("2");
    expect(await inside.json()).toEqual({ remaining: 2 });
    expect(await (await fetch(`${url}/shared/late`)).json()).toEqual({ remaining: 1 });
  });

  it("waits for an async key, and passes its failure to next(error)", async () => {
    const app = express();
    app.use(
      rateLimit({
        policy: burst,
        key: async (req) => {
          if (req.headers["x-fail"]) throw new Error("no user");
          return "user";
        },
      }),
    );
    app.get("/", (req, res) => {
      res.json({ remaining: req.rateLimit?.remaining });
    });
    const url = await serve(app);
    expect(await (await fetch(url)).json()).toEqual({ remaining: 9 });
    expect((await fetch(url, { headers: { "x-fail": "1" } })).status).toBe(500);
  });

  it("refuses bad options when built, naming them", () => {
    expect(() => rateLimit({ policy: burst, windowMs: 1 } as ExpressRateLimitOptions)).toThrow(
      /"windowMs" is not a rate limit option/,
    );
    expect(() => rateLimit({ policy: burst, warnings: { NOPE: false } as never })).toThrow(
      ConfigError,
    );
    expect(() => rateLimit({ policy: burst, warnings: "off" as never })).toThrow(
      /"warnings" must be true, false or an object/,
    );
  });
});
