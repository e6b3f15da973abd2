import { performance } from "node:perf_hooks";
import type { Clock } from "../../clock.js";
import type { StoreReply } from "../../core/decision.js";
import { ClosedError, ConfigError } from "../../core/errors.js";
import { checkInteger, checkOptions } from "../../core/options.js";
import type { Policy } from "../../core/policy.js";
import { CodedWarnings } from "../../warn.js";
import type { Store } from "../store.js";
import { StoreReplyError, StoreTimeoutError, StoreUnavailableError } from "../store-errors.js";
import {
  adapt,
  type Conn,
  isNoScript,
  open,
  type RedisClientLike,
  type Server,
} from "./clients.js";
import { keyId, keyName, PREFIX } from "./keys.js";
import { MEMBERS, MEMBERS_SHA } from "./members.js";
import { SCRIPT, SHA } from "./script.js";

/**
 * RedisWarningCode names what a RedisStore reports once it has connected:
 * `FLOODGATE_REDIS_EVICTION`: the server's `maxmemory-policy` is not
 * `noeviction`, so at `maxmemory` Redis may delete buckets, and a deleted
 * bucket is a full one (floodgate's keys all have a TTL, so `volatile-*`
 * policies evict them too);
 * `FLOODGATE_REDIS_CONFIG_UNREADABLE`: `CONFIG GET maxmemory-policy` was
 * refused (managed Redis often renames or forbids CONFIG), so the store
 * cannot tell.
 */
export type RedisWarningCode = "FLOODGATE_REDIS_EVICTION" | "FLOODGATE_REDIS_CONFIG_UNREADABLE";

const CODES: readonly RedisWarningCode[] = [
  "FLOODGATE_REDIS_EVICTION",
  "FLOODGATE_REDIS_CONFIG_UNREADABLE",
];

/** How long close() lets QUIT take before it cuts the sockets (a paused or dead server never answers). */
const QUIT_GRACE = 100;
/** How often the store looks whether a client that is still connecting has connected. */
const POLL = 10;
/** Pause before the store tries again to load its scripts after a failure. */
const RETRY = 100;

export interface RedisStoreOptions {
  /**
   * Your connected client: ioredis, iovalkey, an ioredis Cluster, or node-redis
   * v4/v5. The store never closes it. Give either `client` or `url`.
   */
  client?: RedisClientLike | undefined;
  /**
   * A `redis://` or `rediss://` URL: the store opens (and on `close`, quits) its
   * own client with the first library installed (ioredis, iovalkey, redis),
   * set up as the README ("Client options that matter") advises.
   */
  url?: string | undefined;
  /** Start of every key: 1 to 20 of `A-Z a-z 0-9 _ . : -`. Default `"floodgate"`. */
  prefix?: string | undefined;
  /**
   * Milliseconds a RateLimiter waits for Redis before following its
   * `onStoreError`. Integer from 1 to 60000; default 50.
   */
  timeout?: number | undefined;
  /**
   * Milliseconds `ready()` waits for the connection (and the scripts to
   * load) before it rejects. Integer from 1 to 600000; default 5000.
   */
  readyTimeout?: number | undefined;
  /**
   * The store's warnings after it connects, on (`true`, the default) or off
   * (`false`), or some of them by code: `{ FLOODGATE_REDIS_EVICTION: false }`.
   */
  warnings?: boolean | { readonly [code in RedisWarningCode]?: boolean | undefined } | undefined;
  /** Tests only: a clock in epoch ms sent to the script instead of Redis `TIME`. */
  now?: (() => number) | undefined;
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
  /** How many of `tail`'s numbers each policy has: "3" or "5". */
  readonly width: string;
}

const OPTIONS = new Set(["client", "url", "prefix", "timeout", "readyTimeout", "warnings", "now"]);

/**
 * RedisStore keeps buckets in Redis or Valkey, shared by every instance: one
 * Lua script decides each request against all its policies atomically, with
 * Redis `TIME` as the clock, and idle keys expire when their bucket would be
 * full again. Keys are `prefix:{client}:policy`, one Cluster slot per client.
 *
 * Once its client has connected, the store loads its scripts on every server
 * (each master of a Cluster) and reads `maxmemory-policy` there, warning
 * once unless it is `noeviction`. `ready()` resolves when that is done.
 * `close()` rejects every later call with a ClosedError; it closes the client
 * only when the store opened it from `url`.
 */
