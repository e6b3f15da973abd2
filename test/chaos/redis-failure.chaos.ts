/**
 * Redis killed, paused, slowed and cut while several limiter instances are
 * under steady load (issue 5 item 6, issue 8 items 2-3): no request waits
 * much longer than the deadline, nothing is unhandled, the failure mode
 * decides while Redis is gone, the breaker opens within 1 s and probes at
 * most once a second, Redis-backed decisions resume within 1 s of recovery,
 * and a call that timed out is never sent twice.
 */
import { performance } from "node:perf_hooks";
import { Redis, type RedisOptions } from "ioredis";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { type Decision, type DecisionReason, RateLimiter, RedisStore } from "../../src/index.js";
import { type LatencyProxy, startProxy } from "../helpers/latency-proxy.js";
import { describeRedis, type RedisServer, startRedis } from "../helpers/redis-server.js";

const TIMEOUT = 50;
/** Scheduling slack on a shared 2-core machine. */
const SLACK = 150;
const safe: RedisOptions = {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
  retryStrategy: (times) => Math.min(times * 50, 200),
};
const policy = { capacity: 50, refillRate: 25, interval: 1000 };

interface Sample {
  at: number;
  took: number;
  reason: DecisionReason;
}

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const slowest = (samples: Sample[]) => samples.reduce((m, s) => Math.max(m, s.took), 0);

