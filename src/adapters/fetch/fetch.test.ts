import { describe, expect, it } from "vitest";
import { keys } from "../../http/keys.js";
import { MemoryStore } from "../../stores/memory-store.js";
import { rateLimitOf, withRateLimit } from "./index.js";

const one = { name: "one", capacity: 1, refillRate: 1, interval: 60_000 };
const hello = (request: Request) =>
  Response.json({ remaining: rateLimitOf(request)?.remaining ?? null });
const get = (headers: Record<string, string> = {}) =>
  new Request("http://api.example/", { headers });

describe("floodgate/fetch", () => {
  it("says clearly that a key is required, since a Request has no socket", () => {
    expect(() => withRateLimit(hello, { policy: one })).toThrow(
      /option "key" is required by floodgate\/fetch: a Fetch Request carries no client address/,
    );
    expect(() => withRateLimit(hello, { policy: one, address: "x" as never })).toThrow(
      /option "address" must be a function/,
    );
    expect(() => withRateLimit("nope" as never, { policy: one, key: () => "k" })).toThrow(
      /option "handler" must be a Fetch handler/,
    );
  });

  it("answers 429 without calling the handler, and adds the headers to the handler's Response", async () => {
    let calls = 0;
    const handler = withRateLimit(
      (request) => {
        calls++;
        return hello(request);
      },
      { policy: one, key: keys.header("x-api-key") },
    );
    const ok = await handler(get({ "x-api-key": "a" }));
    expect(await ok.json()).toEqual({ remaining: 0 });
    expect(ok.headers.get("ratelimit")).toBe('"one";r=0;t=60');
    const denied = await handler(get({ "x-api-key": "a" }));
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toBe("60");
    expect(await denied.json()).toEqual({ detail: "Too many requests. Try again later." });
    expect(calls).toBe(1);
  });

  it("copies an immutable Response (a redirect, a fetched one) to add the headers", async () => {
    const handler = withRateLimit(() => Response.redirect("http://elsewhere.example/", 302), {
      policy: one,
      key: () => "k",
    });
    const r = await handler(get());
    expect(r.status).toBe(302);
    expect(r.headers.get("location")).toBe("http://elsewhere.example/");
    expect(r.headers.get("x-ratelimit-remaining")).toBe("0");
  });

  it("shares one limit between handlers wrapped with the same options, and overrides per handler", async () => {
    const shared = { policy: { ...one, capacity: 3 }, key: () => "k", store: new MemoryStore() };
    const a = withRateLimit(hello, shared);
    const b = withRateLimit(hello, shared);
    const heavy = withRateLimit(hello, shared, { cost: 2 });
    expect((await a(get())).headers.get("x-ratelimit-remaining")).toBe("2");
    expect((await b(get())).headers.get("x-ratelimit-remaining")).toBe("1");
    expect((await heavy(get())).status).toBe(429);
  });

  it("keys by IP from the runtime's arguments through address, with keys.ip's trustProxy", async () => {
    const handler = withRateLimit((request: Request, _info: { ip: string }) => hello(request), {
      policy: one,
      address: (_request, info) => info.ip,
      key: keys.ip({ trustProxy: ["10.0.0.0/8"] }),
    });
    expect((await handler(get(), { ip: "192.0.2.1" })).status).toBe(200);
    expect((await handler(get(), { ip: "192.0.2.1" })).status).toBe(429);
    const viaProxy = get({ "x-forwarded-for": "192.0.2.2" });
    expect((await handler(viaProxy, { ip: "10.0.0.1" })).status).toBe(200);
  });

  it("answers through respond with the runtime's arguments, and rejects a respond without a Response", async () => {
    const own = withRateLimit((request: Request, _env: string) => hello(request), {
      policy: one,
      key: () => "k",
      respond: (_request, rest, d) => new Response(`${rest.length} ${d.policy}`, { status: 429 }),
    });
    await own(get(), "env");
    const r = await own(get(), "env");
    expect(await r.text()).toBe("1 one");
    expect(r.headers.get("retry-after")).toBe("60");
    const broken = withRateLimit(hello, { policy: one, key: () => "k", respond: () => "no" });
    await broken(get());
    await expect(broken(get())).rejects.toThrow(/respond option must return a Response/);
  });

  it("rejects, never throws, when address or a skipped request's handler fails", async () => {
    // Deno's info or Bun's server missing: the address option throws.
    const noInfo = withRateLimit((request: Request, _info: { ip: string }) => hello(request), {
      policy: one,
      address: (_request, info) => info.ip,
    });
    let answer: Promise<Response> | undefined;
    expect(() => {
      answer = noInfo(get(), undefined as never);
    }).not.toThrow();
    await expect(answer).rejects.toThrow(TypeError);
    const skipped = withRateLimit(
      () => {
        throw new Error("handler threw");
      },
      { policy: one, key: () => "k", skip: () => true },
    );
    let skippedAnswer: Promise<Response> | undefined;
    expect(() => {
      skippedAnswer = skipped(get());
    }).not.toThrow();
    await expect(skippedAnswer).rejects.toThrow("handler threw");
  });
});