export class RedisStore implements Store {
  readonly prefix: string;
  /** Milliseconds a RateLimiter waits for a reply before following `onStoreError`. */
  readonly timeout: number;
  /** Milliseconds `ready()` waits before it rejects. */
  readonly readyTimeout: number;
  #conn: Conn | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #opening: Promise<Conn> | undefined;
  readonly #owned: boolean;
  readonly #head: string;
  readonly #members: string;
  readonly #warnings: CodedWarnings<RedisWarningCode>;
  /** Where the store connects, for messages (a url without its password). */
  #where: string;
  #lastError: string | undefined;
  /** True once connected with the scripts loaded and the eviction policy read. */
  #prepared = false;
  /** Why ready() can never resolve: a plain client connected to one node of a multi-node Cluster. */
  #misfit: ConfigError | undefined;
  /** Callers of ready() waiting for #prepared. */
  readonly #waiting = new Set<() => void>();
  /** Each deadline running (ready(), members()): its cancel, and what close() answers its waiter. */
  readonly #timers = new Map<() => void, () => void>();
  #poll: ReturnType<typeof setTimeout> | undefined;
  /** The injected test clock, if any; absent in production, where Redis `TIME` is the clock. */
  readonly clock: Clock | undefined;
  readonly #plans = new WeakMap<readonly Policy[], Plan>();
  /** Consumes made in this turn, waiting to go to Redis in one script call (see #join). */
  #batch: Batch | undefined;
  /** A flush is queued for the end of this turn. */
  #turn = false;
  /** Consumes sent to Redis in batches and not answered yet. */
  #pending = 0;
  /** Consumes sent in this turn (see #submit). */
  #sentInTurn = 0;
  /** Batches held until the check phase (see #submit). */
  #held: Batch[] = [];

