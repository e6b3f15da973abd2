// `floodgate serve`: the limiter as a service. Reads the command line, loads
// the config, opens the store, starts HTTP and gRPC, reloads on SIGHUP and on
// file changes, and drains on SIGTERM.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { RateLimiter } from "../limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
import { IOREDIS_CLUSTER_OPTIONS } from "../stores/redis/clients.js";
import { RedisStore } from "../stores/redis/redis-store.js";
import type { Store } from "../stores/store.js";
import { GatewayConfigError } from "./config.js";
import { Engine } from "./engine.js";
import { createHttpServer, Tracker } from "./http.js";
import { type Loaded, loadConfig, watchConfig } from "./load.js";
import { GatewayMetrics } from "./metrics.js";

export const SERVE_HELP = `Usage: floodgate serve --config FILE|FOLDER [options]

Runs floodgate as a rate-limit service for Envoy (gRPC), nginx, Caddy, HAProxy
and any HTTP client. The config is envoyproxy/ratelimit's YAML format.

  -c, --config PATH     a YAML file, or a folder of them (one domain each); required
      --host H          address to listen on (default 127.0.0.1)
  -p, --port N          HTTP port: /check, POST /json, /metrics, /healthz (default 8080)
      --grpc-port N     gRPC port (Envoy's RateLimitService, health), or "off" (default 8081)
      --redis URL       share buckets in Redis or Valkey (default: $REDIS_URL, else in memory);
                        redis-cluster://host:port,host:port for a Cluster
      --timeout MS      Redis deadline per decision before the fallback decides (default 50)
      --shadow          decide and count every limit, never deny (also SHADOW_MODE=true)
  -h, --help            show this help

Signals: SIGHUP reloads the config (so does saving a file); SIGTERM and SIGINT
stop taking calls, answer those in flight, then exit.
`;

/** ServeOptions is a validated `floodgate serve` command line. */
export interface ServeOptions {
  readonly config: string;
  readonly host: string;
  readonly port: number;
  /** null: no gRPC server. */
  readonly grpcPort: number | null;
  readonly redis: string | undefined;
  readonly timeout: number;
  readonly shadow: boolean;
}

/** ServeError is a problem that stops the service from starting; its message is one line. */
export class ServeError extends Error {
  override name = "ServeError" as const;
}

function port(text: string | undefined, dflt: number, flag: string): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n > 65535) {
    throw new ServeError(
      `${flag} ${JSON.stringify(text)} is not a port; give a number from 0 to 65535`,
    );
  }
  return n;
}

/** parseServeArgs validates the arguments after `serve`. */
export function parseServeArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ServeOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: "string", short: "c" },
        host: { type: "string" },
        port: { type: "string", short: "p" },
        "grpc-port": { type: "string" },
        redis: { type: "string" },
        timeout: { type: "string" },
        shadow: { type: "boolean" },
      },
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ServeError(
      `${(error as Error).message.replace(/\s*\n\s*/g, " ")} (see floodgate serve --help)`,
    );
  }
  const config = values.config as string | undefined;
  if (config === undefined)
    throw new ServeError("--config is required: floodgate serve --config floodgate.yaml");
  const grpcText = values["grpc-port"] as string | undefined;
  const timeoutText = (values.timeout as string | undefined) ?? "50";
  // Digits only: Number() would also take "0x10", "1e3" and " 5 ".
  const timeout = /^\d{1,5}$/.test(timeoutText) ? Number(timeoutText) : Number.NaN;
  if (!(timeout >= 1 && timeout <= 60_000)) {
    throw new ServeError(
      `--timeout ${JSON.stringify(timeoutText)} must be whole milliseconds from 1 to 60000`,
    );
  }
  const host = (values.host as string | undefined) ?? "127.0.0.1";
  // An empty host (--host "$HOST" with HOST unset) would make node listen on every interface.
  if (host.trim() === "") {
    throw new ServeError(
      `--host ${JSON.stringify(host)} is empty; give the address to listen on: 127.0.0.1 (this machine only, the default) or 0.0.0.0 (every interface)`,
    );
  }
  const redis =
    (values.redis as string | undefined) ?? (env.REDIS_URL === "" ? undefined : env.REDIS_URL);
  return {
    config,
    host,
    port: port(values.port as string | undefined, 8080, "--port"),
    grpcPort: grpcText === "off" ? null : port(grpcText, 8081, "--grpc-port"),
    redis,
    timeout,
    shadow: values.shadow === true || /^(1|true)$/i.test(env.SHADOW_MODE ?? ""),
  };
}

