/**
 * One process of the multi-process exactness test: `CALLERS` concurrent
 * callers hammer one key through a RateLimiter over RedisStore for
 * `DURATION_MS`, then print one JSON line of counts. Failures decide "deny",
 * so only Redis can admit; the deadline is long (2 s) because a call that
 * times out may still be charged in Redis while its caller counts a denial,
 * and 8 processes on 2 shared cores can stall that long.
 */
import { Cluster, Redis } from "ioredis";
import { RateLimiter, RedisStore } from "../../src/index.js";

const env = process.env;
const nodes = JSON.parse(env.NODES ?? "[]") as { host: string; port: number }[];
const duration = Number(env.DURATION_MS ?? 10_000);
const callers = Number(env.CALLERS ?? 64);
const safe = {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
};
const client =
  env.CLUSTER === "1"
    ? new Cluster(nodes, { enableOfflineQueue: false, retryDelayOnFailover: 0, redisOptions: safe })
    : new Redis((nodes[0] as { port: number }).port, (nodes[0] as { host: string }).host, safe);
await new Promise((r) => client.once("ready", r));

const limiter = new RateLimiter({
  policy: { capacity: 100, refillRate: 10, interval: 1000 },
  store: new RedisStore({ client, prefix: env.PREFIX ?? "exact", timeout: 2000 }),
  onStoreError: "deny",
  cacheDenials: env.CACHE !== "0",
});

// Ready: wait for the parent's go (a line on stdin), so all processes start together.
process.stdout.write("ready\n");
await new Promise((r) => process.stdin.once("data", r));

const counts = { allowed: 0, denied: 0, cached: 0, fallback: 0, calls: 0 };
const until = Date.now() + duration;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
await Promise.all(
  Array.from({ length: callers }, async () => {
    while (Date.now() < until) {
      const d = await limiter.consume(env.KEY ?? "one-key");
      counts.calls++;
      if (d.reason === "store") d.allowed ? counts.allowed++ : counts.denied++;
      else if (d.reason === "cached") counts.cached++;
      else counts.fallback++;
      await pause(10);
    }
  }),
);
process.stdout.write(`${JSON.stringify({ ...counts, stats: limiter.stats() })}\n`);
client.disconnect();
process.stdin.destroy();
