import { describe, expect, it, vi } from "vitest";
import type { Decision } from "../core/decision.js";
import { ConfigError, CostError } from "../core/errors.js";
import { RateLimiter } from "../limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { Store } from "../stores/store.js";
import { createRateLimit, type RateLimitOutcome } from "./index.js";
import { keys, type RequestReader } from "./keys.js";
import type { RateLimitOptions } from "./options.js";

interface Req {
  ip: string;
  headers: Record<string, string>;
  plan?: "free" | "paid";
}

const reader: RequestReader<Req> = {
  address: (r) => r.ip,
  header: (r, name) => r.headers[name],
};

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const req = (ip = "1.2.3.4", headers: Record<string, string> = {}): Req => ({ ip, headers });

function clocked(options: Omit<RateLimitOptions<Req, string>, "store"> = {}) {
  const clock = { now: 1_700_000_000_000 };
  const store = new MemoryStore({ clock: () => clock.now });
  const policy =
    options.policies === undefined && options.policy === undefined ? { policy: burst } : {};
  const limit = createRateLimit<Req, string>({ ...policy, store, ...options }, reader);
  return { clock, store, limit };
}

function sync(result: ReturnType<ReturnType<typeof clocked>["limit"]["check"]>): RateLimitOutcome {
  expect(result).not.toBeInstanceOf(Promise);
  expect(result).not.toBeNull();
  return result as RateLimitOutcome;
}

function headers(outcome: RateLimitOutcome): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < outcome.headers.length; i += 2) {
    out[outcome.headers[i] as string] = outcome.headers[i + 1] as string;
  }
  return out;
}

describe("createRateLimit: one request at a time", () => {
  it("answers synchronously on the memory store: the tutorial burst, then a 429", () => {
    const { limit } = clocked();
    for (let i = 9; i >= 0; i--) {
      const outcome = sync(limit.check(req()));
      expect(outcome.limited).toBe(false);
      expect(outcome.response).toBeUndefined();
      expect(headers(outcome)["x-ratelimit-remaining"]).toBe(String(i));
    }
    const denied = sync(limit.check(req()));
    expect(denied.limited).toBe(true);
    expect(denied.decision).toMatchObject({ allowed: false, retryAfter: 1000, policy: "burst" });
    expect(headers(denied)["retry-after"]).toBe("1");
    expect(denied.response).toEqual({
      status: 429,
      contentType: "application/json; charset=utf-8",
      body: '{"detail":"Too many requests. Try again later."}',
    });
    // Another client has its own bucket.
    expect(sync(limit.check(req("5.6.7.8"))).decision.remaining).toBe(9);
  });

  it("awaits asynchronous skip, key, policies and cost, with the same result", async () => {
    const { limit } = clocked({
      skip: async (r) => r.headers.skip === "yes",
      key: async (r) => `user-${r.headers.user}`,
      policies: async () => [burst],
      cost: async () => 4,
    });
    const first = await limit.check(req("1.1.1.1", { user: "a" }));
    expect(first?.decision.remaining).toBe(6);
    expect((await limit.check(req("2.2.2.2", { user: "a" })))?.decision.remaining).toBe(2);
    expect((await limit.check(req("2.2.2.2", { user: "a" })))?.limited).toBe(true);
    expect(await limit.check(req("2.2.2.2", { user: "a", skip: "yes" }))).toBeNull();
  });

  it("skips what skip says, without counting it", () => {
    const { limit } = clocked({ skip: (r) => r.headers["x-internal"] === "1" });
    for (let i = 0; i < 20; i++)
      expect(limit.check(req("1.2.3.4", { "x-internal": "1" }))).toBeNull();
    expect(sync(limit.check(req())).decision.remaining).toBe(9);
  });

  it("keys by a header, falling back to the IP", () => {
    const { limit } = clocked({ key: keys.header("x-api-key") });
    sync(limit.check(req("1.1.1.1", { "x-api-key": "k1" })));
    expect(sync(limit.check(req("2.2.2.2", { "x-api-key": "k1" }))).decision.remaining).toBe(8);
    expect(sync(limit.check(req("2.2.2.2"))).decision.remaining).toBe(9);
  });

  it("charges a cost, fixed or per request, and refuses one above capacity", () => {
    expect(sync(clocked({ cost: 3 }).limit.check(req())).decision.remaining).toBe(7);
    const { limit } = clocked({ cost: (r) => Number(r.headers.cost ?? 1) });
    expect(sync(limit.check(req("1.2.3.4", { cost: "5" }))).decision.remaining).toBe(5);
    expect(() => limit.check(req("1.2.3.4", { cost: "11" }))).toThrow(CostError);
    expect(() => limit.check(req("1.2.3.4", { cost: "0" }))).toThrow(/whole number >= 1/);
  });

  it("gives a key function that returns no string a TypeError, not a bucket", () => {
    const { limit } = clocked({ key: () => 42 as unknown as string });
    expect(() => limit.check(req())).toThrow(TypeError);
  });
});

