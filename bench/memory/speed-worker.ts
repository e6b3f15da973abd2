/**
 * One child process: one contender through a list of decision-rate cases,
 * each with a fresh limiter. Prints `{ id, cases: { [case]: CaseResult } }`.
 *
 * Cases: `hot-admit`, `hot-reject` (one key), `rr-N` (N keys inserted, then
 * walked round-robin; for N >= 100k the insert pass is timed as `insert-N`).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { HOT_KEY, ipKeys } from "../lib/keys.js";
import { contender, type Limits, type Runner } from "./contenders.js";

export interface SpeedJob {
  contender: string;
  cases: string[];
  durationMs: number;
  warmupMs: number;
}

export interface CaseResult {
  /**
   * Decisions per CPU-second of this process (process.cpuUsage, user + system,
   * GC threads included) over the timed part: on a shared machine a process
   * that waits for a core loses wall time but not CPU time.
   */
  perSecond: number;
  /** Decisions per wall-clock second over the same part. */
  perWallSecond: number;
  /** Share of the timed decisions that were allowed (1 on admit paths, 0 on reject paths). */
  allowed: number;
  decisions: number;
}

const ADMIT: Limits = { capacity: 1e9, windowMs: 3_600_000 };
const REJECT: Limits = { capacity: 1, windowMs: 3_600_000 };
const BATCH = 10_000;
const INSERT_TIMED_FROM = 100_000;

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<void> {
  gc?.();
  await sleep(20);
  gc?.();
}

async function timed(
  run: Runner,
  keys: readonly string[],
  durationMs: number,
  warmupMs: number,
): Promise<CaseResult> {
  let cursor = 0;
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) {
    await run(keys, cursor, BATCH);
    cursor = (cursor + BATCH) % keys.length;
  }
  let decisions = 0;
  let allowed = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  let elapsed = 0;
  do {
    allowed += await run(keys, cursor, BATCH);
    cursor = (cursor + BATCH) % keys.length;
    decisions += BATCH;
    elapsed = performance.now() - start;
  } while (elapsed < durationMs);
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000;
  return {
    perSecond: (decisions / cpuMs) * 1000,
    perWallSecond: (decisions / elapsed) * 1000,
    allowed: allowed / decisions,
    decisions,
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] as string) as SpeedJob;
  const c = contender(job.contender);
  const out: Record<string, CaseResult> = {};
  for (const name of job.cases) {
    await settle();
    if (name === "hot-admit" || name === "hot-reject") {
      const run = await c.create(name === "hot-admit" ? ADMIT : REJECT);
      out[name] = await timed(run, [HOT_KEY], job.durationMs, job.warmupMs);
      continue;
    }
    const match = /^rr-(\d+)$/.exec(name);
    if (!match) throw new Error(`bench: unknown case ${name}`);
    const size = Number(match[1]);
    const keys = ipKeys(size);
    const run = await c.create(ADMIT);
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    await run(keys, 0, size);
    const insertMs = performance.now() - t0;
    const used = process.cpuUsage(cpu);
    if (size >= INSERT_TIMED_FROM) {
      out[`insert-${size}`] = {
        perSecond: (size / (used.user + used.system)) * 1e6,
        perWallSecond: (size / insertMs) * 1000,
        allowed: 1,
        decisions: size,
      };
    }
    out[name] = await timed(run, keys, job.durationMs, job.warmupMs);
  }
  process.stdout.write(`${JSON.stringify({ id: c.id, cases: out })}\n`);
  process.exit(0);
}

await main();
