/**
 * The few calls RedisStore makes, behind one tiny interface, so it works with
 * the client the user already has: ioredis, iovalkey, an ioredis Cluster, or
 * node-redis v4/v5. These types are structural: floodgate imports no client.
 */

/** IORedisLike is the part of an ioredis or iovalkey client (or ioredis Cluster) floodgate uses. */
export interface IORedisLike {
  evalsha(sha1: string, numkeys: string, ...args: string[]): Promise<unknown>;
  eval(script: string, numkeys: string, ...args: string[]): Promise<unknown>;
  del(...keys: string[]): Promise<unknown>;
  quit(): Promise<unknown>;
  /** `"ready"` when commands can be sent. */
  readonly status: string;
}

/** NodeRedisLike is the part of a node-redis v4/v5 client floodgate uses. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  /** True when commands can be sent. */
  readonly isReady: boolean;
}

/** RedisClientLike is any client RedisStore accepts. */
export type RedisClientLike = IORedisLike | NodeRedisLike;

/**
 * Conn is what RedisStore calls. `argv` is `[sha or script, numkeys, ...keys,
 * ...args]`, all strings.
 */
export interface Conn {
  evalsha(argv: string[]): Promise<unknown>;
  eval(argv: string[]): Promise<unknown>;
  del(keys: string[]): Promise<unknown>;
  /**
   * Every server the client sends to: the one server, or each master of an
   * ioredis Cluster (its scripts and settings are per node). Empty when the
   * client cannot send a raw command (a stand-in in tests).
   */
  servers(): Server[];
  /** False while the client has no connection: a call would fail without reaching Redis. */
  ready(): boolean;
  /** Sends QUIT and waits for the reply (a paused or dead server may never answer it). */
  quit(): Promise<void>;
  /** Closes the sockets at once and stops reconnecting; pending calls reject. */
  disconnect(): void;
  readonly kind: "ioredis" | "node-redis";
  /**
   * True when every call goes to one server (not a Cluster), so calls for
   * different clients can share one script call. The store sets it false
   * when that server turns out to be a Cluster node (CROSSSLOT).
   */
  single: boolean;
  /**
   * True when the client writes the commands made in one event-loop turn
   * together, later in the loop (node-redis, on setImmediate), rather than
   * each as it is made (ioredis).
   */
  readonly writesLater: boolean;
}

/** Server is one Redis node: `name` for messages, `send` for a raw command such as CONFIG GET. */
export interface Server {
  readonly name: string;
  send(args: string[]): Promise<unknown>;
}

/** The part of an ioredis/iovalkey client (or Cluster) used to reach each node. */
interface Callable {
  call?: (...args: string[]) => Promise<unknown>;
  nodes?: (role: "master") => Callable[];
  options?: { host?: string; port?: number };
  disconnect?: () => void;
}

function node(c: Callable): Server[] {
  const call = c.call;
  if (typeof call !== "function") return [];
  const o = c.options;
  return [
    {
      name: o?.host !== undefined ? `${o.host}:${o.port ?? 6379}` : "redis",
      send: (args) => call.apply(c, args),
    },
  ];
}

/** isNodeRedis tells node-redis (which has `isReady`) from ioredis (which also has a `sendCommand`). */
function isNodeRedis(client: RedisClientLike): client is NodeRedisLike {
  return "isReady" in client && typeof (client as NodeRedisLike).sendCommand === "function";
}

/** adapt wraps a user's client; returns undefined when it is none of the known kinds. */
export function adapt(client: unknown): Conn | undefined {
  if (typeof client !== "object" || client === null) return undefined;
  const c = client as RedisClientLike;
  if (isNodeRedis(c)) return nodeRedis(c);
  if (typeof (c as IORedisLike).evalsha === "function" && "status" in c) {
    return ioredis(c as IORedisLike);
  }
  return undefined;
}

/** Variadic view of IORedisLike: argv is always `[sha or script, numkeys, ...]`. */
interface Variadic {
  evalsha(...argv: string[]): Promise<unknown>;
  eval(...argv: string[]): Promise<unknown>;
}

function ioredis(c: IORedisLike): Conn {
  const v = c as unknown as Variadic & { stream?: { destroy?: () => void } };
  return {
    kind: "ioredis",
    single: typeof (c as unknown as Callable).nodes !== "function",
    writesLater: false,
    evalsha: (argv) => v.evalsha(...argv),
    eval: (argv) => v.eval(...argv),
    del: (keys) => c.del(...keys),
    servers: () => {
      const x = c as unknown as Callable;
      // A Cluster lists its masters; a plain client is its own one server.
      return typeof x.nodes === "function" ? x.nodes("master").flatMap(node) : node(x);
    },
    ready: () => c.status === "ready",
    quit: async () => {
      await c.quit();
    },
    disconnect: () => {
      (c as unknown as Callable).disconnect?.();
      // ioredis ends the socket and destroys it only after disconnectTimeout
      // (2 s) when the server does not close its side: dead, mute or paused.
      v.stream?.destroy?.();
    },
  };
}

