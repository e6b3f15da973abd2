import type { AddressInfo } from "node:net";
import Koa from "koa";
import { afterEach, describe, expect, it } from "vitest";
import { type RateLimitState, rateLimit } from "./index.js";

const one = { name: "one", capacity: 1, refillRate: 1, interval: 60_000 };
let closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers) close();
  closers = [];
});

async function serve(app: Koa<RateLimitState>): Promise<string> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  closers.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("floodgate/koa", () => {
  it("exposes ctx.state.rateLimit and answers through respond", async () => {
    const app = new Koa<RateLimitState>();
    app.use(
      rateLimit({
        policy: one,
        respond: (ctx, _reply, d) => {
          ctx.status = 429;
          ctx.body = { wait: d.policy };
        },
      }),
    );
    app.use((ctx) => {
      ctx.body = { remaining: ctx.state.rateLimit?.remaining };
    });
    const url = await serve(app);
    expect(await (await fetch(url)).json()).toEqual({ remaining: 0 });
    const denied = await fetch(url);
    expect(denied.status).toBe(429);
    expect(await denied.json()).toEqual({ wait: "one" });
    expect(denied.headers.get("retry-after")).toBe("60");
  });

  it("reports a respond that sets no body as an error", async () => {
    const app = new Koa();
    app.silent = true;
    app.use(rateLimit({ policy: one, respond: () => undefined }));
    app.use((ctx) => {
      ctx.body = "ok";
    });
    const url = await serve(app);
    await (await fetch(url)).text();
    expect((await fetch(url)).status).toBe(500);
  });

  it("asks refund with the status Koa sent, after its own error handling (ctx.throw)", async () => {
    const statuses: number[] = [];
    const app = new Koa();
    app.silent = true;
    app.use(
      rateLimit({
        policy: { ...one, capacity: 2 },
        refund: (_ctx, status) => {
          statuses.push(status);
          return status < 400;
        },
      }),
    );
    app.use((ctx) => {
      if (ctx.path === "/fail") ctx.throw(401, "wrong password");
      ctx.body = "ok";
    });
    const url = await serve(app);
    for (let i = 0; i < 4; i++) expect((await fetch(url)).status).toBe(200);
    expect((await fetch(`${url}/fail`)).status).toBe(401);
    expect((await fetch(`${url}/fail`)).status).toBe(401);
    expect((await fetch(`${url}/fail`)).status).toBe(429);
    expect(statuses).toEqual([200, 200, 200, 200, 401, 401]);
  });
});
