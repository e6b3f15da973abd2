/**
 * Issue 8 item 8, shadow-mode replay: the same recorded traffic (clients,
 * costs, instants on a fake clock) replayed through each adapter's real
 * server in shadow mode and in enforce mode. Shadow rejects nothing, and the
 * requests it counts as would-block (limiter events and Prometheus
 * `shadow_limited`) are exactly the ones enforce mode answered with 429.
 */
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { keys } from "../../src/http/keys.js";
import { RateLimiter } from "../../src/index.js";
import { prometheusMetrics } from "../../src/metrics/prometheus.js";
import { appSpec, fakeClock, type Harness, type Server, send, T0 } from "../adapters/contract.js";
import { allHarnesses } from "../adapters/harnesses/all.js";

const harnesses = allHarnesses;

const policies = [
  { name: "burst", capacity: 6, refillRate: 2, interval: 1000 },
  { name: "minute", capacity: 30, refillRate: 30, interval: 60_000 },
];

/** The recorded traffic: who, how much, and how long after the previous request. */
const TRAFFIC = fc.sample(
  fc.record({
    client: fc.integer({ min: 0, max: 7 }),
    cost: fc.oneof(
      { weight: 4, arbitrary: fc.constant(1) },
      { weight: 1, arbitrary: fc.integer({ min: 2, max: 6 }) },
    ),
    dt: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 30 }) },
      { weight: 1, arbitrary: fc.integer({ min: 200, max: 3000 }) },
    ),
  }),
  { numRuns: 300, seed: 8 },
);

interface Replay {
  statuses: number[];
  outcomes: string[];
  limitedEvents: number;
  shadowEvents: number;
  metrics: Map<string, number>;
}

function counts(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^floodgate_decisions_total\{policy="[^"]+",outcome="([a-z_]+)"\} (\d+)$/.exec(line);
    if (m) out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + Number(m[2]));
  }
  return out;
}

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function replay(harness: Harness, mode: "shadow" | "enforce"): Promise<Replay> {
  const { clock, store } = fakeClock();
  const limiter = new RateLimiter({ policies, store });
  const metrics = prometheusMetrics(limiter, { registry: new Registry() });
  const result: Replay = {
    statuses: [],
    outcomes: [],
    limitedEvents: 0,
    shadowEvents: 0,
    metrics: new Map(),
  };
  limiter.events.on("decision", (outcome) => result.outcomes.push(outcome));
  limiter.events.on("limited", (_policy, _key, _d, shadow) => {
    if (shadow) result.shadowEvents++;
    else result.limitedEvents++;
  });
  const kit = harness.kit;
  const server = await harness.start(
    appSpec(
      {
        limiter,
        mode,
        key: keys.header("x-client"),
        cost: (request: never) => Number(kit.header(request, "x-cost") ?? 1),
      },
      store,
    ),
  );
  servers.push(server);
  clock.now = T0;
  for (const r of TRAFFIC) {
    clock.now += r.dt;
    const a = await send(server, "/", {
      headers: { "x-client": `c${r.client}`, "x-cost": String(r.cost) },
    });
    result.statuses.push(a.status);
  }
  result.metrics = counts(await metrics.metrics());
  metrics.stop();
  return result;
}

describe("guarantee: shadow mode would block exactly what enforce mode blocks", () => {
  it("the same traffic through every adapter: 0 rejections in shadow, would-block == 429s in enforce", async () => {
    const rows: string[] = [];
    let total429 = 0;
    let totalWould = 0;
    for (const harness of harnesses) {
      const shadow = await replay(harness, "shadow");
      const enforce = await replay(harness, "enforce");
      const rejectedInShadow = shadow.statuses.filter((s) => s !== 200).length;
      const rejected = enforce.statuses.filter((s) => s === 429).length;
      expect(rejectedInShadow, harness.name).toBe(0);
      expect(enforce.statuses.every((s) => s === 200 || s === 429)).toBe(true);
      expect(rejected).toBeGreaterThan(30);
      // Request by request: shadow_limited exactly where enforce mode said limited.
      expect(shadow.outcomes.map((o) => (o === "shadow_limited" ? "limited" : o))).toEqual(
        enforce.outcomes,
      );
      expect(enforce.outcomes.map((o) => o === "limited")).toEqual(
        enforce.statuses.map((s) => s === 429),
      );
      expect(shadow.shadowEvents).toBe(rejected);
      expect(shadow.limitedEvents).toBe(0);
      expect(shadow.metrics.get("shadow_limited")).toBe(rejected);
      expect(shadow.metrics.get("limited")).toBe(0);
      expect(enforce.metrics.get("limited")).toBe(rejected);
      expect(enforce.limitedEvents).toBe(rejected);
      total429 += rejected;
      totalWould += shadow.shadowEvents;
      rows.push(`${harness.name} ${shadow.shadowEvents}=${rejected}`);
    }
    console.log(
      `guarantee: shadow replay: ${TRAFFIC.length} requests x 8 adapters in each mode: 0 rejected in shadow; would-block ${totalWould} == enforce 429s ${total429} (events and Prometheus; per adapter ${rows.join(", ")})`,
    );
  });
});
