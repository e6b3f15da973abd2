import { performance } from "node:perf_hooks";
import type { Clock } from "../../clock.js";
import type { StoreReply } from "../../core/decision.js";
import { ConfigError } from "../../core/errors.js";
import type { Policy } from "../../core/policy.js";
import type { Store } from "../store.js";
import { StoreReplyError, StoreUnavailableError } from "../store-errors.js";
import { adapt, type Conn, isNoScript, open, type RedisClientLike } from "./clients.js";
import { keyId, keyName, PREFIX } from "./keys.js";
import { SCRIPT, SHA } from "./script.js";

export interface RedisStoreOptions {
  /**
   * Your connected client: ioredis, iovalkey, an ioredis Cluster, or node-redis
   * v4/v5. The store never closes it. Give either `client` or `url`.
   */
  client?: RedisClientLike;
  /**
   * A `redis://` or `rediss://` URL: the store opens (and on `close`, quits) its
   * own client with the first library installed (ioredis, iovalkey, redis),
   * set up as the README ("Client options that matter") advises.
   */
  url?: string;
  /** Start of every key: 1 to 20 of `A-Z a-z 0-9 _ . : -`. Default `"floodgate"`. */
  prefix?: string;
  /**
   * Milliseconds a RateLimiter waits for Redis before following its
   * `onStoreError`. Integer from 1 to 60000; default 50.
   */
  timeout?: number;
  /** Tests only: a clock in epoch ms sent to the script instead of Redis `TIME`. */
  now?: () => number;
}

interface Plan {
  /** `}:name` for each policy. */
  readonly suffixes: string[];
  /**
   * A consume's policy arguments: capacity, refillRate, interval of each
   * policy, plus maxDebt and blockFor when some policy has blockFor.
   */
  readonly tail: string[];
  /** capacity, refillRate, interval, maxDebt, blockFor of each policy (adjust, block). */
  readonly full: string[];
  readonly numkeys: string;
}

const OPTIONS = new Set(["client", "url", "prefix", "timeout", "now"]);

/**
 * RedisStore keeps buckets in Redis or Valkey, shared by every instance: one
 * Lua script decides each request against all its policies atomically, with
 * Redis `TIME` as the clock, and idle keys expire when their bucket would be
 * full again. Keys are `prefix:{client}:policy`, one Cluster slot per client.
 */
export class RedisStore implements Store {
  readonly prefix: string;
  /** Milliseconds a RateLimiter waits for a reply before following `onStoreError`. */
  readonly timeout: number;
  #conn: Conn | undefined;
  #closed = false;
  readonly #opening: Promise<void> | undefined;
  readonly #owned: boolean;
  readonly #head: string;
  /** The injected test clock, if any; absent in production, where Redis `TIME` is the clock. */
  readonly clock: Clock | undefined;
  readonly #plans = new WeakMap<readonly Policy[], Plan>();

