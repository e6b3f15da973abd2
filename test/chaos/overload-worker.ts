/**
 * One process of the overload test: a new user's setup (a plain ioredis
 * client, `new RedisStore({ client })` and a RateLimiter with default
 * options). For each `run KEY MS` line on stdin, `CALLERS` callers hammer KEY
 * for MS milliseconds, each burning a little CPU between calls so the cores
 * stay saturated, then one JSON line of counts is printed. `exit` ends it.
 */
import { createInterface } from "node:readline";
import { Cluster, Redis } from "ioredis";
import { RateLimiter, RedisStore } from "../../src/index.js";

const env = process.env;
const nodes = JSON.parse(env.NODES ?? "[]") as { host: string; port: number }[];
const callers = Number(env.CALLERS ?? 32);
const burn = Number(env.BURN_MS ?? 0.05);
const first = nodes[0] as { host: string; port: number };
const client = env.CLUSTER === "1" ? new Cluster(nodes) : new Redis(first.port, first.host);
await new Promise((r) => client.once("ready", r));

const limiter = new RateLimiter({
  policy: { capacity: 50, refillRate: 10, interval: 1000 },
  // OVERLOAD_TIMEOUT (ms) only for trying the fallback on purpose; the test runs the defaults.
  store: new RedisStore(
    env.OVERLOAD_TIMEOUT ? { client, timeout: Number(env.OVERLOAD_TIMEOUT) } : { client },
  ),
});
const turn = () => new Promise((r) => setImmediate(r));

async function run(key: string, ms: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = { allowed: 0, denied: 0, calls: 0 };
  const until = Date.now() + ms;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (Date.now() < until) {
        const d = await limiter.consume(key);
        counts.calls = (counts.calls ?? 0) + 1;
        if (d.allowed) {
          counts.allowed = (counts.allowed ?? 0) + 1;
          const by = `allowed_${d.reason}`;
          counts[by] = (counts[by] ?? 0) + 1;
        } else counts.denied = (counts.denied ?? 0) + 1;
        // Work between requests: the callers spin, the cores stay busy. An
        // answer already settled (a cached denial) lets a caller go on
        // without the event loop turning, as real handlers do.
        const stop = performance.now() + burn;
        while (performance.now() < stop);
        if (env.YIELD === "1") await turn();
      }
    }),
  );
  return counts;
}

process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [verb, key, ms] = line.split(" ");
  if (verb !== "run") break;
  const counts = await run(key as string, Number(ms));
  process.stdout.write(`${JSON.stringify({ ...counts, stats: limiter.stats() })}\n`);
}
await limiter.close();
client.disconnect();
