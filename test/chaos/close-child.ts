/**
 * A process as a user writes it: a RateLimiter over `RedisStore({ url })`
 * under load. On SIGUSR2 it stops its callers and calls `limiter.close()`,
 * then has nothing left to do: it must exit by itself (it never calls
 * process.exit), or a socket or timer of the store outlived close().
 * argv: url, "ready" to await store.ready() first (or "no-ready").
 * stdout: "started", then "closed <ms the close took> <decisions> <reasons>".
 */
import { performance } from "node:perf_hooks";
import { type DecisionReason, RateLimiter, RedisStore } from "../../src/index.js";

const [url, wait] = process.argv.slice(2) as [string, string];
const store = new RedisStore({ url });
if (wait === "ready") await store.ready();
const limiter = new RateLimiter({
  policy: { capacity: 50, refillRate: 25, interval: 1000 },
  store,
});
const reasons = new Map<DecisionReason, number>();
let running = true;
let decisions = 0;
const loops = Array.from({ length: 16 }, async (_, i) => {
  while (running) {
    const d = await limiter.consume(`k${i % 4}`);
    reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
    decisions++;
    await new Promise((r) => setTimeout(r, 2));
  }
});
process.once("SIGUSR2", async () => {
  running = false;
  await Promise.all(loops);
  const start = performance.now();
  await limiter.close();
  const took = Math.round(performance.now() - start);
  process.stdout.write(
    `closed ${took} ${decisions} ${JSON.stringify(Object.fromEntries(reasons))}\n`,
  );
});
process.stdout.write("started\n");
