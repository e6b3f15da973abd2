import { readFileSync } from "node:fs";
import { loadFloodgate } from "../lib/floodgate.js";

/**
 * Limits says how much each contender lets through: `capacity` requests per
 * `windowMs` (for floodgate: a bucket of `capacity` refilled one token per
 * window). Admit runs use a capacity no run can exhaust; reject runs use 1.
 */
export interface Limits {
  capacity: number;
  windowMs: number;
}

/** Decide takes one decision for `key` and tells whether it was allowed. */
export type Decide = (key: string) => Promise<boolean>;

/** Counters a contender can report besides its decisions (floodgate's limiter stats). */
export interface Counters {
  /** Decisions answered by onStoreError (timeouts, errors): they never reached Redis. */
  fallbacks: number;
  /** Denials answered from the cached denial, without Redis. */
  cached: number;
  /** Calls sent to Redis. */
  storeCalls: number;
}

export interface Instance {
  decide: Decide;
  counters?: () => Counters;
  close(): Promise<void>;
}

export interface RedisContender {
  /** Short id used in JSON and on the command line. */
  id: string;
  /** Name and version shown in tables. */
  label: string;
  /** What one decision is. */
  call: string;
  /** true for contenders that never talk to Redis (the in-memory reference). */
  local?: boolean;
  create(port: number, limits: Limits): Promise<Instance>;
}

export function version(pkg: string): string {
  const file = new URL(`../../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/**
 * RedisStore's call deadline in the benchmark: 1 s instead of the default
 * 50 ms, so that on a loaded 2-core machine no decision at 256 in flight is
 * answered by the in-process fallback (that would count in-memory decisions
 * as Redis ones). The worker also reports the fallbacks it saw; a round with
 * any is discarded.
 */
const TIMEOUT = 1000;

/** ioredisClient connects with the options the README ("Client options that matter") advises. */
async function ioredisClient(port: number) {
  const { Redis } = await import("ioredis");
  const client = new Redis({
    host: "127.0.0.1",
    port,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
  });
  await client.connect();
  return client;
}

/** nodeRedisClient connects node-redis v5 with the options the README ("Client options that matter") advises. */
async function nodeRedisClient(port: number) {
  const { createClient } = await import("redis");
  const client = createClient({
    url: `redis://127.0.0.1:${port}`,
    disableOfflineQueue: true,
  });
  await client.connect();
  return client;
}

/**
 * floodgateOver builds a RateLimiter over a RedisStore on `client`: one
 * policy, or with `policies: 2` a second one as well (per second and per
 * hour, both out of reach on admit runs), which the script decides in the
 * same call.
 */
async function floodgateOver(
  client: unknown,
  limits: Limits,
  close: () => Promise<unknown>,
  policies: 1 | 2 = 1,
): Promise<Instance> {
  const { RateLimiter, RedisStore } = await loadFloodgate();
  const store = new RedisStore({
    client: client as ConstructorParameters<typeof RedisStore>[0]["client"] & object,
    timeout: TIMEOUT,
  });
  const hour = {
    name: "hour",
    capacity: limits.capacity,
    refillRate: 1,
    interval: limits.windowMs,
  };
  const limiter =
    policies === 1
      ? new RateLimiter({
          policy: { capacity: limits.capacity, refillRate: 1, interval: limits.windowMs },
          store,
        })
      : new RateLimiter({
          policies: [
            { name: "second", capacity: limits.capacity, refillRate: 1, interval: 1000 },
            hour,
          ],
          store,
        });
  return {
    decide: async function floodgateDecide(key) {
      return (await limiter.consume(key)).allowed;
    },
    counters: () => {
      const s = limiter.stats();
      return { fallbacks: s.fallbacks, cached: s.cached, storeCalls: s.storeCalls };
    },
    close: async () => {
      await limiter.close();
      await close();
    },
  };
}

const floodgateIoredis: RedisContender = {
  id: "floodgate-ioredis",
  label: `floodgate RedisStore + ioredis ${version("ioredis")}`,
  call: "await limiter.consume(key) (RedisStore over ioredis)",
  async create(port, limits) {
    const client = await ioredisClient(port);
    return floodgateOver(client, limits, () => client.quit());
  },
};

const floodgateNodeRedis: RedisContender = {
  id: "floodgate-node-redis",
  label: `floodgate RedisStore + node-redis ${version("redis")}`,
  call: "await limiter.consume(key) (RedisStore over node-redis)",
  async create(port, limits) {
    const client = await nodeRedisClient(port);
    return floodgateOver(client, limits, () => client.close());
  },
};

const floodgateIoredis2: RedisContender = {
  id: "floodgate-ioredis-2p",
  label: `floodgate RedisStore + ioredis ${version("ioredis")}, two policies`,
  call: "await limiter.consume(key) (RedisStore over ioredis; per-second and per-hour policy)",
  async create(port, limits) {
    const client = await ioredisClient(port);
    return floodgateOver(client, limits, () => client.quit(), 2);
  },
};