describe("tiers: policies as a function of the request", () => {
  const free = [{ name: "free", capacity: 2, refillRate: 1, interval: 1000 }];
  const paid = [{ name: "paid", capacity: 100, refillRate: 10, interval: 1000 }];

  it("holds each request to its tier's policies", () => {
    const { limit } = clocked();
    const tiered = limit.route({ policies: (r) => (r.plan === "paid" ? paid : free) });
    const outcome = sync(tiered.check({ ...req(), plan: "paid" }));
    expect(outcome.decision).toMatchObject({ policy: "paid", remaining: 99 });
    expect(headers(outcome)["ratelimit-policy"]).toBe('"paid";q=100;w=10');
    expect(sync(tiered.check(req())).decision).toMatchObject({ policy: "free", remaining: 1 });
  });

  it("validates each list once: the same Policy objects come back for the same list", () => {
    const { limit } = clocked();
    const tiered = limit.route({ policies: (r) => (r.plan === "paid" ? paid : free) });
    const first = sync(tiered.check(req("1.1.1.1"))).decision.policies[0]?.policy;
    expect(sync(tiered.check(req("2.2.2.2"))).decision.policies[0]?.policy).toBe(first);
  });

  it("keeps its cache of fresh literal lists bounded, and still right", () => {
    const { limit } = clocked();
    const many = limit.route({
      policy: (r) => ({ name: `p${r.headers.n}`, capacity: 5, refillRate: 1, interval: 1000 }),
    });
    for (let n = 0; n < 300; n++) {
      expect(sync(many.check(req("1.1.1.1", { n: String(n) }))).decision).toMatchObject({
        policy: `p${n}`,
        remaining: 4,
      });
    }
    expect(sync(many.check(req("1.1.1.1", { n: "0" }))).decision.remaining).toBe(3);
  });

  it("validates each list once, even when the function returns fresh literals", () => {
    const { limit } = clocked();
    const tiered = limit.route({
      policy: () => ({ name: "free", capacity: 2, refillRate: 1, interval: 1000 }),
    });
    const a = sync(tiered.check(req("1.1.1.1"))).decision.policies[0]?.policy;
    const b = sync(tiered.check(req("2.2.2.2"))).decision.policies[0]?.policy;
    expect(a).toBeDefined();
    expect(b).toBe(a);
  });

  it("refuses bad tier policies at the request that returns them", async () => {
    const { limit } = clocked();
    const bad = limit.route({ policies: () => [{ capacity: 0, refillRate: 1, interval: 1 }] });
    expect(() => bad.check(req())).toThrow(
      /"policies\(request\)\[0\].capacity" must be an integer/,
    );
    const none = limit.route({ policy: () => null as never });
    expect(() => none.check(req())).toThrow(/"policy\(request\)" must be an object/);
    const nulls = limit.route({ policies: () => [null as never] });
    expect(() => nulls.check(req())).toThrow(/"policies\(request\)\[0\]" must be an object/);
    const asyncBad = limit.route({ policies: async () => [] });
    await expect(asyncBad.check(req())).rejects.toThrow(ConfigError);
  });

  it("lets identical policies share a name (and so their buckets)", () => {
    const { limit } = clocked();
    const again = limit.route({ policies: [{ ...burst }] });
    sync(again.check(req()));
    expect(sync(limit.check(req())).decision.remaining).toBe(8);
    const slower = () => limit.route({ policies: [{ ...burst, refillRate: 1 }] });
    expect(slower).toThrow(/refillRate 1, interval 1000\) different from the "burst" policy/);
    const longer = () => limit.route({ policies: [{ ...burst, interval: 2000 }] });
    expect(longer).toThrow(/interval 2000\) different/);
  });

  it("refuses two different policies under one name: they would share buckets", () => {
    const { limit } = clocked();
    const tiered = limit.route({
      policies: (r) => [
        { name: "tier", capacity: r.plan === "paid" ? 100 : 2, refillRate: 1, interval: 1000 },
      ],
    });
    sync(tiered.check(req()));
    expect(() => tiered.check({ ...req(), plan: "paid" })).toThrow(
      /"policies\(request\)" names a policy \(capacity 100.*"tier" policy already used with this store \(capacity 2/,
    );
  });
});