  constructor(options: RedisStoreOptions) {
    checkOptions(options, OPTIONS, {
      name: "RedisStore options",
      kind: "RedisStore",
      prefix: "RedisStore.",
      example:
        "new RedisStore({ client }) with your ioredis or node-redis client, or new RedisStore({ url })",
    });
    const {
      client,
      url,
      prefix = "floodgate",
      timeout = 50,
      readyTimeout = 5000,
      warnings,
      now,
    } = options;
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
    checkInteger(
      "RedisStore.timeout",
      timeout,
      1,
      60_000,
      "a few times your Redis round trip, e.g. timeout: 50",
      "whole milliseconds",
    );
    checkInteger(
      "RedisStore.readyTimeout",
      readyTimeout,
      1,
      600_000,
      "how long startup may wait for Redis, e.g. readyTimeout: 5000",
      "whole milliseconds",
    );
    this.#warnings = new CodedWarnings(warnings, "RedisStore.warnings", CODES);
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
    this.readyTimeout = readyTimeout;
    this.#head = `${prefix}:{`;
    this.#members = `${prefix}:members`;
    this.#where = "the Redis client";
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
      this.#where = `Redis at ${this.#conn.servers()[0]?.name ?? "the client you passed"}`;
      this.#connect(this.#conn);
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
      this.#where = `Redis at ${url.replace(/\/\/[^@/]*@/, "//")}`;
      this.#opening = open(url.replace(/^valkey/, "redis"), (error) => {
        this.#lastError = message(error);
      }).then((conn) => {
        this.#conn = conn;
        if (this.#closed) conn.disconnect();
        else this.#connect(conn);
        return conn;
      });
      // A missing client library is reported by ready() and by every call.
      this.#opening.catch(() => {});
    }
  }

  /**
   * ready resolves once the client has connected and the store's scripts
   * are loaded (so the first decisions go to Redis, not to the limiter's
   * fallback); after that first time it resolves at once, connected or not. It rejects with a StoreUnavailableError naming the server and
   * the last connection error when that takes longer than `readyTimeout`,
   * with the client library's absence when none is installed, and with a
   * ClosedError after `close()`. Calls made before then fail fast.
   */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError("RedisStore"));
    if (this.#prepared) return Promise.resolve();
    if (this.#misfit !== undefined) return Promise.reject(this.#misfit);
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.#waiting.delete(done);
        cancel();
        if (this.#prepared) resolve();
        else reject(this.#misfit ?? new ClosedError("RedisStore"));
      };
      const cancel = this.#after(
        this.readyTimeout,
        () => {
          this.#waiting.delete(done);
          const last = this.#lastError === undefined ? "" : ` (last error: ${this.#lastError})`;
          reject(
            new StoreUnavailableError(
              this.#where,
              `ready() gave up after ${this.readyTimeout} ms${last}`,
            ),
          );
        },
        done,
      );
      this.#waiting.add(done);
      this.#opening?.catch((error: unknown) => {
        this.#waiting.delete(done);
        cancel();
        reject(error);
      });
    });
  }

  /**
   * keyError tells Redis's `WRONGTYPE` (a key of another type where a bucket
   * should be: one client's data, not a failing Redis) from other errors.
   */
  keyError(error: unknown): boolean {
    return error instanceof Error && error.message.includes("WRONGTYPE");
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
    if (this.#closed) return Promise.reject(new ClosedError("RedisStore"));
    const conn = this.#conn;
    if (conn === undefined || !conn.ready()) {
      return Promise.reject(new StoreUnavailableError("the Redis client"));
    }
    const plan = this.#plan(policies);
    const n = policies.length;
    const id = this.#head + keyId(key);
    const tail = full ? plan.full : plan.tail;
    const clock = this.clock;
    if (!full && conn.single) return this.#join(id, plan, op, clock);
    // Anything else reaches Redis after the consumes made before it.
    this.#flush();
    const argv: string[] = new Array(3 + n + tail.length + (clock === undefined ? 0 : 1));
    argv[0] = SHA;
    argv[1] = plan.numkeys;
    for (let i = 0; i < n; i++) argv[2 + i] = id + (plan.suffixes[i] as string);
    argv[2 + n] = op;
    for (let i = 0; i < tail.length; i++) argv[3 + n + i] = tail[i] as string;
    if (clock !== undefined) argv[3 + n + tail.length] = String(clock());
    return this.#send(conn, argv, full).then(check);
  }

  /**
   * join adds a consume to this turn's batch. The consumes made before the
   * microtasks queued at the turn's first one have run (e.g. the callers
   * resumed by one read of replies) go to Redis in few script calls, each
   * deciding its consumes one after another, atomically, with one Redis
   * TIME: the same decisions as one call each, for less of Redis's time
   * (the call, TIME, the protocol and each policy's numbers are paid once
   * per batch) and of the client's (one command to encode and parse). The
   * turn's first FIRST_BATCH consumes go at once, so Redis starts on them
   * while the client makes the rest; those go in batches of about half the
   * consumes awaiting Redis's answer (from MIN_BATCH to MAX_BATCH), so a few
   * calls stay in flight and Redis and the client work at the same time. A
   * batch of one is sent as a plain call.
   */
  #join(id: string, plan: Plan, op: string, clock: Clock | undefined): Promise<StoreReply> {
    let batch = this.#batch;
    if (batch === undefined) {
      let limit = FIRST_BATCH;
      if (this.#turn) limit = Math.min(MAX_BATCH, Math.max(MIN_BATCH, this.#pending >> 1));
      batch = { keys: [], plans: [], args: [], settle: [], limit };
      this.#batch = batch;
      if (!this.#turn) {
        this.#turn = true;
        queueMicrotask(this.#endTurn);
      }
    }
    const suffixes = plan.suffixes;
    for (let i = 0; i < suffixes.length; i++) batch.keys.push(id + (suffixes[i] as string));
    // Plans are numbered from 1 in the script; a batch rarely holds more than one.
    let index = batch.plans.indexOf(plan) + 1;
    if (index === 0) index = batch.plans.push(plan);
    batch.args.push(String(index), op);
    if (clock !== undefined) batch.args.push(String(clock()));
    const reply = new Promise<StoreReply>((resolve, reject) => {
      (batch as Batch).settle.push({ resolve, reject });
    });
    if (batch.settle.length === batch.limit) {
      this.#batch = undefined;
      this.#submit(batch);
    }
    return reply;
  }

  /**
   * submit dispatches a full batch, or holds it for the check phase once this
   * turn has sent HOLD_AFTER consumes over a client that writes a turn's
   * commands together (node-redis): the first part then reaches Redis in
   * this turn's write and the rest one write later, so Redis decides the
   * first while the client still makes or reads the rest. Sent in one write,
   * a large turn fits one of Redis's reads: Redis would decide all of it
   * before answering, and the two would take turns instead of overlapping.
   */
  #submit(batch: Batch): void {
    const conn = this.#conn as Conn;
    // Behind a held batch, in call order.
    if (this.#held.length > 0 || (conn.writesLater && this.#sentInTurn >= HOLD_AFTER)) {
      if (this.#held.length === 0) setImmediate(this.#release);
      this.#held.push(batch);
      return;
    }
    this.#sentInTurn += batch.settle.length;
    this.#dispatch(batch);
  }

  /** endTurn sends the turn's last batch (or holds it, as submit does) once its microtasks have run. */
  readonly #endTurn = (): void => {
    this.#turn = false;
    const batch = this.#batch;
    if (batch !== undefined) {
      this.#batch = undefined;
      this.#submit(batch);
    }
    this.#sentInTurn = 0;
  };

  /** release sends the batches held for the check phase. */
  readonly #release = (): void => {
    const held = this.#held;
    this.#held = [];
    for (const batch of held) this.#dispatch(batch);
  };

  /** flush sends every consume made so far, now: what is sent next must reach Redis after them. */
  #flush(): void {
    this.#release();
    const batch = this.#batch;
    if (batch === undefined) return;
    this.#batch = undefined;
    this.#dispatch(batch);
  }

  #dispatch(batch: Batch): void {
    const { keys, plans, args, settle } = batch;
    const count = settle.length;
    const conn = this.#conn as Conn;
    const argv = [SHA, String(keys.length), ...keys];
    if (count === 1) {
      // A plain call: the op, the policies' numbers, the test clock's reading.
      argv.push(args[1] as string, ...(plans[0] as Plan).tail, ...args.slice(2));
    } else {
      argv.push("B", String(count), this.clock === undefined ? "0" : "1", String(plans.length));
      for (const plan of plans) argv.push(plan.numkeys, plan.width, ...plan.tail);
      argv.push(...args);
    }
    this.#pending += count;
    this.#send(conn, argv, false).then(
      (reply) => {
        this.#pending -= count;
        if (count === 1) {
          settleOne(settle[0] as Settle, reply);
          return;
        }
        if (!Array.isArray(reply) || reply.length !== count) {
          const error = new StoreReplyError(reply);
          for (const s of settle) s.reject(error);
          return;
        }
        for (let i = 0; i < count; i++) settleOne(settle[i] as Settle, reply[i]);
      },
      (error: unknown) => {
        this.#pending -= count;
        // A Cluster node refuses a script whose keys span slots before it
        // runs (so nothing was charged): one CLUSTER INFO could not tell
        // (refused by an ACL, renamed). Share no script call from now on,
        // and send each of these consumes alone.
        if (count > 1 && isCrossSlot(error)) {
          conn.single = false;
          this.#alone(batch);
          return;
        }
        for (const s of settle) s.reject(error);
      },
    );
  }

  /** alone sends each consume of a batch as a batch of its own: a plain call. */
  #alone(batch: Batch): void {
    const { keys, plans, args, settle } = batch;
    const step = this.clock === undefined ? 2 : 3;
    let k = 0;
    for (let i = 0; i < settle.length; i++) {
      const a = i * step;
      const plan = plans[Number(args[a]) - 1] as Plan;
      const n = plan.suffixes.length;
      this.#dispatch({
        keys: keys.slice(k, k + n),
        plans: [plan],
        args: ["1", ...args.slice(a + 1, a + step)],
        settle: [settle[i] as Settle],
        limit: 1,
      });
      k += n;
    }
  }

  /**
   * send runs the script; after a restart or failover the script cache is
   * empty, and EVAL loads it. For a consume, however long NOSCRIPT took: only
   * the limiter knows whether its caller still waits (a deadline its own late
   * event loop missed gets one more timeout), and NOSCRIPT means the call
   * never ran, so EVAL charges it once; a caller that has given up gets a
   * late reply, which still teaches its fallback. A charge after the fact or
   * a block (`once`) has a plain deadline, reported as a failure when it
   * passes: past it, it is not sent again, so what was reported as not
   * applied is never applied later.
   */
  #send(conn: Conn, argv: string[], once: boolean): Promise<unknown> {
    const sent = once ? performance.now() : 0;
    return conn.evalsha(argv).catch((error: unknown) => {
      if (!isNoScript(error) || (once && performance.now() - sent > this.timeout)) throw error;
      argv[0] = SCRIPT;
      return conn.eval(argv);
    });
  }

  async reset(key: string, policies: readonly Policy[]): Promise<void> {
    if (this.#closed) throw new ClosedError("RedisStore");
    const conn = this.#conn;
    if (conn === undefined || !conn.ready()) throw new StoreUnavailableError("the Redis client");
    const plan = this.#plan(policies);
    const id = this.#head + keyId(key);
    this.#flush();
    await conn.del(plan.suffixes.map((s) => id + s));
  }

  /**
   * members marks the instance `id` live for `ttlMs` (by Redis `TIME`) and
   * resolves to how many instances are live, itself included: one atomic
   * script on the sorted set `prefix:members`. It rejects (never throws)
   * when Redis does not answer within `timeout`, is not connected, or the
   * store is closed. `id` is kept as a client identifier is (long ones hashed).
   */
  members(id: string, ttlMs: number): Promise<number> {
    if (this.#closed) return Promise.reject(new ClosedError("RedisStore"));
    if (typeof id !== "string" || !Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > 86_400_000) {
      return Promise.reject(
        new RangeError(
          `floodgate: RedisStore.members needs an id string and ttlMs from 1 to 86400000, got ${typeof id}, ${ttlMs}`,
        ),
      );
    }
    const conn = this.#conn;
    if (conn === undefined || !conn.ready()) {
      return Promise.reject(new StoreUnavailableError("the Redis client"));
    }
    const argv = [MEMBERS_SHA, "1", this.#members, keyId(id), String(ttlMs)];
    return new Promise<number>((resolve, reject) => {
      const cancel = this.#after(
        this.timeout,
        () => reject(new StoreTimeoutError(this.timeout)),
        () => reject(new ClosedError("RedisStore")),
      );
      conn
        .evalsha(argv)
        .catch((error: unknown) => {
          if (!isNoScript(error)) throw error;
          argv[0] = MEMBERS;
          return conn.eval(argv);
        })
        .then(
          (reply) => {
            cancel();
            // A client may answer integers as text (ioredis `stringNumbers`).
            const count = typeof reply === "string" ? Number(reply) : reply;
            if (typeof count === "number" && Number.isSafeInteger(count) && count >= 1) {
              resolve(count);
            } else reject(new StoreReplyError(reply));
          },
          (error: unknown) => {
            cancel();
            reject(error);
          },
        );
    });
  }

  /**
   * close stops every timer of the store and rejects its later calls (and
   * waiting `ready()` and `members()` calls) with a ClosedError, within
   * about 100 ms whatever state the server is in. A client the store opened
   * from `url` is closed too: QUIT is given 100 ms (so replies on their way
   * arrive), then its sockets are cut, also while it is still connecting,
   * reconnecting to a dead server, or waiting on a paused one. A client you
   * passed is left open: you close it, after the store.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    // Consumes accepted before close() go out as they would have one by one.
    this.#flush();
    this.#closed = true;
    clearTimeout(this.#poll);
    for (const [cancel, closed] of [...this.#timers]) {
      cancel();
      closed();
    }
    this.#closing = this.#owned ? this.#end() : Promise.resolve();
    return this.#closing;
  }

  async #end(): Promise<void> {
    const conn = this.#conn ?? (await this.#opening?.catch(() => undefined));
    if (conn === undefined) return;
    if (conn.ready()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        conn.quit().catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, QUIT_GRACE);
        }),
      ]);
      clearTimeout(timer);
    }
    conn.disconnect();
  }

  /**
   * after runs `fn` in `ms` unless the returned cancel is called first.
   * close() cancels every such timer and runs its `closed` instead (which
   * answers the waiter with a ClosedError), so none outlives the store.
   */
  #after(ms: number, fn: () => void, closed: () => void): () => void {
    const cancel = () => {
      clearTimeout(timer);
      this.#timers.delete(cancel);
    };
    const timer = setTimeout(() => {
      this.#timers.delete(cancel);
      fn();
    }, ms);
    this.#timers.set(cancel, closed);
    return cancel;
  }

  /**
   * connect waits for the client to connect (looking every 10 ms: clients
   * signal it differently, and a user's client may already be connected),
   * then loads both scripts on every server and reads their eviction policy.
   * A failure (the connection lost meanwhile) is retried until it succeeds
   * or the store is closed; the timers never keep the process alive.
   */
  #connect(conn: Conn): void {
    const step = (): void => {
      this.#poll = undefined;
      if (this.#closed) return;
      if (!conn.ready()) {
        this.#poll = setTimeout(step, POLL);
        this.#poll.unref?.();
        return;
      }
      this.#prepare(conn).then(
        () => {
          if (this.#closed) return;
          this.#prepared = this.#misfit === undefined;
          for (const done of [...this.#waiting]) done();
        },
        (error: unknown) => {
          this.#lastError = message(error);
          if (this.#closed) return;
          this.#poll = setTimeout(step, RETRY);
          this.#poll.unref?.();
        },
      );
    };
    step();
  }

  /**
   * prepare loads the scripts and checks the eviction policy. A server that
   * refuses SCRIPT LOAD (a proxy in front of Redis) is no failure: EVALSHA
   * falls back to EVAL. Only a connection lost meanwhile is, and is retried.
   */
  async #prepare(conn: Conn): Promise<void> {
    const servers = conn.servers();
    const loads = await Promise.allSettled(
      servers.flatMap((s) => [
        s.send(["SCRIPT", "LOAD", SCRIPT]),
        s.send(["SCRIPT", "LOAD", MEMBERS]),
      ]),
    );
    const failed = loads.find((r) => r.status === "rejected");
    if (failed !== undefined && !conn.ready()) throw failed.reason;
    // The Cluster first: it may throw to prepare again, and the eviction policy's warnings go once.
    await this.#checkCluster(conn, servers);
    await this.#checkEviction(servers);
  }

  /**
   * checkCluster finds a plain client (not an ioredis Cluster) connected to a
   * node of a Redis Cluster. Such a node refuses a script whose keys span
   * slots (CROSSSLOT), so the store stops sharing script calls between
   * clients; and where other nodes serve slots too, it answers MOVED for
   * their keys, so most decisions could only ever come from the fallback:
   * ready() then rejects with a ConfigError that names the fix.
   */
  async #checkCluster(conn: Conn, servers: readonly Server[]): Promise<void> {
    const server = servers[0];
    if (!conn.single || server === undefined || servers.length !== 1) return;
    // Refused (no Cluster, an ACL, a proxy): the batches' CROSSSLOT would tell.
    // The connection lost meanwhile: prepare again, as for SCRIPT LOAD.
    const info = await server.send(["CLUSTER", "INFO"]).catch((error: unknown) => {
      if (!conn.ready()) throw error;
      return undefined;
    });
    const text = typeof info === "string" ? info : String(info ?? "");
    const size = /cluster_size:(\d+)/.exec(text);
    if (size === null) return;
    conn.single = false;
    if (Number(size[1]) > 1) {
      this.#misfit = new ConfigError(
        this.#owned ? "RedisStore.url" : "RedisStore.client",
        this.#where.replace(/^Redis at /, ""),
        `must reach the whole Redis Cluster, but this client talks to one node of ${size[1]} masters (the keys of their slots answer MOVED)`,
        "pass an ioredis Cluster: new RedisStore({ client: new Cluster([{ host, port }], { enableOfflineQueue: false, retryDelayOnFailover: 0, redisOptions: { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 } }) })",
      );
    }
  }

  /**
   * checkEviction reads `maxmemory-policy` from every server and warns unless
   * each is `noeviction`; where CONFIG is refused it says so instead. It
   * never throws: a store that cannot tell still works.
   */
  async #checkEviction(servers: readonly Server[]): Promise<void> {
    const results = await Promise.allSettled(
      servers.map((s) => s.send(["CONFIG", "GET", "maxmemory-policy"])),
    );
    const evicting: string[] = [];
    const unreadable: string[] = [];
    results.forEach((r, i) => {
      const name = (servers[i] as Server).name;
      const value =
        r.status === "fulfilled" && Array.isArray(r.value) ? (r.value[1] as unknown) : undefined;
      if (typeof value === "string") {
        if (value !== "noeviction") evicting.push(`${name} (${value})`);
      } else {
        const why = r.status === "rejected" ? message(r.reason) : "no such setting in the reply";
        unreadable.push(`${name}: ${why}`);
      }
    });
    if (evicting.length > 0) {
      this.#warnings.warn(
        "FLOODGATE_REDIS_EVICTION",
        `floodgate: maxmemory-policy is not noeviction on ${evicting.join(", ")}. When Redis reaches maxmemory it may delete rate-limit buckets (floodgate's keys all have a TTL, so volatile-* policies delete them too), and a deleted bucket is a full one: a throttled client gets a fresh burst. Fix: CONFIG SET maxmemory-policy noeviction (and set it in redis.conf), or give floodgate a Redis of its own with noeviction.`,
      );
    }
    if (unreadable.length > 0) {
      this.#warnings.warn(
        "FLOODGATE_REDIS_CONFIG_UNREADABLE",
        `floodgate: could not read maxmemory-policy (${unreadable.join("; ")}), so floodgate cannot tell whether Redis may delete its buckets under memory pressure. Fix: make sure it is noeviction (on a managed Redis, in the service's parameter settings).`,
      );
    }
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
        width: policies.some((p) => p.blockFor > 0) ? "5" : "3",
      };
      this.#plans.set(policies, plan);
    }
    return plan;
  }
}

