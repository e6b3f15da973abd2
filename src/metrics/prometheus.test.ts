import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { StoreReply } from "../core/decision.js";
import { RateLimiter } from "../limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { Store } from "../stores/store.js";
import { prometheusMetrics } from "./prometheus.js";

const burst = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };

/** parse reads Prometheus text exposition into `name{labels}` -> value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

/** labelValues returns every label value in the exposition text. */
function labelValues(text: string): string[] {
  return [...text.matchAll(/(\w+)="([^"]*)"/g)].map((m) => m[2] as string);
}

class DownStore implements Store {
  readonly timeout = 200;
  consume(): Promise<StoreReply> {
    return Promise.reject(new Error("ECONNREFUSED"));
  }
  reset(): void {}
}

describe("prometheusMetrics", () => {
  it("counts the tutorial's burst: 15 requests -> 10 allowed, 5 limited, 2 near the limit", async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({ policy: burst, clock: () => 0 });
    const metrics = prometheusMetrics(limiter, { registry });
    for (let i = 0; i < 15; i++) await limiter.consume("198.51.100.7");
    const text = await metrics.metrics();
    const m = parse(text);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="allowed"}')).toBe(10);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="limited"}')).toBe(5);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="shadow_limited"}')).toBe(0);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="fallback_allowed"}')).toBe(0);
    // Remaining 1 and 0 are under 20% of a capacity of 10.
    expect(m.get('floodgate_near_limit_total{policy="burst"}')).toBe(2);
    expect(m.get("floodgate_store_duration_seconds_count")).toBe(15);
    expect(m.get('floodgate_store_duration_seconds_bucket{le="+Inf"}')).toBe(15);
    expect(m.get('floodgate_store_errors_total{kind="error"}')).toBe(0);
    expect(m.get("floodgate_breaker_open")).toBe(0);
    expect(m.get("floodgate_tracked_keys")).toBe(1);
    expect(m.get('floodgate_evictions_total{kind="throttled"}')).toBe(0);
    expect(metrics.contentType).toMatch(/^text\/plain/);
    expect(text).not.toContain("198.51.100.7");
  });

  it("never puts a client key in a label, however many clients", async () => {
    const registry = new Registry();
    const store = new MemoryStore({ maxKeys: 64, clock: () => 0 });
    const limiter = new RateLimiter({
      policies: [
        { name: "burst", capacity: 2, refillRate: 1, interval: 60_000 },
        { name: "daily", capacity: 100, refillRate: 100, interval: "1d" },
      ],
      store,
      clock: () => 0,
    });
    const metrics = prometheusMetrics(limiter, { registry });
    for (let i = 0; i < 200; i++) for (let j = 0; j < 3; j++) await limiter.consume(`client-${i}`);
    const text = await metrics.metrics();
    // "daily" never is the most restrictive policy here, nor near its limit, so it has no series.
    const values = new Set(labelValues(text));
    for (const v of values) expect(v).not.toMatch(/client/);
    expect([...values].filter((v) => !/^[\d.e+-]+$|^\+Inf$/.test(v)).sort()).toEqual(
      [
        "active",
        "allowed",
        "block",
        "burst",
        "charged",
        "error",
        "fallback_allowed",
        "fallback_limited",
        "full",
        "limited",
        "refund",
        "refunded",
        "settle",
        "shadow_limited",
        "store",
        "throttled",
        "timeout",
      ].sort(),
    );
    const m = parse(text);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="allowed"}')).toBe(400);
    expect(m.get('floodgate_decisions_total{policy="burst",outcome="limited"}')).toBe(200);
    expect(m.get('floodgate_evictions_total{kind="throttled"}')).toBeGreaterThan(0);
    expect(m.get("floodgate_tracked_keys")).toBe(store.stats().trackedKeys);
  });

  it("reports a failing store: errors, the open breaker, and decisions made by the fallback", async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({ policy: burst, store: new DownStore(), clock: () => 0 });
    const metrics = prometheusMetrics(limiter, { registry, prefix: "api_" });
    // The breaker opens on the third failure once failures have lasted 200 ms.
    for (let i = 0; i < 12; i++) {
      await limiter.consume("k");
      if (i === 1) await new Promise((r) => setTimeout(r, 210));
    }
    const m = parse(await metrics.metrics());
    expect(m.get('api_floodgate_store_errors_total{kind="error"}')).toBe(3);
    expect(m.get("api_floodgate_breaker_open")).toBe(1);
    expect(m.get("api_floodgate_fallback_decisions_total")).toBe(12);
    expect(m.get('api_floodgate_decisions_total{policy="burst",outcome="fallback_allowed"}')).toBe(
      10,
    );
    expect(m.get('api_floodgate_decisions_total{policy="burst",outcome="fallback_limited"}')).toBe(
      2,
    );
    expect(m.get("api_floodgate_store_duration_seconds_count")).toBe(0);
  });

  it("counts shadow-mode denials apart, and stops counting once stopped", async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({
      policy: { name: "p", capacity: 1, refillRate: 1, interval: 1000 },
    });
    const metrics = prometheusMetrics(limiter, { registry });
    limiter.check("k", 1, true, limiter.policies, true);
    limiter.check("k", 1, true, limiter.policies, true);
    const m = parse(await metrics.metrics());
    expect(m.get('floodgate_decisions_total{policy="p",outcome="shadow_limited"}')).toBe(1);
    expect(m.get('floodgate_decisions_total{policy="p",outcome="limited"}')).toBe(0);
    metrics.stop();
    expect(limiter.events.listenerCount("decision")).toBe(0);
    expect(await registry.metrics()).toBe("\n");
    // Registering again on the same registry works once the first is stopped.
    prometheusMetrics(limiter, { registry });
  });

  it("keeps the policy label bounded: past 256 policy names, the rest count as _other", async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({ policy: burst });
    const metrics = prometheusMetrics(limiter, { registry });
    for (let i = 0; i < 300; i++) {
      limiter.check("k", 1, true, [{ ...limiter.policies[0], name: `tier${i}` } as never]);
    }
    const m = parse(await metrics.metrics());
    const policies = new Set(
      [...m.keys()]
        .filter((k) => k.startsWith("floodgate_decisions_total"))
        .map((k) => /policy="([^"]+)"/.exec(k)?.[1]),
    );
    expect(policies.size).toBe(257);
    expect(m.get('floodgate_decisions_total{policy="_other",outcome="allowed"}')).toBe(44);
  });

  it("counts refunds, settles (charged, refunded, dropped beyond maxDebt), blocks and their failures", async () => {
    const registry = new Registry();
    const api = {
      name: "api",
      capacity: 10,
      refillRate: 10,
      interval: 60_000,
      maxDebt: 5,
      blockFor: 30_000,
    };
    const limiter = new RateLimiter({ policy: api, clock: () => 1_700_000_000_000 });
    const metrics = prometheusMetrics(limiter, { registry });
    const key = "203.0.113.99";
    for (let i = 0; i < 3; i++) await limiter.consume(key);
    expect((await limiter.refund(key, { cost: 2 })).applied).toBe(true);
    // 9 left; an estimate of 4 settled at 1 gives 3 back: 8 left.
    await (await limiter.reserve(key, { cost: 4 })).settle(1);
    // An estimate of 2 settled at 20: 18 more would take 6 to -12, maxDebt stops it at -5.
    const deep = await (await limiter.reserve(key, { cost: 2 })).settle(20);
    expect(deep).toEqual({ extra: 18, dropped: 7, applied: true });
    expect((await limiter.consume(key)).allowed).toBe(false);
    await limiter.block("198.51.100.1", 1000);
    const m = parse(await metrics.metrics());
    expect(m.get("floodgate_refunds_total")).toBe(1);
    expect(m.get("floodgate_refunded_tokens_total")).toBe(2);
    expect(m.get('floodgate_settled_tokens_total{direction="charged"}')).toBe(18);
    expect(m.get('floodgate_settled_tokens_total{direction="refunded"}')).toBe(3);
    expect(m.get("floodgate_debt_dropped_tokens_total")).toBe(7);
    expect(m.get('floodgate_blocks_total{policy="api"}')).toBe(1);
    expect(m.get('floodgate_blocks_total{policy="_by_hand"}')).toBe(1);
    expect(m.get('floodgate_settle_errors_total{operation="refund"}')).toBe(0);
    const text = await metrics.metrics();
    expect(text).not.toContain(key);
    expect(text).not.toContain("198.51.100.1");
    metrics.stop();
    expect(parse(await registry.metrics()).size).toBe(0);
  });

  it("counts refunds and settles the store failed, by operation, never retried", async () => {
    class Failing extends MemoryStore {
      override adjust(): never {
        throw new Error("disk on fire");
      }
    }
    const registry = new Registry();
    const limiter = new RateLimiter({ policy: burst, store: new Failing() });
    const metrics = prometheusMetrics(limiter, { registry });
    expect((await limiter.refund("k")).applied).toBe(false);
    expect((await (await limiter.reserve("k", { cost: 2 })).settle(5)).applied).toBe(false);
    const m = parse(await metrics.metrics());
    expect(m.get('floodgate_settle_errors_total{operation="refund"}')).toBe(1);
    expect(m.get('floodgate_settle_errors_total{operation="settle"}')).toBe(1);
    expect(m.get('floodgate_settle_errors_total{operation="block"}')).toBe(0);
    expect(m.get("floodgate_refunds_total")).toBe(0);
    expect(m.get('floodgate_settled_tokens_total{direction="charged"}')).toBe(0);
    metrics.stop();
  });

  it("rejects a bad prefix or ratio, naming the option", () => {
    const limiter = new RateLimiter({ policy: burst });
    expect(() =>
      prometheusMetrics(limiter, { registry: new Registry(), prefix: "my-app" }),
    ).toThrow(/prefix/);
    expect(() =>
      prometheusMetrics(limiter, { registry: new Registry(), nearLimitRatio: 2 }),
    ).toThrow(/nearLimitRatio/);
  });

  it("refuses a registry that already holds its metrics, naming the option and the fix, and registers nothing", async () => {
    const registry = new Registry();
    const a = new RateLimiter({ policy: burst });
    const b = new RateLimiter({ policy: { ...burst, name: "other" } });
    const first = prometheusMetrics(a, { registry });
    const again =
      /option "registry" already holds this metric .*got "floodgate_decisions_total"\. Fix: call stop\(\) on the earlier one first, or give each limiter its own registry or prefix/;
    expect(() => prometheusMetrics(a, { registry })).toThrow(again);
    expect(() => prometheusMetrics(b, { registry })).toThrow(again);
    // Two limiters on one registry: each its own prefix.
    const second = prometheusMetrics(b, { registry, prefix: "other_" });
    await b.consume("k");
    expect(
      parse(await registry.metrics()).get(
        'other_floodgate_decisions_total{policy="other",outcome="allowed"}',
      ),
    ).toBe(1);
    second.stop();

    // A name taken by the application's own metric: nothing of floodgate's is left behind.
    const own = new Registry();
    const { Gauge } = await import("prom-client");
    new Gauge({ name: "floodgate_tracked_keys", help: "mine", registers: [own] });
    expect(() => prometheusMetrics(a, { registry: own })).toThrow(/got "floodgate_tracked_keys"/);
    expect((await own.getMetricsAsJSON()).map((m) => m.name)).toEqual(["floodgate_tracked_keys"]);

    // stop() is once: stopping the first again leaves the one registered since.
    first.stop();
    const third = prometheusMetrics(a, { registry });
    first.stop();
    await a.consume("k");
    expect(
      parse(await registry.metrics()).get(
        'floodgate_decisions_total{policy="burst",outcome="allowed"}',
      ),
    ).toBe(1);
    third.stop();
  });

  it("refuses an unknown option and a non-object, which it used to ignore or crash on", () => {
    const limiter = new RateLimiter({ policy: burst });
    expect(() => prometheusMetrics(limiter, { regsitry: new Registry() } as never)).toThrow(
      /"regsitry" is not a prometheusMetrics option.*Fix: did you mean registry\?/,
    );
    expect(() => prometheusMetrics(limiter, null as never)).toThrow(
      /"options" must be an object, got null/,
    );
  });
});