/** load runs `instances` limiters x `callers` callers over `keys` keys until stop() is called. */
function load(limiters: RateLimiter[], callers: number, keys: number) {
  const samples: Sample[] = [];
  let running = true;
  const loops = limiters.flatMap((limiter, li) =>
    Array.from({ length: callers }, async (_, ci) => {
      let n = 0;
      while (running) {
        const start = performance.now();
        const d: Decision = await limiter.consume(`k${(li * callers + ci + n++) % keys}`);
        samples.push({ at: start, took: performance.now() - start, reason: d.reason });
        await sleep(5);
      }
    }),
  );
  return {
    samples,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describeRedis("Redis failures under load", () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const proxies: LatencyProxy[] = [];

  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    server = await startRedis();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    for (const p of proxies.splice(0)) await p.close();
    expect(unhandled).toEqual([]);
  });
  afterAll(async () => {
    process.off("unhandledRejection", onUnhandled);
    await server?.stop();
  });

  async function instances(
    n: number,
    port = server.port,
    prefix = "chaos",
  ): Promise<RateLimiter[]> {
    const out: RateLimiter[] = [];
    for (let i = 0; i < n; i++) {
      const client = new Redis(port, server.host, safe);
      client.on("error", () => {});
      clients.push(client);
      await new Promise((r) => client.once("ready", r));
      out.push(
        new RateLimiter({
          policy,
          store: new RedisStore({ client, prefix, timeout: TIMEOUT }),
          instances: n,
        }),
      );
    }
    return out;
  }

  it("killed for 10 s: insurance decides within the deadline, store resumes within 1 s", async () => {
    const limiters = await instances(3);
    const heapBefore = process.memoryUsage().heapUsed;
    const run = load(limiters, 20, 40);
    await sleep(1500);
    const killedAt = performance.now();
    await server.kill();
    await sleep(10_000);
    await server.start();
    const backAt = performance.now();
    await sleep(3000);
    await run.stop();
    const { samples } = run;
    const worst = slowest(samples);
    const down = samples.filter((s) => s.at > killedAt + TIMEOUT + 5 && s.at + s.took < backAt);
    const firstBack = samples.find((s) => s.at > backAt && s.reason === "store");
    const resumedIn = firstBack ? firstBack.at + firstBack.took - backAt : Number.POSITIVE_INFINITY;
    const heapGrowth = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    console.log(
      `kill 10 s: ${samples.length} requests, slowest ${worst.toFixed(1)} ms, ${down.length} while down (${down.filter((s) => s.reason === "insurance").length} insurance, the rest cached denials), store resumed ${resumedIn.toFixed(0)} ms after restart, heap +${heapGrowth.toFixed(1)} MB, stats ${JSON.stringify(limiters.map((l) => l.stats()))}`,
    );
    expect(worst).toBeLessThan(TIMEOUT + SLACK);
    expect(down.length).toBeGreaterThan(1000);
    // Denials given before the kill stay in force (Redis cannot have refilled them sooner).
    expect(down.every((s) => s.reason === "insurance" || s.reason === "cached")).toBe(true);
    expect(resumedIn).toBeLessThan(1000);
    expect(heapGrowth).toBeLessThan(50);
  });

  it("CLIENT PAUSE: the breaker opens within 1 s and probes at most once a second", async () => {
    const limiters = await instances(2, server.port, "pause");
    const run = load(limiters, 20, 40);
    await sleep(500);
    const calls = limiters.map((l) => l.stats().storeCalls);
    const pausedAt = performance.now();
    await server.cli("client", "pause", "3000", "ALL");
    const opened: number[] = [];
    while (performance.now() - pausedAt < 3000) {
      limiters.forEach((l, i) => {
        if (opened[i] === undefined && l.stats().breaker !== "closed") {
          opened[i] = performance.now() - pausedAt;
          calls[i] = l.stats().storeCalls;
        }
      });
      await sleep(5);
    }
    const sentWhileOpen = limiters.map((l, i) => l.stats().storeCalls - (calls[i] as number));
    const resumeFrom = performance.now();
    let resumedIn = Number.POSITIVE_INFINITY;
    while (performance.now() - resumeFrom < 3000) {
      if (limiters.every((l) => l.stats().breaker === "closed")) {
        resumedIn = performance.now() - resumeFrom;
        break;
      }
      await sleep(5);
    }
    await run.stop();
    const worst = slowest(run.samples);
    console.log(
      `pause 3 s: breaker opened after ${opened.map((o) => o.toFixed(0)).join(", ")} ms, calls sent while open ${sentWhileOpen.join(", ")}, closed ${resumedIn.toFixed(0)} ms after the pause, slowest ${worst.toFixed(1)} ms`,
    );
    for (const o of opened) expect(o).toBeLessThan(1000);
    // ~2.5 s open: a probe at 1 s and at 2 s, each timing out.
    for (const n of sentWhileOpen) expect(n).toBeLessThanOrEqual(3);
    expect(resumedIn).toBeLessThan(1000 + SLACK);
    expect(worst).toBeLessThan(TIMEOUT + SLACK);
  });

  it("20 ms of latency never falls back", async () => {
    const proxy = await startProxy(server.port, 20);
    proxies.push(proxy);
    const limiters = await instances(2, proxy.port, "slow");
    const run = load(limiters, 20, 40);
    await sleep(3000);
    await run.stop();
    const stats = limiters.map((l) => l.stats());
    console.log(`20 ms latency: ${run.samples.length} requests, stats ${JSON.stringify(stats)}`);
    for (const s of stats) {
      expect(s.storeErrors).toBe(0);
      // Near zero on a quiet machine (0-0.3% measured); when other work
      // starves the shared 2 cores, the proxy's own 20 ms timers run late
      // (up to 7% seen at load average 9). The breaker must never open.
      expect(s.storeTimeouts).toBeLessThanOrEqual(s.storeCalls * 0.1);
      expect(s.breakerOpens).toBe(0);
    }
  });

  it("a call that timed out is never sent again after a reconnect (no double charge)", async () => {
    const charged = async (options: RedisOptions, prefix: string): Promise<number> => {
      const proxy = await startProxy(server.port, 300);
      proxies.push(proxy);
      const client = new Redis(proxy.port, server.host, options);
      client.on("error", () => {});
      clients.push(client);
      await new Promise((r) => client.once("ready", r));
      const limiter = new RateLimiter({
        policy: { capacity: 100, refillRate: 1, interval: 3_600_000 },
        store: new RedisStore({ client, prefix, timeout: TIMEOUT }),
        onStoreError: "allow",
      });
      const decisions = await Promise.all(
        Array.from({ length: 10 }, () => limiter.consume("once")),
      );
      expect(decisions.every((d) => d.reason === "fail-open")).toBe(true);
      // Redis has run all ten; their replies are still in the proxy. Cut the line.
      await sleep(50);
      await proxy.dropAll();
      await proxy.setDelay(0);
      await sleep(1000);
      const direct = new RateLimiter({
        policy: { capacity: 100, refillRate: 1, interval: 3_600_000 },
        store: new RedisStore({ client: clients[0] as Redis, prefix, timeout: 1000 }),
      });
      return 100 - (await direct.peek("once")).remaining;
    };
    const reference = new Redis(server.port, server.host, safe);
    clients.unshift(reference);
    await new Promise((r) => reference.once("ready", r));
    expect(await charged(safe, "resend-safe")).toBe(10);
    // The counterfactual, to show the test bites: ioredis's defaults re-send.
    const defaults = await charged({ retryStrategy: () => 50 }, "resend-default");
    console.log(
      `no re-send: safe options charged 10 of 10 calls; ioredis defaults charged ${defaults}`,
    );
    expect(defaults).toBeGreaterThan(10);
  });
});
