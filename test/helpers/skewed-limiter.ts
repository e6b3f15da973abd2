/**
 * One limiter instance whose clock is wrong: this process's Date.now runs
 * SKEW_MS ahead (or behind, when negative) of the machine's, as on a host
 * whose NTP has drifted. It shares a RedisStore at REDIS_PORT and answers one
 * JSON command per stdin line ({ op, key, cost }) with one JSON line: the
 * decision and this process's (skewed) Date.now. LOCAL_CLOCK=1 feeds the
 * skewed clock to the store instead of Redis TIME: the counterfactual that
 * shows what skew would do.
 */
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import { RateLimiter, RedisStore } from "../../src/index.js";

const skew = Number(process.env.SKEW_MS ?? 0);
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + skew;

const client = new Redis(Number(process.env.REDIS_PORT), "127.0.0.1", {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
});
await new Promise((r) => client.once("ready", r));

const limiter = new RateLimiter({
  policies: JSON.parse(process.env.POLICIES as string),
  store: new RedisStore({
    client,
    prefix: process.env.PREFIX ?? "skew",
    timeout: 5000,
    ...(process.env.LOCAL_CLOCK === "1" ? { now: () => Date.now() } : {}),
  }),
  onStoreError: "deny",
  cacheDenials: false,
});

process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { op, key, cost } = JSON.parse(line) as { op: string; key: string; cost: number };
  const d =
    op === "peek" ? await limiter.peek(key, { cost }) : await limiter.consume(key, { cost });
  process.stdout.write(
    `${JSON.stringify({
      allowed: d.allowed,
      policy: d.policy,
      remaining: d.remaining,
      resetAt: d.resetAt,
      retryAfter: d.retryAfter,
      now: d.now,
      reason: d.reason,
      local: Date.now(),
    })}\n`,
  );
}
client.disconnect();