  constructor(options: RedisStoreOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError(
        "RedisStore options",
        options,
        "must be an object",
        "new RedisStore({ client }) with your ioredis or node-redis client, or new RedisStore({ url })",
      );
    }
    for (const key of Object.keys(options)) {
      if (!OPTIONS.has(key)) {
        throw new ConfigError(
          `RedisStore.${key}`,
          (options as Record<string, unknown>)[key],
          "is not a RedisStore option",
          `use one of ${[...OPTIONS].join(", ")}`,
        );
      }
    }
    const { client, url, prefix = "floodgate", timeout = 50, now } = options;
    if ((client === undefined) === (url === undefined)) {
      throw new ConfigError(
        "RedisStore.client",
        client,
        "or url must be given, and not both",
        "pass { client: new Redis(...) } or { url: 'redis://127.0.0.1:6379' }",
      );
    }
    if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
      throw new ConfigError(
        "RedisStore.prefix",
        prefix,
        "must be 1 to 20 of A-Z a-z 0-9 _ . : -",
        'use a short label such as "floodgate" or "myapp:rl"',
      );
    }
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60_000) {
      throw new ConfigError(
        "RedisStore.timeout",
        timeout,
        "must be whole milliseconds from 1 to 60000",
        "a few times your Redis round trip, e.g. timeout: 50",
      );
    }
    if (now !== undefined && typeof now !== "function") {
      throw new ConfigError(
        "RedisStore.now",
        now,
        "must be a function returning epoch ms (tests only)",
        "leave it out: Redis TIME is the clock",
      );
    }
    this.prefix = prefix;
    this.timeout = timeout;
    this.#head = `${prefix}:{`;
    this.clock = now;
    if (client !== undefined) {
      this.#conn = adapt(client);
      if (this.#conn === undefined) {
        throw new ConfigError(
          "RedisStore.client",
          client,
          "must be an ioredis, iovalkey or node-redis client",
          "pass new Redis(url) (ioredis), or createClient({ url }) after await client.connect() (node-redis)",
        );
      }
      this.#owned = false;
      this.#preload(this.#conn);
    } else {
      if (typeof url !== "string" || !/^(rediss?|valkeys?):\/\//.test(url)) {
        throw new ConfigError(
          "RedisStore.url",
          url,
          "must be a redis:// or rediss:// URL",
          "pass url: 'redis://127.0.0.1:6379'",
        );
      }
      this.#owned = true;
      this.#opening = open(url.replace(/^valkey/, "redis")).then((conn) => {
        this.#conn = conn;
        this.#preload(conn);
      });
      // A missing client library is reported by ready() and by every call.
      this.#opening.catch(() => {});
    }
  }

  /**
   * ready resolves once the store's own client (opened from `url`) is loaded;
   * it rejects when no client library is installed. Calls before then fail
   * fast and the limiter falls back.
   */
  async ready(): Promise<void> {
    await this.#opening;
  }

  /** available tells whether a call would be sent now (the client is connected). */
  available(): boolean {
    return !this.#closed && this.#conn?.ready() === true;
  }

  consume(
    key: string,
    policies: readonly Policy[],
    cost: number,
    spend: boolean,
  ): Promise<StoreReply> {
    return this.#run(
      key,
      policies,
      cost === 1 ? (spend ? "1" : "-1") : String(spend ? cost : -cost),
      false,
    );
  }

  /**
   * adjust charges `delta` tokens after the fact (negative: gives them back)
   * in one script call. Sent once: a failure is the caller's to report, and
   * never retried here, since a reply lost after the script ran would charge twice.
   */
  adjust(key: string, policies: readonly Policy[], delta: number): Promise<StoreReply> {
    return this.#run(key, policies, `a${delta}`, true);
  }

  /** block keeps `key` out for `ms` from now by Redis's clock, in one script call. */
  block(key: string, policies: readonly Policy[], ms: number): Promise<StoreReply> {
    return this.#run(key, policies, `b${ms}`, true);
  }

  #run(key: string, policies: readonly Policy[], op: string, full: boolean): Promise<StoreReply> {
    const conn = this.#conn;
    if (conn === undefined || this.#closed || !conn.ready()) {
      return Promise.reject(new StoreUnavailableError("the Redis client"));
    }
    const plan = this.#plan(policies);
    const n = policies.length;
    const id = this.#head + keyId(key);
    const tail = full ? plan.full : plan.tail;
    const clock = this.clock;
    const argv: string[] = new Array(3 + n + tail.length + (clock === undefined ? 0 : 1));
    argv[0] = SHA;
    argv[1] = plan.numkeys;
    for (let i = 0; i < n; i++) argv[2 + i] = id + (plan.suffixes[i] as string);
    argv[2 + n] = op;
    for (let i = 0; i < tail.length; i++) argv[3 + n + i] = tail[i] as string;
    if (clock !== undefined) argv[3 + n + tail.length] = String(clock());
    const sent = performance.now();
    return conn.evalsha(argv).then(check, (error: unknown) => {
      // After a restart or failover the script cache is empty; EVAL loads it.
      // Not when the caller has already given up: that call is answered.
      if (!isNoScript(error) || performance.now() - sent > this.timeout) throw error;
      argv[0] = SCRIPT;
      return conn.eval(argv).then(check);
    });
  }

  async reset(key: string, policies: readonly Policy[]): Promise<void> {
    const conn = this.#conn;
    if (conn === undefined || !conn.ready()) throw new StoreUnavailableError("the Redis client");
    const plan = this.#plan(policies);
    const id = this.#head + keyId(key);
    await conn.del(plan.suffixes.map((s) => id + s));
  }

  /** close quits the client the store opened from `url`; a client you passed is left open. */
  async close(): Promise<void> {
    this.#closed = true;
    if (!this.#owned) return;
    await this.#opening?.catch(() => {});
    await this.#conn?.quit().catch(() => {});
  }

  /**
   * preload sends SCRIPT LOAD once the client can, so the first decisions do
   * not pay a NOSCRIPT round trip (EVALSHA still falls back to EVAL, e.g.
   * after a restart, or on another Cluster node). Best effort: errors are ignored.
   */
  #preload(conn: Conn): void {
    const tryLoad = (attempts: number): void => {
      if (this.#closed) return;
      if (conn.ready()) {
        conn.load(SCRIPT).catch(() => {});
        return;
      }
      if (attempts > 0) setTimeout(tryLoad, 20, attempts - 1).unref();
    };
    tryLoad(250);
  }

  #plan(policies: readonly Policy[]): Plan {
    let plan = this.#plans.get(policies);
    if (plan === undefined) {
      const short = policies.flatMap((p) => [
        String(p.capacity),
        String(p.refillRate),
        String(p.interval),
      ]);
      const full = policies.flatMap((p) => [
        String(p.capacity),
        String(p.refillRate),
        String(p.interval),
        String(p.maxDebt),
        String(p.blockFor),
      ]);
      plan = {
        suffixes: policies.map((p) => `}:${keyName(p.name)}`),
        tail: policies.some((p) => p.blockFor > 0) ? full : short,
        full,
        numkeys: String(policies.length),
      };
      this.#plans.set(policies, plan);
    }
    return plan;
  }
}

function check(reply: unknown): StoreReply {
  if (!Array.isArray(reply) || reply.length < 4 || typeof reply[0] !== "number") {
    throw new StoreReplyError(reply);
  }
  // Token counts near 2^53 come as text (see SCRIPT); Number() parses them exactly.
  for (let i = 1; i < reply.length; i++) {
    if (typeof reply[i] !== "number") reply[i] = Number(reply[i]);
  }
  return reply as number[];
}
