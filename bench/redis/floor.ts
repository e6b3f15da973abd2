/**
 * What one token-bucket decision must cost Redis, measured beside what
 * floodgate's script costs and what rate-limit-redis's costs (issue 18,
 * point 1): `usec_per_call` from `INFO commandstats` for a ladder of scripts
 * that add one Redis command at a time, with constant values (no arithmetic),
 * then floodgate's own script alone and in batches. Each is driven by
 * redis-benchmark (16 connections, 10k clients, 100k decisions, every one
 * admitted, so each key is written about ten times) on a
 * redis-server started here; the rows alternate over rounds, and the table
 * shows medians.
 *
 *   npx tsx bench/redis/floor.ts            # 5 rounds, about a minute
 *   npx tsx bench/redis/floor.ts --rounds 9
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SCRIPT } from "../../src/stores/redis/script.js";
import { startRedis } from "../../test/helpers/redis-server.js";
import { median } from "../lib/stats.js";
import { table } from "../lib/table.js";

const run = promisify(execFile);
const BENCHMARK = process.env.REDIS_BENCHMARK ?? "/usr/bin/redis-benchmark";
const CLI = process.env.REDIS_CLI ?? "/usr/bin/redis-cli";

/** rate-limit-redis's own increment script, read from the installed package (the peer the issue measures against). */
function peerScript(): string {
  const file = createRequire(import.meta.url).resolve("rate-limit-redis");
  const text = readFileSync(file, "utf8");
  const start = text.indexOf("increment: `");
  const end = text.indexOf("`", start + 12);
  if (start < 0 || end < 0)
    throw new Error("bench: rate-limit-redis's script not found in its package");
  return text
    .slice(start + 12, end)
    .replaceAll(/^\s+/gm, "")
    .trim();
}

const CLOCK = `local c = redis.call("TIME")
local now = c[1] * 1000 + math.floor(c[2] / 1000)
`;
/** 24 bytes that are no text bucket: what a packed bucket weighs. */
const STATE = "\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0";

interface Row {
  id: string;
  what: string;
  script: string;
  /** Arguments after the SHA; `__rand_int__` picks one of 10k clients per call. */
  args: string[];
  /** Decisions per call (a batch decides several). */
  per: number;
}

const ONE = ["1", "floodgate:{__rand_int__}:default"];
const ONE_ARGS = ["1", "1000000000", "1", "3600000"];
const TWO = ["2", "floodgate:{__rand_int__}:second", "floodgate:{__rand_int__}:hour"];
const TWO_ARGS = ["1", "1000000000", "1", "1000", "1000000000", "1", "3600000"];

/** A batch as RedisStore sends it: one plan (the policies' numbers), then each consume's plan number and op. */
function batch(size: number, policies: 1 | 2): string[] {
  const keys: string[] = [];
  const plan = policies === 1 ? ["1", "3", ...ONE_ARGS.slice(1)] : ["2", "3", ...TWO_ARGS.slice(1)];
  const args: string[] = ["B", String(size), "0", "1", ...plan];
  for (let i = 0; i < size; i++) {
    if (policies === 1) {
      keys.push(`floodgate:{__rand_int__${i}}:default`);
    } else {
      keys.push(`floodgate:{__rand_int__${i}}:second`, `floodgate:{__rand_int__${i}}:hour`);
    }
    args.push("1", "1");
  }
  return [String(keys.length), ...keys, ...args];
}

/**
 * batchFloor is the floor of a batch: `TIME` once per call, then for each
 * consume the reads and writes of `policies` keys with constant values, as
 * floodgate's batches send them (same arguments), no arithmetic.
 */
function batchFloor(policies: 1 | 2): string {
  const read =
    policies === 1
      ? `redis.call("GET", KEYS[kb + 1])`
      : `redis.call("MGET", KEYS[kb + 1], KEYS[kb + 2])`;
  let write = "";
  for (let i = 1; i <= policies; i++)
    write += `  redis.call("SET", KEYS[kb + ${i}], "${STATE}", "KEEPTTL")\n`;
  const reply = policies === 1 ? "{now, 1, 999, now}" : "{now, 1, 999, now, 999, now}";
  return `${CLOCK}local replies, kb = {}, 0
for d = 1, ARGV[2] + 0 do
  local v = ${read}
${write}  replies[d] = ${reply}
  kb = kb + ${policies}
end
return replies`;
}

/** About the batch a RedisStore sends at 16 requests in flight (bench/README.md). */
const BATCH = 4;

