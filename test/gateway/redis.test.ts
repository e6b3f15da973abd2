// The gateway on a real redis-server: a request's descriptors in one Lua call
// under the domain's key, buckets kept per descriptor value. (Redis killed
// under load: test/chaos/gateway.chaos.ts.)
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildConfig, parseConfigFile } from "../../src/gateway/config.js";
import { Engine, type Verdict } from "../../src/gateway/engine.js";
import type { Entry } from "../../src/gateway/match.js";
import { GatewayMetrics } from "../../src/gateway/metrics.js";
import { RateLimiter } from "../../src/limiter.js";
import { RedisStore } from "../../src/stores/redis/redis-store.js";
import {
  describeRedis,
  type RedisServer,
  startCluster,
  startRedis,
} from "../helpers/redis-server.js";
import { startGateway } from "./helpers.js";

const CONFIG = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }
  - key: generic_key
    value: global
    rate_limit: { unit: minute, requests_per_unit: 3 }
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 20 }
`;
const ip = (v: string): Entry[] => [{ key: "remote_address", value: v }];
const global: Entry[] = [{ key: "generic_key", value: "global" }];
const user = (v: string): Entry[] => [{ key: "user", value: v }];

describeRedis("gateway on Redis", () => {
  let redis: RedisServer;
  let store: RedisStore;
  let engine: Engine;
  let limiter: RateLimiter;
  beforeAll(async () => {
    redis = await startRedis();
    store = new RedisStore({ url: redis.url, timeout: 200 });
    await store.ready();
    while (!store.available()) await new Promise((r) => setTimeout(r, 10));
    limiter = new RateLimiter({
      policy: { capacity: 1, refillRate: 1, interval: 1000 },
      store,
    });
    engine = new Engine(
      limiter,
      buildConfig([parseConfigFile("f.yaml", CONFIG)]),
      { shadow: false, local: false },
      new GatewayMetrics(),
    );
  });
  afterAll(async () => {
    await store?.close();
    await redis?.stop();
  });

  const decide = (d: Entry[][], cost = 1) => engine.decide("edge", d, cost) as Promise<Verdict>;

  it("20 pass, the 21st is over the limit, other clients are apart", async () => {
    for (let i = 0; i < 20; i++) expect((await decide([ip("a")])).code).toBe("OK");
    const v = await decide([ip("a")]);
    expect(v.statuses[0]).toMatchObject({ code: "OVER_LIMIT", remaining: 0 });
    expect((await decide([ip("b")])).statuses[0]?.remaining).toBe(19);
  });

  it("all descriptors in one atomic call: a refused request charges none of them", async () => {
    for (let i = 0; i < 3; i++) expect((await decide([ip(`c${i}`), global])).code).toBe("OK");
    const v = await decide([ip("x"), global]);
    expect(v.statuses.map((s) => s.code)).toEqual(["OK", "OVER_LIMIT"]);
    expect((await decide([ip("x")])).statuses[0]?.remaining).toBe(19);
    // Every bucket of the domain lives in one Cluster slot: {edge}.
    // Apart from the limiter's heartbeat key (<prefix>members, outside any domain).
    const keys = (await redis.cli("--scan", "--pattern", "*"))
      .trim()
      .split("\n")
      .filter((k) => k !== "floodgate:members");
    expect(keys.length).toBeGreaterThan(3);
    for (const k of keys) expect(k).toMatch(/^floodgate:\{edge\}:b[A-Za-z0-9_-]{22}$/);
  });

  it("denied clients among admitted ones in the same domain cost Redis nothing: denials are cached per descriptor set", async () => {
    // Every request of the domain is one limiter key ({edge}); each descriptor set its own list.
    const scripts = async () => {
      const info = await redis.cli("INFO", "commandstats");
      return [...info.matchAll(/^cmdstat_(?:evalsha|eval|fcall):calls=(\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    for (const abuser of ["abuser1", "abuser2"]) {
      for (let i = 0; i < 20; i++) expect((await decide([user(abuser)])).code).toBe("OK");
      expect((await decide([user(abuser)])).code).toBe("OVER_LIMIT");
    }
    const calls = limiter.stats().storeCalls;
    const cached = limiter.stats().cached;
    const before = await scripts();
    for (let i = 0; i < 100; i++) {
      expect((await decide([ip(`many${i}`)])).code).toBe("OK");
      expect((await decide([user("abuser1")])).code).toBe("OVER_LIMIT");
      expect((await decide([user("abuser2")])).code).toBe("OVER_LIMIT");
    }
    // 100 admitted requests reached Redis; the 200 denied ones (an hour's wait) none.
    expect(limiter.stats().storeCalls - calls).toBe(100);
    expect(limiter.stats().cached - cached).toBe(200);
    expect((await scripts()) - before).toBe(100);
  });

  it("serve on a 3-node Redis Cluster (redis-cluster://): a domain's buckets in one slot, decided atomically", async () => {
    const cluster = await startCluster();
    const seeds = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",");
    const gw = await startGateway(CONFIG, `redis-cluster://${seeds}`, 2000);
    try {
      const call = async (entries: { key: string; value: string }[][], cost: number) => {
        const r = await fetch(`${gw.http}/json`, {
          method: "POST",
          body: JSON.stringify({
            domain: "edge",
            descriptors: entries.map((e) => ({ entries: e })),
            hits_addend: cost,
          }),
        });
        return (await r.json()) as {
          overallCode: string;
          statuses: { code: string; limitRemaining?: number }[];
        };
      };
      expect(
        (await call([user("z"), global], 3)).statuses.map((s) => s.limitRemaining ?? 0),
      ).toEqual([17, 0]);
      const refused = await call([user("z"), global], 1);
      expect(refused.overallCode).toBe("OVER_LIMIT");
      expect((await call([user("z")], 1)).statuses[0]?.limitRemaining).toBe(16);
    } finally {
      await gw.stop();
      await cluster.stop();
    }
  });
});
