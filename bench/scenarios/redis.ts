import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { SCRIPT, SHA } from "../../src/stores/redis/script.js";
import { type RedisServer, startRedis } from "../../test/helpers/redis-server.js";
import { rotate, runChild } from "../lib/child.js";
import { median, pairedRatio, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { Config, Figure, RunData, Scenario, Target } from "../lib/types.js";
import { REDIS_CONTENDERS } from "../redis/contenders.js";
import { type LadderRow, ladderTable, measureLadder } from "../redis/floor.js";
import type { RedisCaseResult, RedisJob } from "../redis/worker.js";

const run = promisify(execFile);
const REDIS_BENCHMARK = process.env.REDIS_BENCHMARK ?? "/usr/bin/redis-benchmark";

/** IN_FLIGHT: decisions outstanding at once (redis-benchmark: connections). */
const IN_FLIGHT = [1, 16, 256] as const;
/** The reject path runs at one load: 16 requests in flight. */
const REJECT_CASE = "reject-16";
const CEILING = "evalsha-ceiling";
/** Client keys in the ceiling: `floodgate:{<12 digits>}:default`, 10k of them, as the workers' 10k IPs. */
const CEILING_KEYS = 10_000;

/**
 * CEILING_ARGS is the call floodgate's RedisStore makes on the admit path,
 * for redis-benchmark: numkeys, the key (`__rand_int__` becomes a 12-digit
 * number under -r), cost 1 (positive: spend it), then the policy: capacity
 * 1e9, 1 token per hour; no clock argument, so Redis TIME is the clock (see
 * src/stores/redis/script.ts).
 */
const CEILING_ARGS = ["1", "floodgate:{__rand_int__}:default", "1", "1000000000", "1", "3600000"];

/** Result of the scenario's run(), kept in data.extra.redis and the JSON. */
interface RedisRun {
  measured: boolean;
  reason?: string;
  redisVersion?: string;
  sha?: string;
  durationMs?: number;
  /** id -> case -> one result per round (null when the round failed or fell back). */
  runs: Record<string, Record<string, (RedisCaseResult | null)[]>>;
  /** The floor ladder (bench/redis/floor.ts) run after the cases; absent in older results. */
  ladder?: { version: string; rounds: number; rows: LadderRow[] };
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

const CASES = [...IN_FLIGHT.map((n) => `admit-${n}`), REJECT_CASE];

/** The load at which `INFO commandstats` is compared (issue 18): 16 decisions in flight. */
const STATS_CASE = "admit-16";

function casesOf(id: string): string[] {
  if (id === "floodgate-memory") return [REJECT_CASE];
  // Two policies: only the Redis CPU per call is asked of it.
  if (id === TWO_POLICIES) return [STATS_CASE];
  // The ceiling and the peers over node-redis: admit paths only.
  if (id === CEILING || id.endsWith("-node-redis")) return CASES.filter((c) => c !== REJECT_CASE);
  return CASES;
}

async function redisCpuUs(server: RedisServer): Promise<number> {
  const info = await server.cli("info", "cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6;
}

/**
 * ceiling runs redis-benchmark's EVALSHA of floodgate's own script with
 * `inFlight` connections for about `durationMs` (the request count comes from
 * the last rate seen at this load) and returns it as a case result.
 */
async function ceiling(
  server: RedisServer,
  inFlight: number,
  durationMs: number,
  lastRate: Map<number, number>,
): Promise<RedisCaseResult> {
  await server.cli("flushall");
  const loaded = (await server.cli("script", "load", SCRIPT)).trim();
  if (loaded !== SHA) throw new Error(`bench: SCRIPT LOAD gave ${loaded}, expected ${SHA}`);
  const expected = lastRate.get(inFlight) ?? (inFlight === 1 ? 10_000 : 60_000);
  const n = Math.max(2_000, Math.round((expected * durationMs) / 1000));
  const before = await redisCpuUs(server);
  const { stdout } = await run(
    REDIS_BENCHMARK,
    [
      "-h",
      server.host,
      "-p",
      String(server.port),
      "-c",
      String(inFlight),
      "-n",
      String(n),
      "-r",
      String(CEILING_KEYS),
      "--csv",
      "EVALSHA",
      SHA,
      ...CEILING_ARGS,
    ],
    { timeout: 120_000 },
  );
  const used = (await redisCpuUs(server)) - before;
  // --csv: a header line, then "EVALSHA ...","<rps>",...
  const line = stdout.trim().split("\n").pop() ?? "";
  const rps = Number(line.split('","')[1]);
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`bench: redis-benchmark said ${stdout}`);
  const check = await server.cli("dbsize");
  if (Number(check) === 0) throw new Error("bench: the EVALSHA ceiling wrote no keys");
  lastRate.set(inFlight, rps);
  return {
    perSecond: rps,
    clientCpuUs: Number.NaN,
    redisCpuUs: used / n,
    perCpuSecond: Number.NaN,
    allowed: 1,
    fallbacks: 0,
    cached: 0,
    decisions: n,
  };
}

function push(runs: RedisRun["runs"], id: string, name: string, r: RedisCaseResult | null): void {
  const byCase = runs[id] ?? {};
  runs[id] = byCase;
  const list = byCase[name] ?? [];
  byCase[name] = list;
  list.push(r);
}

async function measure(config: Config): Promise<RedisRun> {
  const wanted = (id: string) =>
    config.only.length === 0 || config.only.includes(id) || id === CEILING;
  const ids = [CEILING, ...REDIS_CONTENDERS.map((c) => c.id)].filter(wanted);
  const durationMs = config.durationMs * 5;
  const warmupMs = config.warmupMs * 2;
  const server = await startRedis();
  const runs: RedisRun["runs"] = {};
  const lastRate = new Map<number, number>();
  const one = async (id: string, name: string): Promise<RedisCaseResult | null> => {
    try {
      if (id === CEILING) return await ceiling(server, Number(name.slice(6)), durationMs, lastRate);
      const job: RedisJob = {
        contender: id,
        port: server.port,
        cases: [name],
        durationMs,
        warmupMs,
        sha: SHA,
      };
      const r = (
        await runChild<{ cases: Record<string, RedisCaseResult> }>("redis/worker.ts", job, {
          timeoutMs: 120_000,
        })
      ).cases[name];
      if (r !== undefined && r.fallbacks > 0 && name.startsWith("admit")) {
        log(`bench: ${id} ${name}: ${(r.fallbacks * 100).toFixed(2)}% fallbacks: round discarded`);
        return null;
      }
      return r ?? null;
    } catch (error) {
      log(String(error));
      return null;
    }
  };
  try {
    const version = /redis_version:(\S+)/.exec(await server.cli("info", "server"))?.[1];
    // Round -> case -> contender (rotated): the contenders of one case run
    // back to back, each in a fresh child, so a paired ratio spans seconds.
    for (let round = 0; round < config.rounds; round++) {
      for (const name of CASES) {
        for (const id of rotate(ids, round)) {
          if (!casesOf(id).includes(name)) continue;
          log(`bench: redis round ${round + 1}/${config.rounds} ${name} ${id}`);
          push(runs, id, name, await one(id, name));
        }
      }
    }
    return {
      measured: true,
      ...(version === undefined ? {} : { redisVersion: version }),
      sha: SHA,
      durationMs,
      runs,
    };
  } finally {
    await server.stop();
  }
}

// ---- report ----------------------------------------------------------------

/** NumField names the numeric fields of a case result. */
type NumField = {
  [K in keyof RedisCaseResult]-?: RedisCaseResult[K] extends number | undefined ? K : never;
}[keyof RedisCaseResult];

function series(r: RedisRun, id: string, name: string, field: NumField = "perSecond"): number[] {
  return (r.runs[id]?.[name] ?? []).map((x) => x?.[field] ?? Number.NaN);
}

function med(r: RedisRun, id: string, name: string, field?: NumField): number {
  return median(series(r, id, name, field));
}

function pair(r: RedisRun, a: string, b: string, name: string): number {
  return pairedRatio(series(r, a, name), series(r, b, name));
}

function kilo(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "–";
  return perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)}M` : `${(perSecond / 1e3).toFixed(1)}k`;
}

function micros(us: number): string {
  return Number.isFinite(us) ? `${us.toFixed(1)} µs` : "–";
}

function labelOf(id: string): string {
  if (id === CEILING) return "redis-benchmark EVALSHA (floodgate's script): the ceiling";
  return REDIS_CONTENDERS.find((c) => c.id === id)?.label ?? id;
}

/** Each floodgate client with the peers over the same client library. */
const PAIRS: readonly { client: string; floodgate: string; peers: string[] }[] = [
  {
    client: "ioredis",
    floodgate: "floodgate-ioredis",
    peers: ["rate-limiter-flexible", "rate-limit-redis"],
  },
  {
    client: "node-redis",
    floodgate: "floodgate-node-redis",
    peers: ["rate-limiter-flexible-node-redis", "rate-limit-redis-node-redis"],
  },
];
const FLOODGATE = PAIRS.map((p) => p.floodgate);
const PEERS = PAIRS.flatMap((p) => p.peers);
const TWO_POLICIES = "floodgate-ioredis-2p";
/** The script issue 18 measures floodgate's against: rate-limit-redis's, over ioredis. */
const CPU_PEER = "rate-limit-redis";
/**
 * Issue 18's bounds on Redis script time per decision, as a multiple of
 * CPU_PEER's: `usec_per_call` times script calls per decision, since
 * floodgate decides the consumes of one turn in one call (a peer: one call
 * per decision).
 */
const CPU_BOUND = { one: 1.5, two: 2.5 };
/** Rounds of the floor ladder (bench/redis/floor.ts's default). */
const LADDER_ROUNDS = 5;

function report(data: RunData) {
  const r = data.extra.redis as RedisRun | undefined;
  const targetNames = [
    "Redis: floodgate + ioredis >= 0.95 of the EVALSHA ceiling at 256 in flight",
    "Redis: floodgate + node-redis >= 0.85 of the EVALSHA ceiling at 256 in flight",
    "Redis: floodgate + ioredis ahead of rate-limiter-flexible and rate-limit-redis (both over ioredis) at 1, 16 and 256 in flight",
    "Redis: floodgate + node-redis ahead of rate-limiter-flexible and rate-limit-redis (both over node-redis) at 1, 16 and 256 in flight",
    `Redis script time per decision (INFO commandstats usec_per_call x script calls per decision, 16 in flight), one policy: floodgate <= ${CPU_BOUND.one}x of rate-limit-redis`,
    `Redis script time per decision (INFO commandstats usec_per_call x script calls per decision, 16 in flight), two policies: floodgate <= ${CPU_BOUND.two}x of rate-limit-redis`,
    "Redis: all-rejected path through RedisStore at in-memory speed (>= 0.9 of MemoryStore's reject path)",
  ];
  if (r === undefined || !r.measured) {
    return {
      markdown: `Not measured in this run: ${r?.reason ?? "not run"}.`,
      targets: targetNames.map((target) => ({ target, measured: "not measured", met: null })),
    };
  }
  const admit = IN_FLIGHT.map((n) => `admit-${n}`);
  const ids = [CEILING, ...REDIS_CONTENDERS.filter((c) => !c.local).map((c) => c.id)].filter(
    (id) => r.runs[id] !== undefined,
  );
  const speedRows = ids.map((id) => [
    labelOf(id),
    ...admit.map((name) => kilo(med(r, id, name))),
    ...admit.map((name) => (id === CEILING ? "1.00x" : ratio(pair(r, id, CEILING, name)))),
    micros(med(r, id, "admit-256", "redisCpuUs")),
    micros(med(r, id, "admit-256", "clientCpuUs")),
  ]);
  const vsRows = FLOODGATE.filter((id) => r.runs[id]).flatMap((f) =>
    PEERS.filter((p) => r.runs[p]?.["admit-1"]).map((p) => [
      `${labelOf(f)} ÷ ${labelOf(p)}`,
      ...admit.map((name) => ratio(pair(r, f, p, name))),
    ]),
  );
  const rejectIds = REDIS_CONTENDERS.map((c) => c.id).filter((id) => r.runs[id]?.[REJECT_CASE]);
  const rejectRows = rejectIds.map((id) => [
    labelOf(id),
    kilo(med(r, id, REJECT_CASE, "perCpuSecond")),
    kilo(med(r, id, REJECT_CASE)),
    micros(med(r, id, REJECT_CASE, "redisCpuUs")),
    `${((med(r, id, REJECT_CASE, "cached") || 0) * 100).toFixed(1)}%`,
    ratio(
      pairedRatio(
        series(r, id, REJECT_CASE, "perCpuSecond"),
        series(r, "floodgate-memory", REJECT_CASE, "perCpuSecond"),
      ),
    ),
  ]);

  const ladderPeer = r.ladder?.rows.find((row) => row.id === "peer")?.us ?? Number.NaN;
  const ladderVs = (id: string) =>
    ratio((r.ladder?.rows.find((row) => row.id === id)?.us ?? Number.NaN) / ladderPeer);
  const targets: Target[] = [];
  const io = pair(r, "floodgate-ioredis", CEILING, "admit-256");
  targets.push({
    target: targetNames[0] as string,
    measured: ratio(io),
    met: Number.isFinite(io) ? io >= 0.95 : null,
  });
  const nr = pair(r, "floodgate-node-redis", CEILING, "admit-256");
  targets.push({
    target: targetNames[1] as string,
    measured: ratio(nr),
    met: Number.isFinite(nr) ? nr >= 0.85 : null,
  });
  PAIRS.forEach((p, i) => {
    const ahead = p.peers.flatMap((peer) =>
      admit.map((name) => ({ peer, name, v: pair(r, p.floodgate, peer, name) })),
    );
    const peerName = (id: string) => id.replace(/-node-redis$/, "");
    const met = ahead.every((a) => Number.isFinite(a.v)) ? ahead.every((a) => a.v > 1) : null;
    // Per case behind: where each side spends, Redis and the client, per decision.
    const behind = admit.filter((name) => ahead.some((a) => a.name === name && !(a.v > 1)));
    const cpu = (id: string, name: string) =>
      `${micros(med(r, id, name, "redisCpuUs"))} Redis + ${micros(med(r, id, name, "clientCpuUs"))} client`;
    targets.push({
      target: targetNames[2 + i] as string,
      measured: ahead
        .map((a) => `${ratio(a.v)} of ${peerName(a.peer)} at ${a.name.slice(6)}`)
        .join("; "),
      met,
      ...(met === false
        ? {
            why: `CPU per decision, ${behind
              .map(
                (name) =>
                  `${name.slice(6)} in flight: floodgate ${cpu(p.floodgate, name)} against ${p.peers
                    .map((peer) => `${peerName(peer)} ${cpu(peer, name)}`)
                    .join(", ")}`,
              )
              .join(
                "; ",
              )}. A token bucket reads the server's clock, reads and writes the bucket (TIME, GET, SET against a fixed window's INCR and PTTL): ${ladderVs("keep")} of rate-limit-redis's script in Redis time before any arithmetic, one call per decision (the ladder below); at 1 in flight no call can be shared`,
          }
        : {}),
    });
  });
  const usOf = (id: string) => med(r, id, STATS_CASE, "scriptUsPerCall");
  const perDecision = (id: string) => {
    const calls = series(r, id, STATS_CASE, "scriptCallsPerDecision");
    return series(r, id, STATS_CASE, "scriptUsPerCall").map(
      (us, i) => us * (calls[i] ?? Number.NaN),
    );
  };
  const usDecision = (id: string) => median(perDecision(id));
  const usRatio = (id: string) => pairedRatio(perDecision(id), perDecision(CPU_PEER));
  const flexible = `; rate-limiter-flexible ${micros(usDecision("rate-limiter-flexible"))}`;
  for (const [i, id, bound] of [
    [4, "floodgate-ioredis", CPU_BOUND.one],
    [5, TWO_POLICIES, CPU_BOUND.two],
  ] as const) {
    const v = usRatio(id);
    const met = Number.isFinite(v) ? v <= bound : null;
    const [floor, own] = i === 4 ? ["floor-b4", "floodgate-b4"] : ["floor-2-b4", "floodgate-2-b4"];
    targets.push({
      target: targetNames[i] as string,
      measured: `${ratio(v)} (${micros(usDecision(id))} against ${micros(usDecision(CPU_PEER))} per decision${flexible}; ${micros(usOf(id))} per call, ${med(r, id, STATS_CASE, "scriptCallsPerDecision").toFixed(2)} calls per decision)`,
      met,
      ...(met === false && r.ladder !== undefined
        ? {
            why: `${i === 4 ? "one key" : "two keys (each policy is its own key, shared by every list that names it)"}: the same batch of 4 (about what 16 in flight sends) with constant values, TIME once and the reads and writes per consume, costs ${ladderVs(floor)} of rate-limit-redis's script; floodgate's script in it ${ladderVs(own)} (the ladder below, new keys): the rest is the script's Lua (read, refill and pack each bucket, the TTL rule, the reply). Larger batches cut the per-call share but cost decisions per second at 16 in flight (bench/README.md)`,
          }
        : {}),
    });
  }
  const statsIds = REDIS_CONTENDERS.filter((c) => !c.local)
    .map((c) => c.id)
    .filter((id) => r.runs[id]?.[STATS_CASE]);
  const statsRows = statsIds.map((id) => {
    const commands = new Set(
      (r.runs[id]?.[STATS_CASE] ?? []).flatMap((x) => x?.scriptCommands ?? []),
    );
    return [
      labelOf(id),
      [...commands].map((c) => c.toUpperCase()).join(", ") || "–",
      micros(usOf(id)),
      med(r, id, STATS_CASE, "scriptCallsPerDecision").toFixed(2),
      micros(usDecision(id)),
      ratio(usRatio(id)),
      micros(med(r, id, STATS_CASE, "redisCpuUs")),
    ];
  });
  const rej = pairedRatio(
    series(r, "floodgate-ioredis", REJECT_CASE, "perCpuSecond"),
    series(r, "floodgate-memory", REJECT_CASE, "perCpuSecond"),
  );
  targets.push({
    target: targetNames[6] as string,
    measured: `${ratio(rej)} (ioredis, per client CPU-second)`,
    met: Number.isFinite(rej) ? rej >= 0.9 : null,
  });

  const markdown = [
    `redis-server ${r.redisVersion ?? "?"} on loopback, started by the run; ${r.durationMs} ms per case; floodgate's script SHA ${r.sha?.slice(0, 12)}.`,
    "Decisions per wall-clock second (k = thousand), median over rounds; ratios are medians of",
    "per-round ratios. The ceiling is `redis-benchmark -c N -r 10000 EVALSHA <sha> 1",
    "floodgate:{__rand_int__}:default 1 1000000000 1 3600000` (N connections, one",
    "call each in flight): the same script, key shape and arguments as RedisStore's admit path.",
    "The Node contenders keep N calls in flight on one connection, 10k client IPs",
    "round-robin, a limit no run reaches. CPU columns are per decision at 256 in flight:",
    "redis-server (INFO cpu) and the Node client process. On a loaded machine, read the ÷ ceiling",
    "columns with care: redis-benchmark's 256 connections (a read and a write per call in Redis)",
    "suffer more from waiting for a core than one pipelined connection (many calls per read).",
    "",
    table(
      [
        "contender",
        ...IN_FLIGHT.map((n) => `${n} in flight`),
        ...IN_FLIGHT.map((n) => `÷ ceiling (${n})`),
        "Redis CPU / decision",
        "client CPU / decision",
      ],
      speedRows,
    ),
    "",
    "Redis time per script call, read from `INFO commandstats` in the same rounds (`CONFIG",
    "RESETSTAT` just before each contender's timed part; each contender alone on the server, 16",
    "decisions in flight, every decision admitted so each reaches Redis): `usec` ÷ `calls` of the",
    "script commands, the time each call took inside Redis with the commands the script runs.",
    "Medians over rounds; the ratio (script µs per decision) is the median of per-round ratios to rate-limit-redis + ioredis; floodgate decides the consumes one turn makes in one call, so its µs per call covers several decisions.",
    "The last column is redis-server's own CPU time (INFO cpu) per decision over the same part: it",
    "includes any command that is not a script, and Redis's network work.",
    "",
    table(
      [
        "contender",
        "script command",
        "µs per script call",
        "script calls per decision",
        "script µs per decision",
        "÷ rate-limit-redis",
        "Redis CPU / decision (INFO cpu)",
      ],
      statsRows,
    ),
    "",
    "floodgate ÷ each peer (same run, paired by round):",
    "",
    table(["ratio", ...IN_FLIGHT.map((n) => `${n} in flight`)], vsRows),
    ...(r.ladder === undefined
      ? []
      : [
          "",
          `What a decision must cost Redis (\`bench/redis/floor.ts\`, run here after the cases on its own redis-server ${r.ladder.version}): \`INFO commandstats\` µs per decision of scripts that add one command at a time with constant values, beside floodgate's script and rate-limit-redis's; redis-benchmark, 16 connections, 10k clients (so most keys are new and floodgate's writes set a TTL), median of ${r.ladder.rounds} alternating rounds.`,
          "",
          ladderTable(r.ladder.rows),
        ]),
    "",
    "All-rejected path (1 per hour, 1k client IPs, each denied once by Redis before timing, 16",
    "in flight): floodgate answers a key Redis has denied from its cached denial; the peers ask",
    "Redis every time. Decisions per client CPU-second (the measure for in-process work) and",
    "per wall-clock second:",
    "",
    table(
      [
        "contender",
        "per client CPU-second",
        "per wall second",
        "Redis CPU / decision",
        "cached",
        "÷ MemoryStore (CPU)",
      ],
      rejectRows,
    ),
  ].join("\n");
  const figures: Figure[] = [];
  for (const [id, byCase] of Object.entries(r.runs)) {
    for (const name of Object.keys(byCase)) {
      const local = name === REJECT_CASE;
      figures.push({
        name: `redis ${name} ${id} (decisions/${local ? "client CPU-s" : "s"})`,
        value: med(r, id, name, local ? "perCpuSecond" : "perSecond"),
        better: "higher",
      });
      if (name === STATS_CASE && id !== CEILING) {
        figures.push({
          name: `redis ${name} ${id} (µs per script call)`,
          value: usOf(id),
          better: "lower",
        });
      }
    }
  }
  for (const p of PAIRS) {
    for (const peer of p.peers) {
      for (const name of admit) {
        figures.push({
          name: `redis ${name} ${p.floodgate} ÷ ${peer}`,
          value: pair(r, p.floodgate, peer, name),
          better: "higher",
        });
      }
    }
  }
  return { markdown, targets, figures };
}

/**
 * (d) Redis decisions per second at 1, 16 and 256 in flight against a
 * redis-server this run starts on a free loopback port: floodgate's RedisStore
 * over ioredis and node-redis, rate-limiter-flexible's RateLimiterRedis,
 * rate-limit-redis (express-rate-limit's store), and redis-benchmark's EVALSHA
 * ceiling for floodgate's own script, alternating within each round; plus the
 * all-rejected path (cached denials) beside the in-memory reject path.
 */
export const redis: Scenario = {
  id: "redis",
  title: "(d) Redis decisions per second",
  async run(config) {
    let result: RedisRun;
    try {
      result = await measure(config);
    } catch (error) {
      log(String(error));
      return { measured: false, reason: String(error), runs: {} } satisfies RedisRun;
    }
    const rounds = config.quick ? 2 : LADDER_ROUNDS;
    log(`bench: redis floor ladder, ${rounds} rounds`);
    try {
      result.ladder = { rounds, ...(await measureLadder(rounds)) };
    } catch (error) {
      log(String(error));
    }
    return result;
  },
  report,
};
