/**
 * Gateway mode (issue 16 item 7): `floodgate serve` answering GET /check and
 * gRPC ShouldRateLimit, memory store and Redis, at 1, 16 and 64 calls in
 * flight, beside floors measured in the same run: a bare node:http server
 * answering 200 and a bare grpc-js service answering the same Envoy method
 * with a constant reply. Also what a denied hot client costs Redis (cached
 * denials), and throughput with one and two serve processes on one Redis.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { hasRedis, type RedisServer, startRedis } from "../../test/helpers/redis-server.js";
import type { LoadJob, LoadResult, PairedResult } from "../gateway/load-worker.js";
import { rotate, runChild } from "../lib/child.js";
import { DIST_ENV } from "../lib/floodgate.js";
import { median, pairedRatio, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { Config, RunData, Scenario, Target } from "../lib/types.js";

const IN_FLIGHT = [1, 16, 64] as const;
const FLOOR_WORKER = fileURLToPath(new URL("../gateway/floor-server.ts", import.meta.url));

const CONFIG = `domain: bench
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 1000000000 }
http_check:
  actions:
    - - remote_address: {}
  trust_proxy: 1
`;
const DENY = `domain: deny
descriptors:
  - key: remote_address
    rate_limit: { unit: hour, requests_per_unit: 1 }
http_check:
  actions:
    - - remote_address: {}
  trust_proxy: 1
`;

interface Target_ {
  id: string;
  label: string;
  mode: "http" | "grpc";
  target: string;
  /** The floor measured in alternating slices with it. */
  floor: string;
}

interface GatewayRun {
  measured: boolean;
  reason?: string;
  durationMs?: number;
  /** id -> in flight -> one result per round: the target and its floor, measured in alternating slices. */
  runs: Record<string, Record<string, (PairedResult | null)[]>>;
  /** Redis EVALSHA calls per decision for one denied client at 16 in flight, and the calls. */
  denied?: { decisions: number; redisCalls: number } | undefined;
  /** Decisions per second through one and through two serve processes on one Redis (64 in flight in all). */
  scaling?: { one: number; two: number } | undefined;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** start runs a server process and resolves to its ports, read from its output. */
function start(
  args: string[],
  env: Record<string, string>,
  children: ChildProcess[],
): Promise<number[]> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const look = (chunk: Buffer) => {
      out += chunk;
      const ready = /ready (\d+)/.exec(out);
      if (ready) resolve([Number(ready[1])]);
      const serving = /listening: HTTP http:\/\/[^:]+:(\d+), gRPC [^:]+:(\d+)/.exec(out);
      if (serving) resolve([Number(serving[1]), Number(serving[2])]);
    };
    child.stdout?.on("data", look);
    child.stderr?.on("data", look);
    child.once("exit", (code) =>
      reject(new Error(`bench: server exited (${code}): ${out.slice(-500)}`)),
    );
  });
}

async function evalshaCalls(redis: RedisServer): Promise<number> {
  const info = await redis.cli("info", "commandstats");
  let calls = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(m[1]);
  return calls;
}

async function load<T = LoadResult>(job: LoadJob): Promise<T | null> {
  try {
    return await runChild<T>("gateway/load-worker.ts", job, {
      timeoutMs: job.durationMs * 2 + 60_000,
    });
  } catch (error) {
    log(String(error));
    return null;
  }
}