describe("CORS preflights", () => {
  const withMethod: RequestReader<Req & { method: string }> = {
    ...reader,
    method: (r) => r.method,
  };
  const preflight = (method = "OPTIONS", acrm: string | null = "POST") => ({
    ...req("1.1.1.1", acrm === null ? {} : { "access-control-request-method": acrm }),
    method,
  });

  it("pass uncounted by default: only OPTIONS with Access-Control-Request-Method", () => {
    const limit = createRateLimit<Req & { method: string }>({ policy: burst }, withMethod);
    expect(limit.check(preflight())).toBeNull();
    expect(sync(limit.check(preflight("OPTIONS", null))).decision.remaining).toBe(9);
    expect(sync(limit.check(preflight("POST"))).decision.remaining).toBe(8);
  });

  it("are counted with countPreflights, and by a reader that cannot tell the method", () => {
    const counted = createRateLimit<Req & { method: string }>(
      { policy: burst, countPreflights: true },
      withMethod,
    );
    expect(sync(counted.check(preflight())).decision.remaining).toBe(9);
    const blind = createRateLimit<Req & { method: string }>({ policy: burst }, reader);
    expect(sync(blind.check(preflight())).decision.remaining).toBe(9);
  });
});

describe("reset(key) through the middleware's limiter", () => {
  const free = [{ name: "free", capacity: 2, refillRate: 1, interval: 60_000 }];
  const paid = [{ name: "paid", capacity: 3, refillRate: 1, interval: 60_000 }];
  const drain = (limit: { check(r: Req): unknown }, r: Req) => {
    for (let i = 0; i < 20; i++) if (sync(limit.check(r) as never).limited) return;
    throw new Error("never limited");
  };

  it("forgets the buckets of every tier a policies function returned, and only of that key", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const limit = createRateLimit<Req>(
      { store, policies: (r) => (r.plan === "paid" ? paid : free) },
      reader,
    );
    drain(limit, req("1.1.1.1"));
    drain(limit, { ...req("1.1.1.1"), plan: "paid" });
    drain(limit, req("2.2.2.2"));
    await limit.limiter.reset("1.1.1.1");
    expect(sync(limit.check(req("1.1.1.1"))).decision).toMatchObject({
      policy: "free",
      remaining: 1,
    });
    expect(sync(limit.check({ ...req("1.1.1.1"), plan: "paid" })).decision).toMatchObject({
      policy: "paid",
      remaining: 2,
    });
    expect(sync(limit.check(req("2.2.2.2"))).limited).toBe(true);
  });

  it("forgets the buckets of fresh literal tiers, adopting each name once", async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const limit = createRateLimit<Req>(
      {
        store,
        policy: (r) => ({ name: `t${r.headers.t}`, capacity: 1, refillRate: 1, interval: 60_000 }),
      },
      reader,
    );
    for (let n = 0; n < 600; n++) drain(limit, req("1.1.1.1", { t: String(n % 300) }));
    await limit.limiter.reset("1.1.1.1");
    for (let n = 0; n < 300; n++) {
      expect(sync(limit.check(req("1.1.1.1", { t: String(n) }))).limited).toBe(false);
    }
  });

  it("forgets route policies and the base policies, and a given limiter's too", async () => {
    const { limit } = clocked();
    const login = limit.route({
      policy: { name: "login", capacity: 2, refillRate: 1, interval: 60_000 },
    });
    drain(login, req());
    drain(limit, req());
    await limit.limiter.reset(req().ip);
    expect(sync(login.check(req())).limited).toBe(false);
    expect(sync(limit.check(req())).decision.remaining).toBe(9);

    const limiter = new RateLimiter({ policy: burst, store: new MemoryStore({ clock: () => 0 }) });
    const own = createRateLimit<Req>(
      { limiter, policies: (r) => (r.plan === "paid" ? paid : free) },
      reader,
    );
    drain(own, req());
    await limiter.reset(req().ip);
    expect(sync(own.check(req())).limited).toBe(false);
  });

  it("a route with a store of its own adopts its tiers on its own limiter", async () => {
    const { limit } = clocked({ policies: (r) => (r.plan === "paid" ? paid : free) });
    const separate = limit.route({ store: new MemoryStore({ clock: () => 0 }) });
    drain(separate, req());
    drain(limit, req());
    await separate.limiter.reset(req().ip);
    expect(sync(separate.check(req())).limited).toBe(false);
    expect(sync(limit.check(req())).limited).toBe(true);
  });

  it("refuses policy name number 1025 in one store: names are a fixed set, not one per client", () => {
    const { limit } = clocked();
    const perClient = limit.route({
      policy: (r) => ({ name: `c${r.headers.n}`, capacity: 5, refillRate: 1, interval: 1000 }),
    });
    // The base middleware's "burst" is the first name.
    for (let n = 0; n < 1023; n++) sync(perClient.check(req("1.1.1.1", { n: String(n) })));
    expect(() => perClient.check(req("1.1.1.1", { n: "1023" }))).toThrow(
      /"policy\(request\)" is policy name number 1025 used with this store.*Fix: name policies by tier or route/,
    );
  });
});