const ROWS: Row[] = [
  {
    id: "peer",
    what: "rate-limit-redis's script (PTTL, then INCR; SET PX on a new window)",
    script: peerScript(),
    args: ["1", "rl:__rand_int__", "3600000"],
    per: 1,
  },
  {
    id: "call",
    what: "EVALSHA of `return 1`, same arguments",
    script: "return 1",
    args: [...ONE, ...ONE_ARGS],
    per: 1,
  },
  { id: "time", what: "+ TIME", script: `${CLOCK}return 1`, args: [...ONE, ...ONE_ARGS], per: 1 },
  {
    id: "get",
    what: "+ GET",
    script: `${CLOCK}local v = redis.call("GET", KEYS[1])\nreturn {now, 1, 999, now}`,
    args: [...ONE, ...ONE_ARGS],
    per: 1,
  },
  {
    id: "keep",
    what: "+ SET KEEPTTL (constant value): the floor of a token bucket whose TTL is kept",
    script: `${CLOCK}local v = redis.call("GET", KEYS[1])\nredis.call("SET", KEYS[1], "${STATE}", "KEEPTTL")\nreturn {now, 1, 999, now}`,
    args: [...ONE, ...ONE_ARGS],
    per: 1,
  },
  {
    id: "px",
    what: "+ SET PX instead (constant value and TTL): the floor when every write sets a TTL",
    script: `${CLOCK}local v = redis.call("GET", KEYS[1])\nredis.call("SET", KEYS[1], "${STATE}", "PX", "3600000")\nreturn {now, 1, 999, now}`,
    args: [...ONE, ...ONE_ARGS],
    per: 1,
  },
  {
    id: "floodgate",
    what: "floodgate's script, one policy",
    script: SCRIPT,
    args: [...ONE, ...ONE_ARGS],
    per: 1,
  },
  {
    id: "floor-b4",
    what: `a batch of ${BATCH}: TIME once, then GET and SET KEEPTTL (constant values) per consume (per decision)`,
    script: batchFloor(1),
    args: batch(BATCH, 1),
    per: BATCH,
  },
  {
    id: "floodgate-b4",
    what: `floodgate's script, one policy, a batch of ${BATCH} (per decision)`,
    script: SCRIPT,
    args: batch(BATCH, 1),
    per: BATCH,
  },
  {
    id: "keep-2",
    what: "two keys: TIME, MGET, 2 x SET KEEPTTL (constant values)",
    script: `${CLOCK}local v = redis.call("MGET", KEYS[1], KEYS[2])\nredis.call("SET", KEYS[1], "${STATE}", "KEEPTTL")\nredis.call("SET", KEYS[2], "${STATE}", "KEEPTTL")\nreturn {now, 1, 999, now, 999, now}`,
    args: [...TWO, ...TWO_ARGS],
    per: 1,
  },
  {
    id: "floodgate-2",
    what: "floodgate's script, two policies",
    script: SCRIPT,
    args: [...TWO, ...TWO_ARGS],
    per: 1,
  },
  {
    id: "floor-2-b4",
    what: `two keys, a batch of ${BATCH}: TIME once, then MGET and 2 x SET KEEPTTL (constant values) per consume (per decision)`,
    script: batchFloor(2),
    args: batch(BATCH, 2),
    per: BATCH,
  },
  {
    id: "floodgate-2-b4",
    what: `floodgate's script, two policies, a batch of ${BATCH} (per decision)`,
    script: SCRIPT,
    args: batch(BATCH, 2),
    per: BATCH,
  },
];

async function cli(port: number, ...args: string[]): Promise<string> {
  return (await run(CLI, ["-p", String(port), ...args])).stdout.trim();
}

async function usecPerCall(
  port: number,
  sha: string,
  args: string[],
  calls: number,
): Promise<number> {
  const bench = ["-p", String(port), "-c", "16", "-r", "10000", "-q"];
  await cli(port, "flushall");
  await run(BENCHMARK, [...bench, "-n", String(Math.ceil(calls / 4)), "EVALSHA", sha, ...args]);
  await cli(port, "config", "resetstat");
  await run(BENCHMARK, [...bench, "-n", String(calls), "EVALSHA", sha, ...args]);
  const info = await cli(port, "info", "commandstats");
  const hit = /cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(info);
  if (hit === null) throw new Error(`bench: no evalsha in INFO commandstats: ${info}`);
  return Number(hit[1]);
}

/** LadderRow is one script of the ladder, measured: its µs per decision, median over rounds. */
export interface LadderRow {
  id: string;
  what: string;
  us: number;
}

/**
 * measureLadder starts its own redis-server and runs every row of the ladder
 * `rounds` times (rows alternating), returning each row's median µs per
 * decision, the peer's row first, and the server's version.
 */
export async function measureLadder(
  rounds: number,
): Promise<{ version: string; rows: LadderRow[] }> {
  const server = await startRedis();
  try {
    const shas = new Map<string, string>();
    for (const r of ROWS) shas.set(r.id, await cli(server.port, "script", "load", r.script));
    const samples = new Map<string, number[]>(ROWS.map((r) => [r.id, []]));
    for (let round = 0; round < rounds; round++) {
      const order = [...ROWS.slice(round % ROWS.length), ...ROWS.slice(0, round % ROWS.length)];
      for (const r of order) {
        const us = await usecPerCall(
          server.port,
          shas.get(r.id) as string,
          r.args,
          r.per > 1 ? 20_000 : 100_000,
        );
        (samples.get(r.id) as number[]).push(us / r.per);
      }
    }
    const version = /redis_version:([\d.]+)/.exec(await cli(server.port, "info", "server"))?.[1];
    return {
      version: version ?? "?",
      rows: ROWS.map((r) => ({
        id: r.id,
        what: r.what,
        us: median(samples.get(r.id) as number[]),
      })),
    };
  } finally {
    await server.stop();
  }
}

/** ladderTable renders the ladder with each row's ratio to rate-limit-redis's script. */
export function ladderTable(rows: readonly LadderRow[]): string {
  const peer = rows.find((r) => r.id === "peer")?.us ?? Number.NaN;
  return table(
    ["script", "µs per decision", "÷ rate-limit-redis"],
    rows.map((r) => [r.what, r.us.toFixed(2), `${(r.us / peer).toFixed(2)}x`]),
  );
}

async function main(): Promise<void> {
  const at = process.argv.indexOf("--rounds");
  const rounds = at > 0 ? Number(process.argv[at + 1]) : 5;
  const { version, rows } = await measureLadder(rounds);
  console.log(
    `Redis time per decision (INFO commandstats usec_per_call ÷ decisions per call), redis-server ${version}, redis-benchmark -c 16 -r 10000, median of ${rounds} alternating rounds\n`,
  );
  console.log(ladderTable(rows));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])
  await main();
