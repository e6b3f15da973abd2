import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadFloodgate } from "../lib/floodgate.js";

const require = createRequire(import.meta.url);

/**
 * Limits says how much each contender lets through: `capacity` requests per
 * `windowMs` (for floodgate: a bucket of `capacity` refilled one token per
 * window). Admit runs use a capacity no run can exhaust; reject runs use 1.
 */
export interface Limits {
  capacity: number;
  windowMs: number;
}

/**
 * Runner takes `count` decisions, one per key, walking `keys` round-robin
 * from `start`, and returns how many were allowed. Every contender has its
 * own loop (its own function in this file) so no two share JIT feedback.
 */
export type Runner = (keys: readonly string[], start: number, count: number) => Promise<number>;

export interface Contender {
  /** Short id used in JSON and on the command line. */
  id: string;
  /** Name and version shown in tables. */
  label: string;
  /** What the contender's decision call is. */
  call: string;
  /** true for references that only make sense in the heap scenario. */
  heapOnly?: boolean;
  create(limits: Limits): Promise<Runner>;
}

function version(pkg: string): string {
  const file = new URL(`../../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

const floodgate: Contender = {
  id: "floodgate",
  label: "floodgate",
  call: "await limiter.consume(key)",
  async create(limits) {
    const { RateLimiter } = await loadFloodgate();
    const limiter = new RateLimiter({
      policy: { capacity: limits.capacity, refillRate: 1, interval: limits.windowMs },
    });
    return async function floodgateRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const d = await limiter.consume(keys[i] as string);
        if (d.allowed) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

interface InlineResult {
  allowed: boolean;
  remaining: number;
  resetAt: number;
  retryAfter: number;
}

/**
 * inlineBucket is the floor: the smallest correct token bucket one would
 * write inline, a Map of `{ tokens, refilledAt }` objects with the same
 * semantics as floodgate (whole intervals, full buckets restart their clock),
 * answering a small result object. No validation, no policies, no store.
 */
function inlineBucket(limits: Limits): (key: string) => InlineResult {
  const { capacity, windowMs } = limits;
  const buckets = new Map<string, { tokens: number; refilledAt: number }>();
  return function take(key) {
    const now = Date.now();
    let b = buckets.get(key);
    if (b === undefined) {
      b = { tokens: capacity, refilledAt: now };
      buckets.set(key, b);
    } else {
      const n = Math.floor((now - b.refilledAt) / windowMs);
      if (n > 0) {
        b.tokens = Math.min(capacity, b.tokens + n);
        b.refilledAt += n * windowMs;
      }
      if (b.tokens === capacity) b.refilledAt = now;
    }
    const resetAt = b.refilledAt + windowMs;
    if (b.tokens >= 1) {
      b.tokens--;
      return { allowed: true, remaining: b.tokens, resetAt, retryAfter: 0 };
    }
    return { allowed: false, remaining: 0, resetAt, retryAfter: resetAt - now };
  };
}

const inlineSync: Contender = {
  id: "inline-sync",
  label: "inline Map bucket (sync)",
  call: "take(key)",
  async create(limits) {
    const take = inlineBucket(limits);
    return async function inlineSyncRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const d = take(keys[i] as string);
        if (d.allowed) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

const inlineAwait: Contender = {
  id: "inline-await",
  label: "inline Map bucket (await)",
  call: "await take(key)",
  async create(limits) {
    const take = inlineBucket(limits);
    return async function inlineAwaitRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const d = await take(keys[i] as string);
        if (d.allowed) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

const expressRateLimit: Contender = {
  id: "express-rate-limit",
  label: `express-rate-limit ${version("express-rate-limit")}`,
  call: "await store.increment(key) (MemoryStore)",
  async create(limits) {
    const { MemoryStore } = await import("express-rate-limit");
    const store = new MemoryStore();
    store.init({ windowMs: limits.windowMs } as Parameters<typeof store.init>[0]);
    const max = limits.capacity;
    return async function expressRateLimitRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const { totalHits } = await store.increment(keys[i] as string);
        if (totalHits <= max) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

const rateLimiterFlexible: Contender = {
  id: "rate-limiter-flexible",
  label: `rate-limiter-flexible ${version("rate-limiter-flexible")}`,
  call: "await limiter.consume(key) (RateLimiterMemory; rejects when limited)",
  async create(limits) {
    const { RateLimiterMemory } = await import("rate-limiter-flexible");
    const limiter = new RateLimiterMemory({
      points: limits.capacity,
      duration: limits.windowMs / 1000,
    });
    return async function rateLimiterFlexibleRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        try {
          await limiter.consume(keys[i] as string);
          allowed++;
        } catch {
          // a RateLimiterRes: limited
        }
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

interface FastifyLocalStore {
  incr(
    key: string,
    cb: (err: Error | null, res: { current: number; ttl: number }) => void,
    timeWindow: number,
    max: number,
  ): void;
}

const fastifyRateLimit: Contender = {
  id: "fastify-rate-limit",
  label: `@fastify/rate-limit ${version("@fastify/rate-limit")}`,
  call: "await new Promise(r => store.incr(key, cb, window, max)) (LocalStore, as the plugin calls it)",
  async create(limits) {
    const LocalStore = require("@fastify/rate-limit/store/LocalStore.js") as new (
      continueExceeding: boolean,
      exponentialBackoff: boolean,
      cache: number,
    ) => FastifyLocalStore;
    // The plugin's default LRU holds 5000 keys; give it room for every key so it tracks them all.
    const store = new LocalStore(false, false, 4_000_000);
    const { capacity: max, windowMs } = limits;
    return async function fastifyRateLimitRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const key = keys[i] as string;
        const res = await new Promise<{ current: number }>((resolve, reject) => {
          store.incr(key, (err, r) => (err ? reject(err) : resolve(r)), windowMs, max);
        });
        if (res.current <= max) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

const honoRateLimiter: Contender = {
  id: "hono-rate-limiter",
  label: `hono-rate-limiter ${version("hono-rate-limiter")}`,
  call: "await store.increment(key) (MemoryStore)",
  async create(limits) {
    const { MemoryStore } = await import("hono-rate-limiter");
    const store = new MemoryStore();
    store.init({ windowMs: limits.windowMs } as Parameters<typeof store.init>[0]);
    const max = limits.capacity;
    return async function honoRateLimiterRun(keys, start, count) {
      let allowed = 0;
      let i = start;
      for (let n = 0; n < count; n++) {
        const { totalHits } = await store.increment(keys[i] as string);
        if (totalHits <= max) allowed++;
        if (++i === keys.length) i = 0;
      }
      return allowed;
    };
  },
};

const bareMap: Contender = {
  id: "bare-map",
  label: "Map<string, true> (reference)",
  call: "map.set(key, true)",
  heapOnly: true,
  async create() {
    const map = new Map<string, true>();
    return async function bareMapRun(keys, start, count) {
      let i = start;
      for (let n = 0; n < count; n++) {
        map.set(keys[i] as string, true);
        if (++i === keys.length) i = 0;
      }
      return count;
    };
  },
};

/** CONTENDERS in table order: floodgate, the floors, then the peers. */
export const CONTENDERS: readonly Contender[] = [
  floodgate,
  inlineSync,
  inlineAwait,
  expressRateLimit,
  rateLimiterFlexible,
  fastifyRateLimit,
  honoRateLimiter,
  bareMap,
];

export const PEERS = [
  "express-rate-limit",
  "rate-limiter-flexible",
  "fastify-rate-limit",
  "hono-rate-limiter",
] as const;

export function contender(id: string): Contender {
  const c = CONTENDERS.find((x) => x.id === id);
  if (!c) throw new Error(`bench: no contender ${JSON.stringify(id)}`);
  return c;
}