describe("shadow mode and onLimited", () => {
  it("decides and reports but never blocks, and sends no headers unless asked", () => {
    const onLimited = vi.fn<(r: Req, d: Decision) => void>();
    const { limit } = clocked({ mode: "shadow", onLimited });
    let last: RateLimitOutcome | undefined;
    for (let i = 0; i < 15; i++) last = sync(limit.check(req()));
    expect(last?.limited).toBe(false);
    expect(last?.decision.allowed).toBe(false);
    expect(last?.headers).toEqual([]);
    expect(last?.response).toBeUndefined();
    expect(onLimited).toHaveBeenCalledTimes(5);
    expect(onLimited.mock.calls[0]?.[1]).toMatchObject({ allowed: false, remaining: 0 });

    const visible = clocked({ mode: "shadow", headers: "legacy" }).limit;
    for (let i = 0; i < 10; i++) visible.check(req());
    const shadowDenied = sync(visible.check(req()));
    expect(headers(shadowDenied)).toEqual({
      "x-ratelimit-limit": "10",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": expect.any(String),
    });
  });

  it("calls onLimited once per denied request before the 429, and not for allowed ones", () => {
    const seen: number[] = [];
    const { limit } = clocked({ onLimited: (_, d) => seen.push(d.retryAfter) });
    for (let i = 0; i < 12; i++) limit.check(req());
    expect(seen).toEqual([1000, 1000]);
  });
});