/** Running is a started service. */
export interface Running {
  readonly httpPort: number;
  readonly grpcPort: number | null;
  readonly engine: Engine;
  /** Reads the config again; a bad one keeps the current config. Resolves to true when swapped. */
  reload(): boolean;
  /** Stops taking calls, lets those in flight finish (at most `drainMs`), releases the store. */
  close(drainMs?: number): Promise<void>;
}

/** Opened is a store and what must be ended with it that the store does not own. */
interface Opened {
  readonly store: Store;
  /** Ends a client the store was given (a RedisStore leaves those to their owner). */
  readonly release: () => void;
}

async function openStore(url: string, timeout: number): Promise<Opened> {
  const redacted = url.replace(/\/\/[^@/]*@/, "//***@");
  let store: RedisStore;
  let release = () => {};
  const cluster = /^(redis|valkey)-cluster:\/\//.exec(url);
  if (cluster) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import("ioredis")) as Record<string, unknown>;
    } catch {
      throw new ServeError("a Redis Cluster needs the ioredis package: npm install ioredis");
    }
    const Cluster = (mod.Cluster ?? (mod.default as Record<string, unknown>).Cluster) as new (
      seeds: { host: string; port: number }[],
      options: object,
    ) => { on(e: string, f: () => void): void; disconnect(): void };
    const seeds = url
      .slice(cluster[0].length)
      .split(",")
      .map((hp) => {
        const [host = "127.0.0.1", p = "6379"] = hp.split(":");
        return { host, port: Number(p) };
      });
    const client = new Cluster(seeds, IOREDIS_CLUSTER_OPTIONS);
    client.on("error", () => {});
    // The store does not end a client it was given: without this, the Cluster
    // client would go on reconnecting after close(), or after a failed start.
    release = () => client.disconnect();
    store = new RedisStore({ client: client as never, timeout });
  } else {
    try {
      store = new RedisStore({ url, timeout });
    } catch (error) {
      throw new ServeError(`--redis ${redacted}: ${(error as Error).message}`);
    }
  }
  try {
    // ready() waits for the connection and the scripts, up to its readyTimeout (5 s).
    await store.ready();
  } catch {
    await store.close();
    release();
    throw new ServeError(
      `cannot connect to Redis at ${redacted} within 5 s; start it, or fix --redis / REDIS_URL`,
    );
  }
  return { store, release };
}