async function run(config: Config): Promise<GatewayRun> {
  const dist = process.env[DIST_ENV];
  if (dist === undefined) return { measured: false, reason: "no built dist/", runs: {} };
  const cli = join(dist, "cli.js");
  const dir = mkdtempSync(join(tmpdir(), "floodgate-bench-gateway-"));
  writeFileSync(join(dir, "bench.yaml"), CONFIG);
  writeFileSync(join(dir, "deny.yaml"), DENY);
  const children: ChildProcess[] = [];
  let redis: RedisServer | undefined;
  const durationMs = config.quick ? 800 : Math.max(1500, config.durationMs * 5);
  const warmupMs = config.quick ? 200 : 400;
  const result: GatewayRun = { measured: true, durationMs, runs: {} };
  try {
    const [bareHttp] = await start(["--import", "tsx", FLOOR_WORKER, "http"], {}, children);
    const [bareGrpc] = await start(["--import", "tsx", FLOOR_WORKER, "grpc"], {}, children);
    const serveArgs = [cli, "serve", "--config", dir, "--port", "0", "--grpc-port", "0"];
    const [memHttp, memGrpc] = await start(serveArgs, { REDIS_URL: "" }, children);
    const floorHttp = `http://127.0.0.1:${bareHttp}/`;
    const floorGrpc = `127.0.0.1:${bareGrpc}`;
    const targets: Target_[] = [
      {
        id: "check-memory",
        label: "GET /check, memory",
        mode: "http",
        target: `http://127.0.0.1:${memHttp}/check?domain=bench`,
        floor: floorHttp,
      },
      {
        id: "grpc-memory",
        label: "gRPC ShouldRateLimit, memory",
        mode: "grpc",
        target: `127.0.0.1:${memGrpc}`,
        floor: floorGrpc,
      },
    ];
    if (hasRedis) {
      redis = await startRedis();
      const [redisHttp, redisGrpc] = await start(serveArgs, { REDIS_URL: redis.url }, children);
      targets.push(
        {
          id: "check-redis",
          label: "GET /check, Redis",
          mode: "http",
          target: `http://127.0.0.1:${redisHttp}/check?domain=bench`,
          floor: floorHttp,
        },
        {
          id: "grpc-redis",
          label: "gRPC ShouldRateLimit, Redis",
          mode: "grpc",
          target: `127.0.0.1:${redisGrpc}`,
          floor: floorGrpc,
        },
      );
    } else {
      log("bench: gateway: redis-server not found, the Redis targets are skipped");
    }
    for (let round = 0; round < config.rounds; round++) {
      for (const inFlight of IN_FLIGHT) {
        for (const t of rotate(targets, round)) {
          log(
            `bench: gateway round ${round + 1}/${config.rounds} ${t.id} at ${inFlight} in flight`,
          );
          const r = await load<PairedResult>({
            mode: t.mode,
            target: t.target,
            floor: t.floor,
            inFlight,
            durationMs,
            warmupMs,
          });
          const byTarget = result.runs[t.id] ?? {};
          result.runs[t.id] = byTarget;
          const list = byTarget[String(inFlight)] ?? [];
          byTarget[String(inFlight)] = list;
          list.push(r);
        }
      }
    }
    if (redis !== undefined) {
      const t = targets.find((x) => x.id === "check-redis") as Target_;
      const before = await evalshaCalls(redis);
      const r = await load({
        mode: "http",
        target: t.target.replace("domain=bench", "domain=deny"),
        inFlight: 16,
        durationMs,
        warmupMs: 0,
        oneClient: true,
      });
      const after = await evalshaCalls(redis);
      if (r !== null) result.denied = { decisions: r.calls, redisCalls: after - before };
      // A second serve process on the same Redis; the load is split between them.
      const [second] = await start(serveArgs, { REDIS_URL: redis.url }, children);
      const one = await load({
        mode: "http",
        target: t.target,
        inFlight: 64,
        durationMs,
        warmupMs,
      });
      const halves = await Promise.all([
        load({ mode: "http", target: t.target, inFlight: 32, durationMs, warmupMs }),
        load({
          mode: "http",
          target: `http://127.0.0.1:${second}/check?domain=bench`,
          inFlight: 32,
          durationMs,
          warmupMs,
        }),
      ]);
      if (one !== null && halves[0] !== null && halves[1] !== null) {
        result.scaling = { one: one.perSecond, two: halves[0].perSecond + halves[1].perSecond };
      }
    }
  } catch (error) {
    return { measured: false, reason: String(error), runs: result.runs };
  } finally {
    for (const c of children) c.kill("SIGKILL");
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function values(
  r: GatewayRun,
  id: string,
  inFlight: number,
  side: "target" | "floor",
  pick: (x: LoadResult) => number,
): number[] {
  return (r.runs[id]?.[String(inFlight)] ?? []).map((x) =>
    x === null ? Number.NaN : pick(x[side]),
  );
}

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : "–");
const perSecond = (v: number) =>
  Number.isFinite(v) ? `${Math.round(v).toLocaleString("en-US")}/s` : "–";

function report(data: RunData) {
  const r = data.extra.gateway as GatewayRun | undefined;
  if (r === undefined || !r.measured) {
    const why = r?.reason ?? "not run";
    return {
      markdown: `Not measured: ${why}.`,
      targets: [
        { target: "gateway /check >= 0.8x bare node:http", measured: why, met: null },
        { target: "gateway gRPC >= 0.8x bare grpc-js echo", measured: why, met: null },
        { target: "gateway p99 < 2 ms at 1 in flight", measured: why, met: null },
      ],
    };
  }
  const rate = (x: LoadResult) => x.perSecond;
  const ratioAt = (id: string, n: number) =>
    pairedRatio(values(r, id, n, "target", rate), values(r, id, n, "floor", rate));
  const rows: string[][] = [];
  for (const id of Object.keys(r.runs)) {
    for (const n of IN_FLIGHT) {
      rows.push([
        id,
        String(n),
        perSecond(median(values(r, id, n, "target", rate))),
        ms(median(values(r, id, n, "target", (x) => x.p50))),
        ms(median(values(r, id, n, "target", (x) => x.p99))),
        perSecond(median(values(r, id, n, "floor", rate))),
        ms(median(values(r, id, n, "floor", (x) => x.p99))),
        ratio(ratioAt(id, n)),
      ]);
    }
  }
  const worst = (id: string) => Math.min(...IN_FLIGHT.map((n) => ratioAt(id, n)));
  const check = worst("check-memory");
  const grpc = worst("grpc-memory");
  const p99 = (id: string) => median(values(r, id, 1, "target", (x) => x.p99));
  const floorP99 = (id: string) => median(values(r, id, 1, "floor", (x) => x.p99));
  const p99Met =
    Number.isFinite(p99("check-memory")) && Number.isFinite(p99("grpc-memory"))
      ? p99("check-memory") < 2 && p99("grpc-memory") < 2
      : null;
  // The floors' own p99 above the bound: no server on that stack meets it here.
  const overFloor = (["check-memory", "grpc-memory"] as const).filter(
    (id) => p99(id) >= 2 && floorP99(id) >= 2,
  );
  const targets: Target[] = [
    {
      target: "gateway /check (memory) >= 0.8x bare node:http, at 1, 16 and 64 in flight",
      measured: `${ratio(check)} (lowest of the three)`,
      met: Number.isFinite(check) ? check >= 0.8 : null,
    },
    {
      target: "gateway gRPC (memory) >= 0.8x bare grpc-js echo, at 1, 16 and 64 in flight",
      measured: `${ratio(grpc)} (lowest of the three)`,
      met: Number.isFinite(grpc) ? grpc >= 0.8 : null,
    },
    {
      target: "gateway p99 < 2 ms at 1 in flight (memory: /check, gRPC)",
      measured: `${ms(p99("check-memory"))}, ${ms(p99("grpc-memory"))} (floors: ${ms(floorP99("check-memory"))}, ${ms(floorP99("grpc-memory"))})`,
      met: p99Met,
      ...(p99Met === false && overFloor.length > 0
        ? {
            why: overFloor
              .map(
                (id) =>
                  `${id === "grpc-memory" ? "a bare grpc-js echo server" : "a bare node:http server"} on the same machine, measured in the same rounds, has a p99 of ${ms(floorP99(id))} at 1 in flight by itself (floodgate's ${ms(p99(id))})`,
              )
              .join("; "),
          }
        : {}),
    },
  ];
  const extra: string[] = [];
  if (r.denied !== undefined) {
    extra.push(
      `One denied client at 16 in flight through GET /check on Redis: ${r.denied.decisions} decisions, ${r.denied.redisCalls} Redis script calls (cached denials answer the rest in the process).`,
    );
    targets.push({
      target:
        "gateway on Redis: one denied client, alone in its domain, costs Redis (almost) nothing",
      measured: `${r.denied.redisCalls} Redis calls for ${r.denied.decisions} denials`,
      // The first wave (16 calls sent before the first denial came back) reaches Redis; nothing after it.
      met: r.denied.redisCalls <= 16 + r.denied.decisions / 100,
    });
  }
  if (r.scaling !== undefined) {
    extra.push(
      `Two serve processes on one Redis (32 in flight each) vs one (64 in flight): ${perSecond(r.scaling.two)} vs ${perSecond(r.scaling.one)} (${ratio(r.scaling.two / r.scaling.one)}); on a 2-core machine the load generators share the cores.`,
    );
  }
  return {
    markdown: [
      `Each case is one load process (keep-alive HTTP agent, or one grpc-js channel) that alternates between the target and its floor every 100 ms for ${r.durationMs} ms in all, after a warm-up of each, so both are measured under the same moment's machine; ${data.config.rounds} rounds in rotated order; medians, and the ratio paired by round. Clients come from 10,000 addresses; the limit (1e9 per second) admits every call, so this is the allowed path. Floors: a bare node:http server answering 200 (HTTP), a bare grpc-js service answering the same Envoy method with a constant reply (gRPC).`,
      "",
      table(
        ["target", "in flight", "decisions/s", "p50", "p99", "floor/s", "floor p99", "vs floor"],
        rows,
      ),
      "",
      ...extra,
    ].join("\n"),
    targets,
  };
}

export const gateway: Scenario = {
  id: "gateway",
  title: "Gateway mode: floodgate serve (/check and gRPC)",
  run,
  report,
};
