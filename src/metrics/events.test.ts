import { describe, expect, it } from "vitest";
import type { Decision, StoreReply } from "../core/decision.js";
import type { Outcome } from "../events.js";
import { RateLimiter } from "../limiter.js";
import type { Logger } from "../logger.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { Store } from "../stores/store.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };

/** FlakyStore answers like a memory store until `down` is set, then rejects every call. */
class FlakyStore implements Store {
  readonly timeout = 200;
  down = false;
  readonly #inner: MemoryStore;
  constructor(clock: () => number) {
    this.#inner = new MemoryStore({ clock });
  }
  consume(...args: Parameters<MemoryStore["consume"]>): Promise<StoreReply> {
    if (this.down) return Promise.reject(new Error("connection refused"));
    return Promise.resolve([...this.#inner.consume(...args)]);
  }
  reset(): void {}
}

function recordingLogger() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push({ level, fields, message });
    };
  const logger: Logger = { info: at("info"), warn: at("warn"), error: at("error") };
  return { lines, logger };
}

describe("limiter events", () => {
  it("counts the tutorial's burst: 15 requests -> 10 allowed, 5 limited, each limited one with its key", async () => {
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    const outcomes: Outcome[] = [];
    const limited: [string, string, boolean][] = [];
    limiter.events.on("decision", (outcome) => outcomes.push(outcome));
    limiter.events.on("limited", (policy, key, decision, shadow) => {
      expect(decision.allowed).toBe(false);
      limited.push([policy, key, shadow]);
    });
    for (let i = 0; i < 15; i++) await limiter.consume("203.0.113.9");
    await limiter.peek("203.0.113.9");
    expect(outcomes.filter((o) => o === "allowed")).toHaveLength(10);
    expect(outcomes.filter((o) => o === "limited")).toHaveLength(5);
    expect(outcomes).toHaveLength(15);
    expect(limited).toEqual(Array(5).fill(["burst", "203.0.113.9", false]));
  });

  it("reports shadow-mode denials as shadow_limited when the caller says it will not enforce them", () => {
    const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
    const outcomes: Outcome[] = [];
    limiter.events.on("decision", (o) => outcomes.push(o));
    const list = limiter.policies;
    limiter.check("k", 1, true, list, true);
    const d = limiter.check("k", 1, true, list, true) as Decision;
    expect(d.allowed).toBe(false);
    expect(outcomes).toEqual(["allowed", "shadow_limited"]);
  });

  it("flags who listens, and stops calling a listener once it is removed", async () => {
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    expect(limiter.events.wants.decision).toBe(false);
    expect(limiter.events.observing).toBe(false);
    let calls = 0;
    const off = limiter.events.on("decision", () => calls++);
    expect(limiter.events.wants.decision).toBe(true);
    expect(limiter.events.listenerCount("decision")).toBe(1);
    await limiter.consume("a");
    off();
    await limiter.consume("a");
    expect(calls).toBe(1);
    expect(limiter.events.wants.decision).toBe(false);
    expect(limiter.events.observing).toBe(false);
    expect(() => limiter.events.on("nope" as "decision", () => {})).toThrow(/unknown event "nope"/);
  });

  it("never fails a request because a listener threw; the logger says so once", async () => {
    const { lines, logger } = recordingLogger();
    const limiter = new RateLimiter({ policy: burst, clock: () => 0, logger });
    limiter.events.on("decision", () => {
      throw new Error("telemetry bug");
    });
    for (let i = 0; i < 5; i++) expect((await limiter.consume("a")).allowed).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", fields: { floodgate: "listener-decision" } });
  });

  it("tells of a throttled client evicted from a full memory store", async () => {
    const store = new MemoryStore({ maxKeys: 64, clock: () => 0 });
    const limiter = new RateLimiter({
      policy: { capacity: 2, refillRate: 1, interval: 60_000 },
      store,
    });
    const evicted: [string, string, string][] = [];
    limiter.events.on("eviction", (kind, policy, key) => evicted.push([kind, policy, key]));
    // Every tracked client is throttled, so a newcomer can only take a throttled client's slot.
    for (let i = 0; i < 64; i++) for (let j = 0; j < 3; j++) await limiter.consume(`c${i}`);
    await limiter.consume("newcomer");
    expect(evicted.length).toBeGreaterThan(0);
    expect(evicted[0]).toEqual(["throttled", "default", expect.stringMatching(/^c\d+$/)]);
    expect(store.stats().evictions.throttled).toBe(evicted.length);
  });

  it("tells of store errors, the breaker opening and closing, and the fallback starting and stopping", async () => {
    const store = new FlakyStore(() => 0);
    const limiter = new RateLimiter({ policy: burst, store, clock: () => 0 });
    const seen: string[] = [];
    limiter.events.on("store-error", (error, kind) =>
      seen.push(`error:${kind}:${(error as Error).message}`),
    );
    limiter.events.on("breaker-open", (failures) => seen.push(`open:${failures}`));
    limiter.events.on("breaker-close", () => seen.push("close"));
    limiter.events.on("insurance", (active, mode) => seen.push(`insurance:${active}:${mode}`));
    const outcomes: Outcome[] = [];
    limiter.events.on("decision", (o) => outcomes.push(o));
    await limiter.consume("a");
    store.down = true;
    // The breaker opens on the third failure once failures have lasted 200 ms.
    for (let i = 0; i < 4; i++) {
      await limiter.consume("a");
      if (i === 1) await new Promise((r) => setTimeout(r, 210));
    }
    expect(seen).toEqual([
      "error:error:connection refused",
      "insurance:true:insurance",
      "error:error:connection refused",
      "error:error:connection refused",
      "open:3",
    ]);
    expect(outcomes).toEqual(["allowed", ...Array(4).fill("fallback_allowed")]);
    store.down = false;
    // The breaker sends its first probe a second after opening.
    await new Promise((r) => setTimeout(r, 1050));
    await limiter.consume("a");
    expect(seen.slice(5)).toEqual(["close", "insurance:false:insurance"]);
  });

  it("times store calls for the duration histogram", async () => {
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    const seconds: number[] = [];
    limiter.events.on("store-call", (s) => seconds.push(s));
    await limiter.consume("a");
    expect(seconds).toHaveLength(1);
    expect(seconds[0]).toBeGreaterThanOrEqual(0);
    expect(seconds[0]).toBeLessThan(1);
  });
});

