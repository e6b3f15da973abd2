import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type RateLimitedRequest, rateLimit } from "./index.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
let closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers) close();
  closers = [];
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler).listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  closers.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("floodgate/node", () => {
  it("settles every synchronous check with one of two shared promises: no promise per request", async () => {
    const limit = rateLimit({ policy: { capacity: 2, refillRate: 1, interval: 60_000 } });
    const promises: Promise<boolean>[] = [];
    const url = await serve((req, res) => {
      const p = limit(req, res);
      promises.push(p);
      p.then((go) => {
        if (go) res.end("ok");
      });
    });
    for (let i = 0; i < 4; i++) await (await fetch(url)).text();
    expect(await Promise.all(promises)).toEqual([true, true, false, false]);
    expect(promises[1]).toBe(promises[0]);
    expect(promises[3]).toBe(promises[2]);
  });

  it("works as Connect-style middleware: next() to go on, next(error) on failure", async () => {
    const calls: string[] = [];
    const limit = rateLimit({
      policy: { capacity: 1, refillRate: 1, interval: 60_000 },
      key: (req) => {
        if (req.headers["x-fail"]) throw new Error("key failed");
        return "k";
      },
    });
    const url = await serve((req, res) => {
      limit(req, res, (error?: unknown) => {
        calls.push(error === undefined ? "next" : `error: ${(error as Error).message}`);
        res.statusCode = error === undefined ? 200 : 500;
        res.end(String((req as RateLimitedRequest).rateLimit?.remaining));
      }).then((go) => calls.push(String(go)));
    });
    expect(await (await fetch(url)).text()).toBe("0");
    expect((await fetch(url)).status).toBe(429);
    expect((await fetch(url, { headers: { "x-fail": "1" } })).status).toBe(500);
    expect(calls).toEqual(["next", "true", "false", "error: key failed", "false"]);
  });

  it("rejects on a failing key without next, and answers through respond", async () => {
    const failing = rateLimit({
      policy: burst,
      key: async () => {
        throw new Error("no key");
      },
    });
    const own = rateLimit({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      respond: (_req, res, d) => {
        res.statusCode = 503;
        res.end(`later: ${d.policy}`);
      },
    });
    const outcomes: string[] = [];
    const url = await serve(async (req, res) => {
      if (req.url === "/fail") {
        await failing(req, res).catch((e: Error) => outcomes.push(e.message));
        res.end();
        return;
      }
      if (await own(req, res)) res.end("ok");
    });
    await (await fetch(`${url}/fail`)).text();
    expect(outcomes).toEqual(["no key"]);
    await (await fetch(url)).text();
    const denied = await fetch(url);
    expect(denied.status).toBe(503);
    expect(await denied.text()).toBe("later: default");
    expect(denied.headers.get("retry-after")).toBe("1");
  });
});