function listen(server: Server, host: string, p: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") {
        reject(
          new ServeError(
            `port ${p} on ${host} is in use; stop what listens there, or pick another with --port`,
          ),
        );
      } else reject(new ServeError(`cannot listen on ${host}:${p}: ${error.message}`));
    });
    server.listen(p, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** startServe starts the service; `log` gets one line per event. */
export async function startServe(
  options: ServeOptions,
  log: (line: string) => void,
): Promise<Running> {
  let loaded: Loaded;
  try {
    loaded = loadConfig(options.config);
  } catch (error) {
    if (error instanceof GatewayConfigError) throw new ServeError(error.message);
    throw error;
  }
  const { store, release } =
    options.redis === undefined
      ? { store: new MemoryStore(), release: () => {} }
      : await openStore(options.redis, options.timeout);
  const limiter = new RateLimiter({
    // Never used: every decision names its own policies.
    policy: { name: "unused", capacity: 1, refillRate: 1, interval: 1000 },
    store,
    topLimited: false,
  });
  const metrics = new GatewayMetrics();
  const engine = new Engine(
    limiter,
    loaded.config,
    { shadow: options.shadow, local: store instanceof MemoryStore },
    metrics,
  );
  const tracker = new Tracker();
  const server = createHttpServer({
    engine,
    tracker,
    metrics: () => metrics.render(limiter.stats(), tracker.inFlight),
    log,
  });
  let httpPort: number;
  try {
    httpPort = await listen(server, options.host, options.port);
  } catch (error) {
    await limiter.close();
    release();
    throw error;
  }
  let grpc: Awaited<ReturnType<typeof import("./grpc.js").startGrpc>> | undefined;
  if (options.grpcPort !== null) {
    try {
      const { startGrpc } = await import("./grpc.js");
      grpc = await startGrpc(engine, tracker, options.host, options.grpcPort, log);
    } catch (error) {
      server.close();
      await limiter.close();
      release();
      const m = (error as Error).message;
      throw new ServeError(
        /No address added|EADDRINUSE|address already in use/i.test(m)
          ? `gRPC port ${options.grpcPort} on ${options.host} is in use; stop what listens there, or pick another with --grpc-port`
          : (m.split("\n")[0] as string),
      );
    }
  }
  // The failure last reported: a file left broken is logged and counted once,
  // not again at every poll and file event (SIGHUP always reports).
  let failed: string | undefined;
  const reload = (asked: boolean): boolean => {
    let next: Loaded;
    try {
      next = loadConfig(options.config);
    } catch (error) {
      const message = (error as Error).message;
      if (!asked && message === failed) return false;
      failed = message;
      metrics.reloaded(false);
      log(`config not reloaded, keeping the current one: ${message}`);
      return false;
    }
    failed = undefined;
    if (next.digest === loaded.digest) return false;
    loaded = next;
    engine.swap(next.config);
    metrics.reloaded(true);
    log(`config reloaded: ${[...next.config.domains.keys()].join(", ")}`);
    return true;
  };
  const unwatch = watchConfig(options.config, () => reload(false));
  let closing: Promise<void> | undefined;
  const close = (drainMs = 10_000): Promise<void> => {
    closing ??= (async () => {
      unwatch();
      tracker.draining = true;
      const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.race([
        Promise.all([tracker.idle(), grpc?.close(drainMs)]),
        new Promise((r) => setTimeout(r, drainMs).unref()),
      ]);
      server.closeAllConnections();
      await httpClosed;
      await limiter.close();
      release();
    })();
    return closing;
  };
  log(
    `listening: HTTP http://${options.host}:${httpPort}` +
      (grpc === undefined ? "" : `, gRPC ${options.host}:${grpc.port}`) +
      `; ${loaded.config.domains.size} domain(s); store ${options.redis === undefined ? "memory" : "Redis"}` +
      (options.shadow ? "; shadow mode: nothing is denied" : ""),
  );
  return {
    httpPort,
    grpcPort: grpc?.port ?? null,
    engine,
    reload: () => reload(true),
    close,
  };
}

/** runServe is the `serve` command: starts, then waits for SIGTERM/SIGINT; resolves to the exit code. */
export async function runServe(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  stdout: { write(text: string): unknown },
  stderr: { write(text: string): unknown },
): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    stdout.write(SERVE_HELP);
    return 0;
  }
  const log = (line: string) => stderr.write(`floodgate serve: ${line}\n`);
  let running: Running;
  try {
    running = await startServe(parseServeArgs(argv, env), log);
  } catch (error) {
    if (error instanceof ServeError) {
      log(error.message);
      return 2;
    }
    log(`cannot start: ${(error as Error).message}`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: finishing calls in flight, then exiting`);
      process.off("SIGHUP", hup);
      running.close().then(
        () => resolve(0),
        (error: unknown) => {
          log(`could not stop cleanly: ${error instanceof Error ? error.message : String(error)}`);
          resolve(1);
        },
      );
    };
    const hup = () => running.reload();
    process.on("SIGHUP", hup);
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
