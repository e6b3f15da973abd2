import { describe, expect, it } from "vitest";
import { buildConfig, parseConfigFile } from "../../src/gateway/config.js";
import { Engine, MAX_UINT32, type Verdict } from "../../src/gateway/engine.js";
import type { Entry } from "../../src/gateway/match.js";
import { GatewayMetrics } from "../../src/gateway/metrics.js";
import { RateLimiter } from "../../src/limiter.js";
import { MemoryStore } from "../../src/stores/memory-store.js";

const CONFIG = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }
  - key: generic_key
    value: global
    rate_limit: { unit: second, requests_per_unit: 3 }
  - key: soft
    shadow_mode: true
    rate_limit: { unit: second, requests_per_unit: 1 }
  - key: free
    rate_limit: { unlimited: true }
  - key: banned
    rate_limit: { unit: second, requests_per_unit: 0 }
  - key: user
    rate_limit: { name: base, unit: second, requests_per_unit: 1 }
  - key: vip
    descriptors:
      - key: user
        rate_limit: { replaces: [{ name: base }], unit: second, requests_per_unit: 100 }
`;

function setup(text = CONFIG, shadow = false) {
  let now = 1_000_000;
  const clock = () => now;
  const limiter = new RateLimiter({
    policy: { capacity: 1, refillRate: 1, interval: 1000 },
    store: new MemoryStore({ clock }),
    clock,
  });
  const metrics = new GatewayMetrics();
  const engine = new Engine(
    limiter,
    buildConfig([parseConfigFile("f.yaml", text)]),
    { shadow, local: true },
    metrics,
  );
  const decide = (descriptors: Entry[][], cost = 0) =>
    engine.decide("edge", descriptors, cost) as Verdict;
  return {
    engine,
    decide,
    metrics,
    limiter,
    tick: (ms: number) => {
      now += ms;
    },
  };
}
const ip = (v: string): Entry[] => [{ key: "remote_address", value: v }];
const global: Entry[] = [{ key: "generic_key", value: "global" }];
const header = (v: Verdict, name: string) => v.headers[v.headers.indexOf(name) + 1];

describe("Engine", () => {
  it("10 per second with burst 20: 20 pass at once, the 21st is over the limit with Retry-After 1", () => {
    const { decide } = setup();
    for (let i = 0; i < 20; i++) {
      const v = decide([ip("1.2.3.4")]);
      expect(v.code).toBe("OK");
      expect(v.statuses[0]?.remaining).toBe(19 - i);
    }
    const over = decide([ip("1.2.3.4")]);
    expect(over.code).toBe("OVER_LIMIT");
    expect(over.statuses[0]).toMatchObject({ code: "OVER_LIMIT", remaining: 0, untilReset: 1000 });
    expect(header(over, "retry-after")).toBe("1");
    expect(header(over, "ratelimit-policy")).toBe('"remote_address";q=20;w=2');
    expect(header(over, "ratelimit")).toBe('"remote_address";r=0;t=1');
    expect(decide([ip("5.6.7.8")]).code).toBe("OK");
  });

  it("then refills 10 a whole second later, not before", () => {
    const { decide, tick } = setup();
    for (let i = 0; i < 20; i++) decide([ip("a")]);
    tick(999);
    expect(decide([ip("a")]).code).toBe("OVER_LIMIT");
    tick(1);
    for (let i = 0; i < 10; i++) expect(decide([ip("a")]).code).toBe("OK");
    expect(decide([ip("a")]).code).toBe("OVER_LIMIT");
  });

  it("all descriptors of a request are one decision: a full global bucket charges no client bucket", () => {
    const { decide } = setup();
    for (let i = 0; i < 3; i++) expect(decide([ip(`c${i}`), global]).code).toBe("OK");
    const v = decide([ip("x"), global]);
    expect(v.code).toBe("OVER_LIMIT");
    expect(v.statuses.map((s) => s.code)).toEqual(["OK", "OVER_LIMIT"]);
    // x's bucket was not charged by the refused request.
    expect(decide([ip("x")]).statuses[0]?.remaining).toBe(19);
  });

  it("hits_addend is the cost; 0 means 1; a cost above the burst is over the limit without charging", () => {
    const { decide } = setup();
    expect(decide([ip("a")], 0).statuses[0]?.remaining).toBe(19);
    expect(decide([ip("a")], 5).statuses[0]?.remaining).toBe(14);
    const v = decide([ip("a")], 21);
    expect(v.code).toBe("OVER_LIMIT");
    expect(decide([ip("a")], 1).statuses[0]?.remaining).toBe(13);
  });

  it("shadow_mode: decided and counted, never denied, and it does not block the enforced rules", () => {
    const { decide, metrics, limiter } = setup();
    const soft: Entry[] = [{ key: "soft", value: "s" }];
    expect(decide([soft]).code).toBe("OK");
    const v = decide([soft, ip("a")]);
    expect(v.code).toBe("OK");
    expect(v.statuses[1]?.remaining).toBe(19);
    expect(metrics.render(limiter.stats(), 0)).toContain(
      'policy="soft",outcome="shadow_limited"} 1',
    );
  });

  it("the global shadow switch lets everything through and still counts", () => {
    const { decide, metrics, limiter } = setup(CONFIG, true);
    for (let i = 0; i < 25; i++) expect(decide([ip("a")]).code).toBe("OK");
    expect(decide([[{ key: "banned", value: "x" }]]).code).toBe("OK");
    expect(metrics.render(limiter.stats(), 0)).toContain(
      'policy="remote_address",outcome="shadow_limited"} 5',
    );
  });

  it("unlimited answers OK with MaxUint32 remaining; requests_per_unit 0 is always over the limit", () => {
    const { decide } = setup();
    const free = decide([[{ key: "free", value: "x" }]]);
    expect(free.statuses[0]).toMatchObject({ code: "OK", remaining: MAX_UINT32 });
    const banned = decide([[{ key: "banned", value: "x" }], ip("a")]);
    expect(banned.code).toBe("OVER_LIMIT");
    expect(header(banned, "retry-after")).toBe("1");
    // Nothing was charged to the other descriptor.
    expect(decide([ip("a")]).statuses[0]?.remaining).toBe(19);
  });

  it("replaces drops the replaced rule when both match", () => {
    const { decide } = setup();
    const user: Entry[] = [{ key: "user", value: "u" }];
    const vip: Entry[] = [
      { key: "vip", value: "1" },
      { key: "user", value: "u" },
    ];
    for (let i = 0; i < 5; i++) expect(decide([user, vip]).code).toBe("OK");
    expect(decide([user]).code).toBe("OK");
    expect(decide([user]).code).toBe("OVER_LIMIT");
  });

  it("unknown domains and unmatched descriptors are OK and charge nothing", () => {
    const { engine, decide } = setup();
    expect((engine.decide("nope", [ip("a")], 1) as Verdict).code).toBe("OK");
    const v = decide([[{ key: "other", value: "x" }]]);
    expect(v.statuses[0]).toMatchObject({ code: "OK", rule: undefined });
  });

  it("a swapped config applies at once; a rule that did not change keeps its bucket", () => {
    const { engine, decide } = setup();
    for (let i = 0; i < 5; i++) decide([ip("a")]);
    for (let i = 0; i < 3; i++) decide([global]);
    engine.swap(
      buildConfig([
        parseConfigFile("f.yaml", CONFIG.replace("requests_per_unit: 3", "requests_per_unit: 5")),
      ]),
    );
    expect(decide([ip("a")]).statuses[0]?.remaining).toBe(14);
    expect(decide([global]).statuses[0]?.remaining).toBe(4);
  });

  it("identical descriptors in one request share one bucket and one charge", () => {
    const { decide } = setup();
    const v = decide([ip("a"), ip("a")]);
    expect(v.statuses.map((s) => s.remaining)).toEqual([19, 19]);
  });
});
