/**
 * Issue 16 item 6 and the last acceptance check, through the service itself:
 * two `floodgate serve` processes sharing one redis-server, 4 client
 * processes x 32 calls in flight on one shared descriptor, through GET /check
 * and through gRPC: admitted == capacity + refill x whole intervals, exactly.
 * Then Redis killed under load: every call answered within the deadline.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { parseConfigFile } from "../../src/gateway/config.js";
import { bucketPolicy } from "../../src/gateway/engine.js";
import { match } from "../../src/gateway/match.js";
import { RateLimiter, RedisStore } from "../../src/index.js";
import { describeRedis, freePort, type RedisServer, startRedis } from "../helpers/redis-server.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WORKER = fileURLToPath(new URL("./gateway-worker.ts", import.meta.url));
const CLI = join(ROOT, "src", "cli", "index.ts");
const CLIENTS = 4;
const CALLERS = 32;
const DURATION_MS = 5000;
const CONFIG = `domain: edge
descriptors:
  - key: generic_key
    value: shared
    rate_limit: { unit: second, requests_per_unit: 10, burst: 50 }
http_check:
  actions:
    - - generic_key: { descriptor_value: shared }
`;
const CAPACITY = 50;
const RATE = 10;
const INTERVAL = 1000;

interface Counts {
  allowed: number;
  denied: number;
  errors: number;
  calls: number;
  maxMs: number;
  firstError: string;
}

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function serve(
  config: string,
  redis: string,
  timeout: number,
): Promise<{ http: number; grpc: number }> {
  const http = await freePort();
  const grpc = await freePort();
  const child = track(
    spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        CLI,
        "serve",
        "--config",
        config,
        "--port",
        String(http),
        "--grpc-port",
        String(grpc),
        "--timeout",
        String(timeout),
      ],
      {
        cwd: ROOT,
        env: { ...process.env, REDIS_URL: redis },
        stdio: ["ignore", "ignore", "pipe"],
      },
    ),
  );
  let err = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (b: Buffer) => {
      err += b;
      if (err.includes("listening")) resolve();
    });
    child.once("exit", () => reject(new Error(err)));
  });
  return { http, grpc };
}

function worker(mode: "http" | "grpc", target: string, deadline: number) {
  const child = track(
    spawn(process.execPath, ["--import", "tsx", WORKER], {
      cwd: ROOT,
      env: {
        ...process.env,
        MODE: mode,
        TARGET: target,
        CALLERS: String(CALLERS),
        DURATION_MS: String(DURATION_MS),
        DEADLINE_MS: String(deadline),
      },
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  let out = "";
  let onReady = () => {};
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  child.stdout?.on("data", (d: Buffer) => {
    out += d;
    if (out.startsWith("ready\n")) onReady();
  });
  const done = new Promise<Counts>((resolve, reject) => {
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`worker exited with ${code}: ${out}`));
      else resolve(JSON.parse(out.trim().split("\n").pop() as string) as Counts);
    });
  });
  return { ready, go: () => child.stdin?.write("go\n"), done };
}

function sum(results: Counts[]): Counts {
  return results.reduce(
    (a, r) => ({
      allowed: a.allowed + r.allowed,
      denied: a.denied + r.denied,
      errors: a.errors + r.errors,
      calls: a.calls + r.calls,
      maxMs: Math.max(a.maxMs, r.maxMs),
      firstError: a.firstError || r.firstError,
    }),
    { allowed: 0, denied: 0, errors: 0, calls: 0, maxMs: 0, firstError: "" },
  );
}

describeRedis("gateway: two serve processes on one Redis", () => {
  let redis: RedisServer;
  let dir: string;
  let config: string;
  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), "floodgate-gateway-chaos-"));
    config = join(dir, "floodgate.yaml");
    writeFileSync(config, CONFIG);
  });
  afterEach(async () => {
    for (const c of children) c.kill("SIGKILL");
    await redis.cli("FLUSHALL").catch(() => "");
  });
  afterAll(async () => {
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(["http", "grpc"] as const)(
    "4 clients x 32 in flight through %s: admitted == capacity + refill x whole intervals",
    async (mode) => {
      // A deadline far above any wait, so no call is decided by the fallback.
      const a = await serve(config, redis.url, 5000);
      const b = await serve(config, redis.url, 5000);
      const target = (s: { http: number; grpc: number }) =>
        mode === "http" ? `http://127.0.0.1:${s.http}/check` : `127.0.0.1:${s.grpc}`;
      const workers = Array.from({ length: CLIENTS }, (_, i) =>
        worker(mode, target(i % 2 === 0 ? a : b), 10_000),
      );
      await Promise.all(workers.map((w) => w.ready));
      // The test's own call creates the bucket: T0 by Redis's clock.
      const store = new RedisStore({ url: redis.url, timeout: 5000 });
      await store.ready();
      while (!store.available()) await new Promise((r) => setTimeout(r, 10));
      const limiter = new RateLimiter({
        policy: { capacity: 1, refillRate: 1, interval: 1000 },
        store,
      });
      const m = match(parseConfigFile("f.yaml", CONFIG), [{ key: "generic_key", value: "shared" }]);
      const p = bucketPolicy(
        m?.rule.policy as NonNullable<NonNullable<typeof m>["rule"]["policy"]>,
        m?.bucket as string,
      );
      const first = await limiter.check("edge", 1, true, [p]);
      const t0 = first.resetAt - INTERVAL;
      for (const w of workers) w.go();
      const totals = sum(await Promise.all(workers.map((w) => w.done)));
      const end = await limiter.check("edge", 1, false, [p]);
      await limiter.close();
      const refills = (end.resetAt - INTERVAL - t0) / INTERVAL;
      const admitted = totals.allowed + 1;
      const expected = CAPACITY + refills * RATE - end.remaining;
      console.log(
        `gateway exactness ${mode}: admitted ${admitted}, capacity ${CAPACITY} + ${refills} refills x ${RATE} - ${end.remaining} left = ${expected}; calls ${totals.calls}, denied ${totals.denied}, errors ${totals.errors} ${totals.firstError}`,
      );
      expect(totals.errors).toBe(0);
      expect(admitted).toBe(expected);
      expect(refills).toBeGreaterThanOrEqual(4);
      expect(end.remaining).toBeLessThanOrEqual(RATE);
    },
  );

  it("Redis killed under load: every call through /check and gRPC is answered within the deadline", async () => {
    // The store's deadline is 50 ms; the clients give each call 2 s, since
    // 128 calls in flight on a shared 2-core machine queue for the CPU.
    const s = await serve(config, redis.url, 50);
    const workers = [
      worker("http", `http://127.0.0.1:${s.http}/check`, 2000),
      worker("http", `http://127.0.0.1:${s.http}/check`, 2000),
      worker("grpc", `127.0.0.1:${s.grpc}`, 2000),
      worker("grpc", `127.0.0.1:${s.grpc}`, 2000),
    ];
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.go();
    await new Promise((r) => setTimeout(r, 1500));
    await redis.kill();
    const each = await Promise.all(workers.map((w) => w.done));
    const totals = sum(each);
    await redis.start();
    console.log(each.map((c) => JSON.stringify(c)).join("\n"));
    console.log(
      `gateway redis killed: calls ${totals.calls}, allowed ${totals.allowed}, denied ${totals.denied}, errors ${totals.errors} ${totals.firstError}, slowest ${totals.maxMs.toFixed(0)} ms`,
    );
    expect(totals.errors).toBe(0);
    expect(totals.maxMs).toBeLessThan(2000);
    expect(totals.calls).toBeGreaterThan(1000);
  });
});
