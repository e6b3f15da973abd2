import { existsSync } from "node:fs";
import type { Scenario } from "../lib/types.js";

/**
 * (d) Redis decisions per second at 1, 16 and 256 in flight against a
 * redis-server this run starts on a free loopback port, with ioredis and
 * node-redis, beside rate-limiter-flexible's RateLimiterRedis,
 * rate-limit-redis (express-rate-limit's store) and redis-benchmark's EVALSHA
 * ceiling for floodgate's script, measured in the same run.
 *
 * Shape, for when RedisStore lands: bench/redis/server.ts starts and stops the
 * redis-server; each contender runs in its own child process against a
 * flushed database; the ceiling comes from `redis-benchmark -P 1 -c N EVALSHA`.
 * Until RedisStore is exported from dist/ this scenario reports what is missing.
 */
export const redis: Scenario = {
  id: "redis",
  title: "(d) Redis decisions per second",
  async run() {
    const dist = new URL("../../dist/index.js", import.meta.url);
    const built = existsSync(dist) && (await import(dist.href)).RedisStore !== undefined;
    return {
      measured: false,
      reason: built ? "the Redis jobs are not written yet" : "RedisStore is not built yet",
    };
  },
  report(data) {
    const result = data.extra.redis as { reason: string } | undefined;
    return {
      markdown: `Not measured in this run: ${result?.reason ?? "not run"}.`,
      targets: [
        {
          target:
            "Redis: >= 0.95 (ioredis) / 0.85 (node-redis) of the EVALSHA ceiling at 256 in flight; ahead of the peers",
          measured: "not measured yet",
          met: null,
        },
      ],
    };
  },
};