/** Consumes in a turn's first batch, sent as soon as there are this many. */
const FIRST_BATCH = 2;
/** Fewest consumes a later batch of the turn waits for before it is sent. */
const MIN_BATCH = 8;
/** Most consumes one script call decides: a bound on how long one call holds Redis. */
const MAX_BATCH = 64;
/** Consumes a turn sends at once over a client that writes a turn together; the rest go one write later. */
const HOLD_AFTER = 128;

interface Settle {
  resolve(reply: StoreReply): void;
  reject(error: unknown): void;
}

/** Batch is consumes of one turn: their keys, their policies, their arguments, their callers. */
interface Batch {
  keys: string[];
  /** The policy lists of its consumes, each once, in order of first use. */
  plans: Plan[];
  /** Each consume's plan number and op, then the test clock's reading when there is one. */
  args: string[];
  settle: Settle[];
  /** Sent as soon as it holds this many. */
  limit: number;
}

function settleOne(s: Settle, reply: unknown): void {
  // A consume the script failed on comes back as its own error, inside the batch's reply.
  if (reply instanceof Error) {
    s.reject(reply);
    return;
  }
  let r: StoreReply;
  try {
    r = check(reply);
  } catch (error) {
    s.reject(error);
    return;
  }
  s.resolve(r);
}

/** isCrossSlot tells Redis Cluster's refusal of a call whose keys span slots (it never ran). */
function isCrossSlot(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("CROSSSLOT");
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function check(reply: unknown): StoreReply {
  if (!Array.isArray(reply) || reply.length < 4) throw new StoreReplyError(reply);
  // Token counts near 2^53 come as text (see SCRIPT); Number() parses them
  // exactly. A client may answer every integer as text (ioredis
  // `stringNumbers`, a node-redis type mapping); anything that is no whole
  // number is a reply the script never gives, never a NaN to decide with.
  for (let i = 0; i < reply.length; i++) {
    if (typeof reply[i] !== "number") reply[i] = integer(reply[i], reply);
  }
  return reply as number[];
}

/** integer reads a whole number a client gave as text, or throws StoreReplyError. */
function integer(value: unknown, reply: unknown): number {
  const n = typeof value === "string" && value !== "" ? Number(value) : Number.NaN;
  if (!Number.isInteger(n)) throw new StoreReplyError(reply);
  return n;
}
