/**
 * Issue 8 item 7, bad input: every bad cost and policy value gives a typed
 * error and changes no state (no store call, the bucket still full); header
 * values carry numbers only (fuzzed with random policies and decisions: no
 * CR/LF, digits and structured fields a strict parser accepts); and a
 * malformed request to every adapter gets a clean HTTP answer.
 */
import { Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { rateLimit as nodeRateLimit } from "../../src/adapters/node/index.js";
import { decide } from "../../src/core/decision.js";
import { policies as toPolicies } from "../../src/core/policy.js";
import { headerList, policySet } from "../../src/http/headers.js";
import { createRateLimit, keys, type RequestReader } from "../../src/http/index.js";
import {
  ConfigError,
  CostError,
  isFloodgateError,
  MemoryStore,
  type PolicyInput,
  RateLimiter,
  type Store,
} from "../../src/index.js";
import { appSpec, fakeClock } from "../adapters/contract.js";
import { allHarnesses } from "../adapters/harnesses/all.js";
import { rawRequest, socketless } from "../helpers/raw-http.js";
import { parseRateLimitList } from "../ratelimit-fields.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };

/** The values no cost and no policy field may take. */
const BAD_NUMBERS: readonly unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -1,
  -0.5,
  0,
  -0,
  0.5,
  1.5,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  1e300,
  Number.MAX_VALUE,
  "1",
  "",
  null,
  true,
  10n,
  {},
  [],
];

/** CountingStore wraps a MemoryStore and counts the calls that reach it. */
class CountingStore implements Store {
  readonly inner: MemoryStore;
  calls = 0;
  constructor(clock: () => number) {
    this.inner = new MemoryStore({ clock });
  }
  consume(...args: Parameters<MemoryStore["consume"]>) {
    this.calls++;
    return this.inner.consume(...args);
  }
  reset(...args: Parameters<MemoryStore["reset"]>) {
    this.calls++;
    return this.inner.reset(...args);
  }
}

const reader: RequestReader<{ cost: unknown; tier?: unknown }> = {
  address: () => "192.0.2.1",
  header: () => undefined,
};

async function rejection(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("guarantee: bad costs and policy values give a typed error and change no state", () => {
  it("every bad cost, through consume, peek, wait and the HTTP layer", async () => {
    const costs = [...BAD_NUMBERS, 11, 1e9 + 1];
    const store = new CountingStore(() => 0);
    const limiter = new RateLimiter({ policy: burst, store, clock: () => 0 });
    const http = createRateLimit<{ cost: unknown }>(
      { limiter, cost: (r) => r.cost as number },
      reader,
    );
    let cases = 0;
    for (const cost of costs) {
      const calls = [
        () => limiter.consume("k", { cost: cost as number }),
        () => limiter.peek("k", { cost: cost as number }),
        () => limiter.wait("k", { cost: cost as number, maxWait: 10 }),
        () => http.check({ cost }),
      ];
      for (const call of calls) {
        const error = await rejection(call);
        expect(error, `cost ${String(cost)}`).toBeInstanceOf(CostError);
        expect(isFloodgateError(error)).toBe(true);
        expect((error as CostError).code).toBe("ERR_FLOODGATE_COST");
        cases++;
      }
      // A static cost is refused when the middleware is built.
      expect(() => createRateLimit({ limiter, cost: cost as number }, reader)).toThrow(ConfigError);
      cases++;
    }
    const calls = store.calls;
    expect(calls).toBe(0);
    expect(store.inner.stats().trackedKeys).toBe(0);
    const after = await limiter.consume("k");
    expect(after.remaining).toBe(burst.capacity - 1);
    console.log(
      `guarantee: bad cost: ${costs.length} values x 5 entry points = ${cases} typed errors, ${calls} store calls, bucket untouched (next request sees remaining ${after.remaining} of ${burst.capacity})`,
    );
  });

  // Regression: `cost: null` was read as "left out" (`options?.cost ?? 1`) and spent a token.
  it("an explicit cost of null is refused, not defaulted to 1", async () => {
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    for (const call of [
      () => limiter.consume("k", { cost: null as never }),
      () => limiter.peek("k", { cost: null as never }),
      () => limiter.wait("k", { cost: null as never }),
    ]) {
      expect(await rejection(call)).toBeInstanceOf(CostError);
    }
    expect((await limiter.peek("k")).remaining).toBe(burst.capacity);
  });

  it("every bad policy value, when a limiter or middleware is built and from a tiers function", async () => {
    const fields = ["capacity", "refillRate", "interval", "maxDebt", "blockFor"] as const;
    const values = [...BAD_NUMBERS, 366 * 86_400_000, "-1s", "NaNs", "Infinityms"];
    const store = new CountingStore(() => 0);
    const good = new RateLimiter({ policy: burst, store });
    let cases = 0;
    for (const field of fields) {
      for (const value of values) {
        // capacity and refillRate go up to 2^53 - 1, so 366 days is a fine number of tokens;
        // maxDebt may be 0 (no debt) and is a count of tokens, not a duration.
        if ((field === "capacity" || field === "refillRate") && value === 366 * 86_400_000)
          continue;
        if (field === "maxDebt" && (value === 0 || value === 0 || value === 366 * 86_400_000)) {
          continue;
        }
        const bad = { ...burst, [field]: value } as unknown as PolicyInput;
        const built = [
          () => new RateLimiter({ policy: bad }),
          () => new RateLimiter({ policies: [burst, { ...bad, name: "other" }] }),
          () => nodeRateLimit({ policy: bad }),
        ];
        for (const build of built) {
          const error = await rejection(build);
          expect(error, `${field} = ${String(value)}`).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).option).toMatch(new RegExp(`\\.${field}$`));
          cases++;
        }
        const tiers = createRateLimit<{ cost: unknown; tier?: unknown }>(
          { limiter: good, policies: (r) => r.tier as PolicyInput },
          reader,
        );
        const error = await rejection(() => tiers.check({ cost: 1, tier: bad }));
        expect(error).toBeInstanceOf(ConfigError);
        cases++;
      }
    }
    const calls = store.calls;
    expect(calls).toBe(0);
    expect((await good.peek("192.0.2.1")).remaining).toBe(burst.capacity);
    console.log(
      `guarantee: bad policy values: ${fields.length} fields x ${values.length} values -> ${cases} typed ConfigErrors naming the field, ${calls} store calls`,
    );
  });
});