function nodeRedis(c: NodeRedisLike): Conn {
  const close = c as NodeRedisLike & {
    quit?: () => Promise<unknown>;
    close?: () => Promise<unknown>;
    destroy?: () => void;
    disconnect?: () => Promise<unknown>;
    options?: { url?: string };
  };
  return {
    kind: "node-redis",
    single: true,
    writesLater: true,
    evalsha: (argv) => c.sendCommand(["EVALSHA", ...argv]),
    eval: (argv) => c.sendCommand(["EVAL", ...argv]),
    del: (keys) => c.sendCommand(["DEL", ...keys]),
    servers: () => [
      {
        name: (close.options?.url ?? "redis").replace(/\/\/[^@/]*@/, "//"),
        send: (args) => c.sendCommand(args),
      },
    ],
    ready: () => c.isReady,
    quit: async () => {
      if (typeof close.close === "function") await close.close();
      else if (typeof close.quit === "function") await close.quit();
    },
    disconnect: () => {
      // node-redis 5 has destroy(); 4 has disconnect(), which 5 keeps as a deprecated alias.
      if (typeof close.destroy === "function") close.destroy();
      else close.disconnect?.().catch(() => {});
    },
  };
}

/** isNoScript tells whether a client's error is Redis's NOSCRIPT (script cache empty, e.g. after a restart). */
export function isNoScript(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as Error).message === "string" &&
    (error as Error).message.startsWith("NOSCRIPT")
  );
}

/**
 * Options RedisStore sets on a client it opens from a `url`, and that users
 * should set on their own (see the README, "Client options that matter"): fail at once instead of
 * queueing while disconnected, never re-send a command that may already have
 * run (that would charge a request twice), and reconnect quickly.
 */
export const IOREDIS_OPTIONS = {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
  retryStrategy: (times: number) => Math.min(times * 50, 200),
  lazyConnect: false,
  disconnectTimeout: 100,
} as const;

/**
 * Options for an ioredis `Cluster` floodgate opens (the gateway's
 * `redis-cluster://`), and that users should set on their own: the same as
 * IOREDIS_OPTIONS per node, and `retryDelayOnFailover: 0`. By default a
 * Cluster re-sends, 100 ms later, a command whose node connection closed
 * before its reply came, though the script may have run: a request charged
 * twice, or a refund reported failed applied after all.
 */
export const IOREDIS_CLUSTER_OPTIONS = {
  enableOfflineQueue: false,
  retryDelayOnFailover: 0,
  redisOptions: {
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    disconnectTimeout: 100,
  },
} as const;

/**
 * open connects to `url` with the first client library installed: ioredis,
 * iovalkey, then node-redis. `onError` hears the client's errors (refused
 * connections, resets), which would otherwise crash the process as
 * unhandled 'error' events.
 */
export async function open(url: string, onError: (error: unknown) => void): Promise<Conn> {
  const errors: string[] = [];
  for (const name of ["ioredis", "iovalkey"]) {
    const mod = await load(name, errors);
    if (mod === undefined) continue;
    const Redis = (mod.Redis ??
      (mod.default as Record<string, unknown> | undefined)?.Redis ??
      mod.default) as new (
      url: string,
      options: object,
    ) => IORedisLike & {
      on(event: string, fn: (e: unknown) => void): void;
    };
    const client = new Redis(url, IOREDIS_OPTIONS);
    client.on("error", onError);
    return ioredis(client);
  }
  const mod = await load("redis", errors);
  if (mod !== undefined) {
    const createClient = (mod.createClient ??
      (mod.default as Record<string, unknown> | undefined)?.createClient) as (
      options: object,
    ) => NodeRedisLike & {
      connect(): Promise<unknown>;
      on(event: string, fn: (e: unknown) => void): void;
    };
    const client = createClient({
      url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: (retries: number) => Math.min(retries * 50, 200) },
    });
    client.on("error", onError);
    client.connect().catch(onError);
    return nodeRedis(client);
  }
  throw new Error(
    `floodgate: RedisStore({ url }) needs a Redis client library: npm install ioredis (or iovalkey, or redis). ${errors.join("; ")}`,
  );
}

async function load(name: string, errors: string[]): Promise<Record<string, unknown> | undefined> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch (error) {
    errors.push(`${name}: ${(error as Error).message.split("\n")[0]}`);
    return undefined;
  }
}
