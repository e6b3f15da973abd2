/**
 * Real redis-server processes for the Redis suites (never a mock): one server
 * on a free loopback port with its own temp dir, or a 3-node Cluster. Every
 * process started here is killed in `stop()`, and on exit as a last resort.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe } from "vitest";

const run = promisify(execFile);
export const REDIS_SERVER = process.env.REDIS_SERVER ?? "/usr/bin/redis-server";
export const REDIS_CLI = process.env.REDIS_CLI ?? "/usr/bin/redis-cli";
export const HOST = "127.0.0.1";

/** hasRedis tells whether redis-server is installed; under CI=true its absence is an error. */
/**
 * FAIL_FAST is ioredis's options for tests that stop, pause or flush Redis:
 * a command sent while disconnected fails at once instead of queueing, and
 * nothing is re-sent after a reconnect, so each call's outcome is its own.
 */
export const FAIL_FAST = {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
} as const;

export const hasRedis = existsSync(REDIS_SERVER) && existsSync(REDIS_CLI);
let warned = false;

/**
 * describeRedis is `describe` for suites that need redis-server: skipped with
 * one loud line when it is missing, except under CI=true, where it fails.
 */
export function describeRedis(name: string, fn: () => void): void {
  if (!hasRedis && process.env.CI !== "true") {
    if (!warned) {
      warned = true;
      console.warn(
        `\n!!! SKIPPING Redis suites: ${REDIS_SERVER} not found. Install it: apt-get install -y redis-server\n`,
      );
    }
    describe.skip(name, fn);
    return;
  }
  if (!hasRedis) {
    throw new Error(
      `CI=true but ${REDIS_SERVER} is missing: apt-get install -y redis-server (.ci/run does this)`,
    );
  }
  describe(name, fn);
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** freePort finds a loopback port that is free now (and, with `bus`, port + 10000 too). */
export async function freePort(bus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (port > 55_000 && bus) continue;
    if (!bus || (await listenOnce(port + 10_000).catch(() => 0)) !== 0) return port;
  }
  throw new Error("no free loopback port found");
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, HOST, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** ping resolves once the server answers PING on `port`, or rejects after `ms`. */
export async function waitForPing(port: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: HOST, port });
      const done = (value: boolean) => {
        socket.destroy();
        resolve(value);
      };
      socket.setTimeout(500, () => done(false));
      socket.once("error", () => done(false));
      socket.once("connect", () => socket.write("PING\r\n"));
      socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** Starts the server again on the same port (after `kill`). */
  start(): Promise<void>;
  /** Kills the server at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Runs redis-cli with these arguments against the server and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

/** startRedis starts redis-server on a free loopback port; `extra` adds config arguments. */
export async function startRedis(extra: string[] = [], port?: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "floodgate-redis-"));
  const chosen = port ?? (await freePort());
  let child: ChildProcess | undefined;
  const args = [
    "--port",
    String(chosen),
    "--bind",
    HOST,
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--logfile",
    join(dir, "redis.log"),
    ...extra,
  ];
  const start = async () => {
    child = spawn(REDIS_SERVER, args, { stdio: "ignore" });
    live.add(child);
    const proc = child;
    proc.once("exit", () => live.delete(proc));
    await waitForPing(chosen);
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill("SIGKILL");
    });
  };
  await start();
  return {
    host: HOST,
    port: chosen,
    url: `redis://${HOST}:${chosen}`,
    start,
    kill,
    cli: async (...a: string[]) =>
      (await run(REDIS_CLI, ["-h", HOST, "-p", String(chosen), ...a], { timeout: 5000 })).stdout,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * startOneMasterCluster starts a Cluster of one master serving every slot (a
 * one-shard managed Cluster) and resolves once it reports cluster_state:ok.
 */
export async function startOneMasterCluster(): Promise<RedisServer> {
  const port = await freePort(true);
  const one = await startRedis(
    ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`],
    port,
  );
  try {
    await one.cli("cluster", "addslotsrange", "0", "16383");
    const until = Date.now() + 5000;
    while (!(await one.cli("cluster", "info")).includes("cluster_state:ok")) {
      if (Date.now() > until) throw new Error("one-node cluster not ok");
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (error) {
    await one.stop();
    throw error;
  }
  return one;
}

export interface RedisCluster {
  readonly nodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** startCluster starts 3 masters on loopback ports and joins them with `redis-cli --cluster create`. */
export async function startCluster(): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort(true);
      servers.push(
        await startRedis(
          [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            `nodes-${port}.conf`,
            "--cluster-node-timeout",
            "2000",
          ],
          port,
        ),
      );
    }
    await run(
      REDIS_CLI,
      [
        "--cluster",
        "create",
        ...servers.map((s) => `${HOST}:${s.port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      { timeout: 20_000 },
    );
    const until = Date.now() + 15_000;
    for (const s of servers) {
      for (;;) {
        const info = await s.cli("cluster", "info");
        if (info.includes("cluster_state:ok")) break;
        if (Date.now() > until) throw new Error(`cluster not ok on ${s.port}: ${info}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (error) {
    await Promise.all(servers.map((s) => s.stop()));
    throw error;
  }
  return {
    nodes: servers.map((s) => ({ host: HOST, port: s.port })),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}