/**
 * Header values may hold: plain digits for the legacy fields and Retry-After
 * (never an exponent, a sign or a point: a cost of 1e9 refilled by 1 a year
 * waits 3e16 s, which is 17 digits), the IETF lists otherwise.
 */
const DIGITS = /^\d{1,17}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

describe("guarantee: header values carry numbers only, never CR/LF", () => {
  it("holds for random policies and random store replies, in every header mode", () => {
    const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
    const policyArb = fc.record({
      name,
      capacity: fc.oneof(
        fc.integer({ min: 1, max: 100 }),
        fc.constant(1e9),
        fc.integer({ min: 1, max: 1e9 }),
        fc.constant(Number.MAX_SAFE_INTEGER),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      ),
      refillRate: fc.oneof(
        fc.integer({ min: 1, max: 100 }),
        fc.constant(1),
        fc.integer({ min: 1, max: 1e9 }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      ),
      // Budgets up to 2^53 leave no room for debt (capacity + maxDebt <= 2^53 - 1).
      maxDebt: fc.constant(0),
      interval: fc.oneof(
        fc.integer({ min: 1, max: 10_000 }),
        fc.constant(365 * 86_400_000),
        fc.integer({ min: 1, max: 365 * 86_400_000 }),
      ),
    });
    let values = 0;
    let decisions = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(policyArb, { minLength: 1, maxLength: 4, selector: (p) => p.name }),
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.array(
          fc.tuple(
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.double({ min: 0, max: 1, noNaN: true }),
          ),
          { minLength: 4, maxLength: 4 },
        ),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.boolean(),
        (inputs, now, shapes, costShare, allowed) => {
          const list = toPolicies(inputs);
          const minCap = Math.min(...list.map((p) => p.capacity));
          const cost = Math.max(1, Math.ceil(costShare * minCap));
          // A reply a store could give: tokens within capacity, the last refill at most one interval ago.
          const reply: number[] = [now, allowed ? 1 : 0];
          list.forEach((p, i) => {
            const [t, a] = shapes[i] as [number, number];
            const tokens = Math.floor(t * p.capacity);
            reply.push(
              allowed ? tokens : Math.min(tokens, cost - 1),
              now - Math.floor(a * (p.interval - 1)),
            );
          });
          const d = decide(list, reply, cost, "store");
          decisions++;
          const set = policySet(list);
          for (const [legacy, ietf] of [
            [true, true],
            [true, false],
            [false, true],
            [false, false],
          ] as const) {
            const out = headerList(set, d, legacy, ietf, !d.allowed);
            for (let i = 0; i < out.length; i += 2) {
              const field = out[i] as string;
              const value = out[i + 1] as string;
              values++;
              expect(value).toMatch(PRINTABLE);
              expect(value).not.toMatch(/[\r\n\0]/);
              if (field === "ratelimit" || field === "ratelimit-policy") {
                // A strict RFC 9651 reader: Strings with Integer parameters of at most 15 digits.
                const members = parseRateLimitList(value);
                expect(members.map((m) => m.id)).toEqual(list.map((p) => p.name));
              } else {
                expect(value, `${field}: ${value}`).toMatch(DIGITS);
              }
            }
          }
        },
      ),
      { numRuns: 5000 },
    );
    console.log(
      `guarantee: header values: ${values} values from ${decisions} random decisions (capacity and refill up to 1e9, intervals up to 365 d): all digits or strict structured fields, 0 CR/LF`,
    );
  });
});

const harnesses = allHarnesses;