const floodgateMemory: RedisContender = {
  id: "floodgate-memory",
  label: "floodgate MemoryStore (reference)",
  call: "await limiter.consume(key) (default MemoryStore)",
  local: true,
  async create(_port, limits) {
    const { RateLimiter } = await loadFloodgate();
    const limiter = new RateLimiter({
      policy: { capacity: limits.capacity, refillRate: 1, interval: limits.windowMs },
    });
    return {
      decide: async function floodgateMemoryDecide(key) {
        return (await limiter.consume(key)).allowed;
      },
      close: async () => {},
    };
  },
};

const rateLimiterFlexible: RedisContender = {
  id: "rate-limiter-flexible",
  label: `rate-limiter-flexible ${version("rate-limiter-flexible")} RateLimiterRedis + ioredis`,
  call: "await limiter.consume(key) (RateLimiterRedis over ioredis; rejects when limited)",
  async create(port, limits) {
    const { RateLimiterRedis } = await import("rate-limiter-flexible");
    const client = await ioredisClient(port);
    const limiter = new RateLimiterRedis({
      storeClient: client,
      points: limits.capacity,
      duration: limits.windowMs / 1000,
    });
    return {
      decide: function rateLimiterFlexibleDecide(key) {
        return limiter.consume(key).then(
          () => true,
          (res: unknown) => {
            if (res instanceof Error) throw res;
            return false; // a RateLimiterRes: limited
          },
        );
      },
      close: async () => {
        await client.quit();
      },
    };
  },
};

const rateLimiterFlexibleNodeRedis: RedisContender = {
  id: "rate-limiter-flexible-node-redis",
  label: `rate-limiter-flexible ${version("rate-limiter-flexible")} RateLimiterRedis + node-redis`,
  call: "await limiter.consume(key) (RateLimiterRedis over node-redis, useRedisPackage: true; rejects when limited)",
  async create(port, limits) {
    const { RateLimiterRedis } = await import("rate-limiter-flexible");
    const client = await nodeRedisClient(port);
    const limiter = new RateLimiterRedis({
      storeClient: client,
      useRedisPackage: true,
      points: limits.capacity,
      duration: limits.windowMs / 1000,
    });
    return {
      decide: function rateLimiterFlexibleNodeRedisDecide(key) {
        return limiter.consume(key).then(
          () => true,
          (res: unknown) => {
            if (res instanceof Error) throw res;
            return false; // a RateLimiterRes: limited
          },
        );
      },
      close: async () => {
        await client.close();
      },
    };
  },
};

const rateLimitRedisNodeRedis: RedisContender = {
  id: "rate-limit-redis-node-redis",
  label: `rate-limit-redis ${version("rate-limit-redis")} (express-rate-limit's store) + node-redis`,
  call: "await store.increment(key) (as express-rate-limit calls it; sendCommand = client.sendCommand(args))",
  async create(port, limits) {
    const { RedisStore } = await import("rate-limit-redis");
    const client = await nodeRedisClient(port);
    const store = new RedisStore({
      // As rate-limit-redis documents it for node-redis.
      sendCommand: (...args: string[]) => client.sendCommand(args) as Promise<number>,
    });
    store.init({ windowMs: limits.windowMs } as Parameters<typeof store.init>[0]);
    const max = limits.capacity;
    return {
      decide: async function rateLimitRedisNodeRedisDecide(key) {
        return (await store.increment(key)).totalHits <= max;
      },
      close: async () => {
        await client.close();
      },
    };
  },
};

const rateLimitRedis: RedisContender = {
  id: "rate-limit-redis",
  label: `rate-limit-redis ${version("rate-limit-redis")} (express-rate-limit's store) + ioredis`,
  call: "await store.increment(key) (as express-rate-limit calls it; sendCommand = client.call)",
  async create(port, limits) {
    const { RedisStore } = await import("rate-limit-redis");
    const client = await ioredisClient(port);
    const store = new RedisStore({
      // As rate-limit-redis documents it for ioredis.
      sendCommand: (command: string, ...args: string[]) =>
        client.call(command, ...args) as Promise<number>,
    });
    store.init({ windowMs: limits.windowMs } as Parameters<typeof store.init>[0]);
    const max = limits.capacity;
    return {
      decide: async function rateLimitRedisDecide(key) {
        return (await store.increment(key)).totalHits <= max;
      },
      close: async () => {
        await client.quit();
      },
    };
  },
};

/** REDIS_CONTENDERS in table order: floodgate, then the peers, then the in-memory reference. */
export const REDIS_CONTENDERS: readonly RedisContender[] = [
  floodgateIoredis,
  floodgateNodeRedis,
  floodgateIoredis2,
  rateLimiterFlexible,
  rateLimitRedis,
  rateLimiterFlexibleNodeRedis,
  rateLimitRedisNodeRedis,
  floodgateMemory,
];

export function redisContender(id: string): RedisContender {
  const c = REDIS_CONTENDERS.find((x) => x.id === id);
  if (!c) throw new Error(`bench: no Redis contender ${JSON.stringify(id)}`);
  return c;
}