describe("logger", () => {
  it("logs a failing store at most once per interval per kind, with the count held back", async () => {
    let t = 0;
    const { lines, logger } = recordingLogger();
    const store = new FlakyStore(() => t);
    store.down = true;
    const limiter = new RateLimiter({
      policy: burst,
      store,
      clock: () => t,
      logger,
      logInterval: 10_000,
    });
    for (let i = 0; i < 100; i++) {
      await limiter.consume(`k${i}`);
      if (i === 1) await new Promise((r) => setTimeout(r, 210));
    }
    const errors = () => lines.filter((l) => l.fields.floodgate === "store-error");
    expect(errors()).toHaveLength(1);
    expect(errors()[0]).toMatchObject({ level: "warn", fields: { suppressed: 0 } });
    expect(errors()[0]?.fields.err).toMatchObject({ message: "connection refused" });
    expect(lines.filter((l) => l.fields.floodgate === "breaker-open")).toHaveLength(1);
    expect(lines.filter((l) => l.fields.floodgate === "fallback-start")).toHaveLength(1);
    t += 9_999;
    await new Promise((r) => setTimeout(r, 1050));
    await limiter.consume("x");
    expect(errors()).toHaveLength(1);
    t += 1;
    await new Promise((r) => setTimeout(r, 1050));
    await limiter.consume("y");
    expect(errors()).toHaveLength(2);
    // Held back: the 2nd and 3rd failures (then the breaker opened) and the first probe's.
    expect(errors()[1]?.fields.suppressed).toBe(3);
    expect(lines.every((l) => !JSON.stringify(l.fields).includes("k1"))).toBe(true);
  });

  it("rejects a logger that is not pino-style, naming the missing method", () => {
    expect(
      () =>
        new RateLimiter({
          policy: burst,
          logger: { info() {}, warn() {} } as unknown as Logger,
        }),
    ).toThrow(/logger.*error is not a function/);
  });
});

describe("top limited clients", () => {
  it("names the keys limited most, from the limiter, in bounded memory", async () => {
    let t = 0;
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 60_000 },
      clock: () => t,
      topLimited: { size: 4, window: 10_000 },
    });
    for (let i = 0; i < 30; i++) await limiter.consume("hammer");
    for (let i = 0; i < 10; i++) await limiter.consume("noisy");
    for (let i = 0; i < 200; i++) await limiter.consume(`once-${i}`);
    const top = limiter.topLimited(2);
    expect(top.map((k) => k.key)).toEqual(["hammer", "noisy"]);
    expect(top[0]?.count).toBeGreaterThanOrEqual(29);
    t += 25_000;
    expect(limiter.topLimited(2)).toEqual([]);
  });

  it("keeps nothing with topLimited: false", async () => {
    const limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      topLimited: false,
    });
    await limiter.consume("a");
    await limiter.consume("a");
    expect(limiter.topLimited()).toEqual([]);
  });
});