const CRLF = "\r\n";
const get = (target: string, headers: string[] = [], version = "1.1") =>
  `GET ${target} HTTP/${version}${CRLF}${["Host: 127.0.0.1", "Connection: close", ...headers].join(CRLF)}${CRLF}${CRLF}`;

/** The malformed requests: each may be refused (4xx) or answered, but must get an answer, never a 5xx or a dropped connection. */
const MALFORMED: readonly [string, string][] = [
  ["bad percent-encoding", get("/%zz%ff%00/..%2f..?%%=%")],
  ["absolute-form garbage target", get("http://[::1/")],
  ["target without a slash", get("nonsense")],
  ["absolute-form, no host and port 99999", get("http://:99999/")],
  ["absolute-form, a bad IPv6 zone", get("https://[fe80::1%25zz]/")],
  ["asterisk-form with GET", get("*")],
  [
    "a Host that is no host",
    `GET / HTTP/1.1${CRLF}Host: [::1${CRLF}Connection: close${CRLF}${CRLF}`,
  ],
  [
    "a preflight with a garbage Access-Control-Request-Method",
    `OPTIONS / HTTP/1.1${CRLF}Host: x${CRLF}Origin: null${CRLF}Access-Control-Request-Method: ,;"${CRLF}Connection: close${CRLF}${CRLF}`,
  ],
  ["Forwarded with an unclosed quote", get("/", ['Forwarded: for="1.2.3.4, for=5.6.7.8'])],
  ["target of 8 KB", get(`/${"a%".repeat(4000)}`)],
  [
    "X-Forwarded-For of 8 KB",
    get("/", [`X-Forwarded-For: ${"9.9.9.9, [::1]:80, unknown,".repeat(300)}`]),
  ],
  ["Forwarded of 8 KB garbage", get("/", [`Forwarded: ${'for="[::1;;by=,,"\\'.repeat(500)}`])],
  [
    "garbage Forwarded",
    get("/", ['Forwarded: for="_hidden", for=[::1, for=""";;;,,,for=1.2.3.4:99999']),
  ],
  [
    "100 X-Forwarded-For fields",
    get(
      "/",
      Array.from({ length: 100 }, (_, i) => `X-Forwarded-For: 10.0.0.${i}, junk`),
    ),
  ],
  ["a 64 KB header, beyond Node's limit", get("/", [`X-Forwarded-For: ${"1".repeat(65_536)}`])],
  ["a control character in a header", get("/", ["X-Forwarded-For: 1.2.3.4\u0001"])],
  ["no Host, HTTP/1.0", `GET / HTTP/1.0${CRLF}${CRLF}`],
  ["empty Host", `GET / HTTP/1.1${CRLF}Host:${CRLF}Connection: close${CRLF}${CRLF}`],
  ["garbage request line", `HELLO THERE${CRLF}${CRLF}`],
  [
    "bad chunked body",
    `POST /signup HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}Connection: close${CRLF}${CRLF}zz${CRLF}`,
  ],
];

describe("guarantee: a malformed request to any adapter gets a clean HTTP answer", () => {
  const listen = vi.spyOn(Server.prototype, "listen");
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  process.on("uncaughtException", onUnhandled);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  afterAll(() => {
    listen.mockRestore();
    process.off("unhandledRejection", onUnhandled);
    process.off("uncaughtException", onUnhandled);
  });

  it.each(harnesses.map((h) => [h.name, h] as const))("%s", async (_, harness) => {
    const statuses: Record<string, number> = {};
    for (const trust of [{}, { trustProxy: "loopback" }] as const) {
      const { store } = fakeClock();
      const from = listen.mock.contexts.length;
      const server = await harness.start(
        appSpec({ policy: burst, store, key: keys.ip(trust) }, store),
      );
      closers.push(() => server.close());
      const http = listen.mock.contexts.slice(from).find((s) => s instanceof Server) as Server;
      const port = (http.address() as AddressInfo).port;
      for (const [label, bytes] of MALFORMED) {
        const answer = await rawRequest(port, bytes);
        statuses[label] = answer.status;
        expect(answer.status, `${label}: ${answer.head}`).toBeGreaterThanOrEqual(200);
        expect(answer.status, `${label}: ${answer.head}`).toBeLessThan(500);
      }
      // A connection with no remote address at all (a Unix socket, a socket already gone).
      const bare = await socketless(http, get("/"));
      statuses["no socket address"] = bare.status;
      expect([200, 429], bare.head).toContain(bare.status);
      expect(bare.head.toLowerCase()).toContain("x-ratelimit-remaining");
      // And the server still serves.
      const after = await rawRequest(port, get("/"));
      expect([200, 429]).toContain(after.status);
    }
    expect(unhandled).toEqual([]);
    console.log(
      `guarantee: malformed requests: ${harness.name}: ${Object.keys(statuses).length} kinds x 2 key settings, all answered (${[...new Set(Object.values(statuses))].sort().join("/")}), 0 5xx, 0 dropped, 0 unhandled`,
    );
  });
});