describe("the limited response", () => {
  function deny(options: Omit<RateLimitOptions<Req, string>, "store">): RateLimitOutcome {
    const { limit } = clocked({
      ...options,
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
    });
    limit.check(req());
    return sync(limit.check(req()));
  }

  it("can change status and body", () => {
    expect(deny({ statusCode: 503, body: "slow down" }).response).toEqual({
      status: 503,
      contentType: "text/plain; charset=utf-8",
      body: "slow down",
    });
    expect(deny({ body: { error: "rate_limited" } }).response?.body).toBe(
      '{"error":"rate_limited"}',
    );
    expect(deny({ body: (_, d) => ({ wait: d.retryAfter }) }).response?.body).toBe('{"wait":1000}');
  });

  it("leaves the response to respond, with the headers ready", () => {
    const outcome = deny({ respond: () => undefined });
    expect(outcome.limited).toBe(true);
    expect(outcome.response).toBeUndefined();
    expect(headers(outcome)["retry-after"]).toBe("1");
  });
});

describe("stores that answer asynchronously", () => {
  it("give a promise of the same outcome", async () => {
    const memory = new MemoryStore({ clock: () => 0 });
    const slow: Store = {
      consume: (...args) => Promise.resolve([...memory.consume(...args)]),
      reset: (...args) => memory.reset(...args),
    };
    const limit = createRateLimit<Req>({ policies: [burst], store: slow }, reader);
    const pending = limit.check(req());
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending)?.decision).toMatchObject({ allowed: true, remaining: 9 });
  });
});

