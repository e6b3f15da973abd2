// Shared by the gateway's integration suites: real binaries found or skipped
// loudly (a failure under CI=true), and a service started in-process on
// loopback with a config written to a temporary folder.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe } from "vitest";
import { type Running, startServe } from "../../src/gateway/serve.js";

export const run = promisify(execFile);
export const ROOT = join(import.meta.dirname, "..", "..");
export const PROTO = join(ROOT, "proto");

/** The Debian package that provides each binary the suites use. */
const PACKAGES: Record<string, string> = {
  "/usr/sbin/nginx": "nginx",
  "/usr/bin/caddy": "caddy",
  "/usr/sbin/haproxy": "haproxy",
  "/usr/bin/protoc": "protobuf-compiler libprotobuf-dev",
  "/usr/bin/python3": "python3-grpcio python3-protobuf",
};

/**
 * describeWith is `describe` for a suite that needs `binaries`: skipped with
 * one loud line when one is missing, except under CI=true, where it fails.
 */
export function describeWith(
  name: string,
  binaries: readonly string[],
  fn: () => void,
  extra?: () => boolean,
): void {
  const missing = binaries.filter((b) => !existsSync(b));
  const ok = missing.length === 0 && (extra?.() ?? true);
  if (ok) {
    describe(name, fn);
    return;
  }
  const install = `apt-get install -y ${[...new Set(binaries.map((b) => PACKAGES[b] ?? b))].join(" ")}`;
  if (process.env.CI === "true") {
    throw new Error(
      `CI=true but ${name} cannot run (${missing.join(", ") || "a module is missing"}): ${install} (.ci/run does this)`,
    );
  }
  console.warn(
    `\n!!! SKIPPING ${name}: ${missing.join(", ") || "a module is missing"}. Install: ${install}\n`,
  );
  describe.skip(name, fn);
}

/** pythonGrpc tells whether Debian's python3 has grpcio and protobuf. */
export function pythonGrpc(): boolean {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import grpc, google.protobuf"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export interface Gateway {
  readonly dir: string;
  readonly file: string;
  readonly running: Running;
  readonly http: string;
  readonly logs: string[];
  write(text: string): void;
  stop(): Promise<void>;
}

/**
 * startGateway writes `config` to a temporary file and starts the service on
 * free loopback ports. `timeout` is the Redis deadline: a test that asserts
 * exact counts on Redis gives it room, so a loaded machine cannot hand a call
 * to the fallback.
 */
export async function startGateway(config: string, redis?: string, timeout = 50): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), "floodgate-gateway-"));
  const file = join(dir, "floodgate.yaml");
  writeFileSync(file, config);
  const logs: string[] = [];
  const running = await startServe(
    { config: file, host: "127.0.0.1", port: 0, grpcPort: 0, redis, timeout, shadow: false },
    (line) => logs.push(line),
  );
  return {
    dir,
    file,
    running,
    http: `http://127.0.0.1:${running.httpPort}`,
    logs,
    write: (text) => writeFileSync(file, text),
    stop: async () => {
      await running.close(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