describe("per-route overrides", () => {
  it("inherit everything not overridden, sharing buckets for the same policies", () => {
    const { limit } = clocked();
    const expensive = limit.route({ cost: 5, skip: undefined } as never);
    expect(expensive.limiter).toBe(limit.limiter);
    sync(expensive.check(req()));
    expect(sync(limit.check(req())).decision.remaining).toBe(4);
  });

  it("keep a route's own named policy in its own buckets", () => {
    const { limit } = clocked();
    const login = limit.route({
      policy: { name: "login", capacity: 2, refillRate: 1, interval: 60_000 },
    });
    sync(login.check(req()));
    sync(login.check(req()));
    expect(sync(login.check(req())).limited).toBe(true);
    expect(sync(limit.check(req())).decision).toMatchObject({ policy: "burst", remaining: 9 });
  });

  it("refuse a route policy that reuses a name with other numbers, naming the route option", () => {
    const { limit } = clocked();
    expect(() =>
      limit.route(
        { policy: { name: "burst", capacity: 3, refillRate: 1, interval: 1000 } },
        "config.rateLimit.",
      ),
    ).toThrow(
      /option "config.rateLimit.policy" names a policy \(capacity 3.*Fix: give each distinct policy its own name/,
    );
  });

  it("charge a given RateLimiter, with its policies by default", () => {
    const limiter = new RateLimiter({ policy: burst, store: new MemoryStore() });
    const limit = createRateLimit<Req>({ limiter }, reader);
    expect(limit.limiter).toBe(limiter);
    expect(sync(limit.check(req())).decision).toMatchObject({ policy: "burst", remaining: 9 });
    expect(limit.route({ cost: 2 }).limiter).toBe(limiter);
    const other = new RateLimiter({ policy: burst });
    expect(limit.route({ limiter: other }).limiter).toBe(other);
  });

  it("use their own store when given one", () => {
    const { limit } = clocked();
    const other: Store = new MemoryStore();
    const separate = limit.route({ store: other });
    expect(separate.limiter).not.toBe(limit.limiter);
    expect(separate.limiter.store).toBe(other);
  });

  it("check overrides like options, naming them with the prefix", () => {
    const { limit } = clocked();
    expect(() => limit.route({ cost: 11 }, "config.rateLimit.")).toThrow(
      /"config.rateLimit.cost" exceeds policy "burst" capacity 10/,
    );
    expect(() => limit.route({ mdoe: "shadow" } as never, "config.rateLimit.")).toThrow(
      /"config.rateLimit.mdoe" is not a rate limit option/,
    );
    expect(() => limit.route(null as never, "config.rateLimit.")).toThrow(
      /"config.rateLimit" must be an object/,
    );
    expect(() => limit.route([] as never)).toThrow(/"overrides" must be an object/);
  });
});

describe("options are checked when built", () => {
  const good = { policy: burst };
  it.each<[string, Record<string, unknown>, RegExp]>([
    [
      "both policy and policies",
      { policies: [burst] },
      /"policy" cannot be given together with policies/,
    ],
    [
      "a bad policy",
      { policy: { ...burst, capacity: -1 } },
      /"policy.capacity" must be an integer/,
    ],
    [
      "an unknown option",
      { windowMs: 1000 },
      /"windowMs" is not a rate limit option.*Fix: use one of policies, policy, store/,
    ],
    ["a bad store", { store: {} }, /"store" must be a Store/],
    ["a bad limiter", { limiter: {} }, /"limiter" must be a RateLimiter/],
    [
      "both limiter and store",
      { limiter: new RateLimiter({ policy: burst }), store: new MemoryStore() },
      /"store" cannot be given together with limiter/,
    ],
    ["a bad key", { key: "ip" }, /"key" must be a function of the request returning a string/],
    ["a bad cost", { cost: 0 }, /"cost" must be a whole number >= 1 or a function/],
    ["a cost above capacity", { cost: 11 }, /"cost" exceeds policy "burst" capacity 10/],
    ["a string cost", { cost: "1" }, /"cost".*got "1"/],
    ["a bad skip", { skip: true }, /"skip" must be a function/],
    ["a bad mode", { mode: "dry-run" }, /"mode" must be "enforce" or "shadow"/],
    ["a bad headers", { headers: true }, /"headers" must be "legacy", "ietf", "both" or false/],
    ["draft-7 headers", { headers: "draft-7" }, /"headers".*got "draft-7"/],
    ["a bad onLimited", { onLimited: "log" }, /"onLimited" must be a function/],
    [
      "a bad statusCode",
      { statusCode: 200 },
      /"statusCode" must be an HTTP error status from 400 to 599/,
    ],
    ["a fractional statusCode", { statusCode: 429.5 }, /statusCode/],
    [
      "a bad body",
      { body: 42 },
      /"body" must be a string, a JSON-serializable object or a function/,
    ],
    ["a null body", { body: null }, /"body".*got null/],
    ["a body JSON cannot write", { body: { n: 1n } }, /"body" must be serializable as JSON/],
    ["a bad respond", { respond: {} }, /"respond" must be a function/],
    [
      "a bad countPreflights",
      { countPreflights: "yes" },
      /"countPreflights" must be true or false/,
    ],
  ])("%s", (_, options, message) => {
    const build = () =>
      createRateLimit<Req>({ ...good, ...options } as RateLimitOptions<Req>, reader);
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(message);
  });

  it("requires policies, and refuses null where a value belongs", () => {
    expect(() => createRateLimit<Req>({}, reader)).toThrow(/"policies" is required/);
    for (const name of ["key", "cost", "mode", "statusCode", "headers", "skip"]) {
      expect(() => createRateLimit<Req>({ ...good, [name]: null } as never, reader)).toThrow(
        new RegExp(`"${name}".*got null`),
      );
    }
  });

  it("refuses a non-object and a cost that is not a whole number for tiers", () => {
    expect(() => createRateLimit<Req>(null as never, reader)).toThrow(
      /"options" must be an object/,
    );
    expect(() => createRateLimit<Req>({ policies: () => [burst], cost: 1.5 }, reader)).toThrow(
      /"cost" must be a whole number >= 1/,
    );
  });

  it("accepts the adapter's own options and leaves them to it", () => {
    const limit = createRateLimit<Req>(
      { ...good, hook: "preHandler" } as RateLimitOptions<Req>,
      reader,
      ["hook"],
    );
    expect((limit.options as Record<string, unknown>).hook).toBe("preHandler");
  });
});

describe("failClosedStatusCode", () => {
  const down: Store = {
    timeout: 20,
    consume: () => Promise.reject(new Error("connection refused")),
    reset: () => Promise.resolve(),
  };

  it("answers requests refused while the store is down with its own status, and others with statusCode", async () => {
    const limiter = new RateLimiter({ policy: burst, store: down, onStoreError: "deny" });
    const limit = createRateLimit<Req, string>({ limiter, failClosedStatusCode: 503 }, reader);
    const outcome = (await limit.check(req())) as RateLimitOutcome;
    expect(outcome.decision.reason).toBe("fail-closed");
    expect(outcome.limited).toBe(true);
    expect(outcome.response?.status).toBe(503);
    expect(Number(headers(outcome)["retry-after"])).toBeGreaterThanOrEqual(1);

    const { limit: healthy } = clocked({ failClosedStatusCode: 503 });
    for (let i = 0; i < 10; i++) healthy.check(req());
    expect(sync(healthy.check(req())).response?.status).toBe(429);
  });

  it("defaults to statusCode and rejects a status outside 400 to 599", async () => {
    const limiter = new RateLimiter({ policy: burst, store: down, onStoreError: "deny" });
    const limit = createRateLimit<Req, string>({ limiter }, reader);
    expect(((await limit.check(req())) as RateLimitOutcome).response?.status).toBe(429);
    expect(() => clocked({ failClosedStatusCode: 200 })).toThrow(/"failClosedStatusCode".*got 200/);
  });
});

describe("the refund option", () => {
  const login = { name: "login", capacity: 2, refillRate: 2, interval: "15m" } as const;

  it("is refused at build time unless it is a function", () => {
    for (const bad of [true, "status < 400", 1, {}]) {
      expect(() =>
        createRateLimit<Req>({ policy: login, refund: bad as unknown as () => boolean }, reader),
      ).toThrow(/"refund" must be a function.*\(request, status\) => boolean/s);
    }
  });

  it("hands the adapter a hook only for requests the store charged", async () => {
    const { limit } = clocked({ policy: login, refund: () => true });
    const first = sync(limit.check(req()));
    expect(first.sent).toBeTypeOf("function");
    const plain = clocked({ policy: login });
    expect(sync(plain.limit.check(req())).sent).toBeUndefined();
    const shadow = clocked({ policy: login, mode: "shadow", refund: () => true });
    sync(shadow.limit.check(req()));
    sync(shadow.limit.check(req()));
    // Over the limit in shadow mode: let through, but nothing was spent, so nothing to give back.
    const over = sync(shadow.limit.check(req()));
    expect(over.limited).toBe(false);
    expect(over.decision.allowed).toBe(false);
    expect(over.sent).toBeUndefined();
  });

  it("asks once, refunds only on true (not on truthy), under the policies charged", async () => {
    const statuses: number[] = [];
    const { limit } = clocked({
      policy: login,
      refund: (_r, status) => {
        statuses.push(status);
        return (status === 200 ? true : status === 201 ? Promise.resolve(true) : 1) as boolean;
      },
    });
    const a = sync(limit.check(req()));
    a.sent?.(200);
    a.sent?.(200);
    const b = sync(limit.check(req()));
    b.sent?.(201);
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect(statuses).toEqual([200, 201]);
    expect(await limit.limiter.peek("1.2.3.4")).toMatchObject({ allowed: true });
    const c = sync(limit.check(req()));
    c.sent?.(204);
    expect(sync(limit.check(req())).decision.remaining).toBe(0);
    expect(sync(limit.check(req())).limited).toBe(true);
  });
});
