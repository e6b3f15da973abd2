/**
 * One child process: one Redis contender through a list of cases against the
 * redis-server the run started. Prints `{ id, cases: { [case]: RedisCaseResult } }`.
 *
 * Cases: `admit-N` (N decisions in flight, 10k client keys round-robin, a
 * limit no run reaches) and `reject-N` (1k keys, 1 per hour: after the first
 * decision of each key, every one is a denial). Each case starts on a flushed
 * database with a fresh client and limiter.
 */
import { Redis } from "ioredis";
import { ipKeys } from "../lib/keys.js";
import { type Counters, type Decide, type Limits, redisContender } from "./contenders.js";

export interface RedisJob {
  contender: string;
  port: number;
  cases: string[];
  durationMs: number;
  warmupMs: number;
  /** SHA-1 of floodgate's script (from the sources): checked to be loaded after floodgate's cases. */
  sha: string;
}

export interface RedisCaseResult {
  /** Decisions per wall-clock second: what Redis and the client achieved together. */
  perSecond: number;
  /** Client (this process) CPU microseconds per decision, user + system. */
  clientCpuUs: number;
  /** redis-server CPU microseconds per decision (INFO cpu), user + system. */
  redisCpuUs: number;
  /** Decisions per CPU-second of this process: the measure for the local reject paths. */
  perCpuSecond: number;
  /** Share of the timed decisions that were allowed. */
  allowed: number;
  /** Share answered by the limiter's fallback (must be 0 for the round to count). */
  fallbacks: number;
  /** Share answered from floodgate's cached denials. */
  cached: number;
  decisions: number;
  /**
   * `INFO commandstats` over the timed part (CONFIG RESETSTAT just before
   * it), for the script commands (EVAL, EVALSHA, their _RO forms, FCALL):
   * Redis's own microseconds per script call (`usec` ÷ `calls`: the time the
   * call took inside Redis, the script's commands included), the names seen,
   * and script calls per decision. Absent for the local reference.
   */
  scriptUsPerCall?: number;
  scriptCallsPerDecision?: number;
  scriptCommands?: string[];
}

/** Commands that run a script: their `usec` includes the commands the script calls. */
const SCRIPT_COMMANDS = new Set(["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]);

interface ScriptStats {
  calls: number;
  usec: number;
  commands: string[];
}

/** scriptStats sums the script commands' `calls` and `usec` from `INFO commandstats`. */
async function scriptStats(monitor: Redis): Promise<ScriptStats> {
  const info = await monitor.info("commandstats");
  const out: ScriptStats = { calls: 0, usec: 0, commands: [] };
  for (const line of info.split("\n")) {
    const m = /^cmdstat_([a-z_|]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (!m || !SCRIPT_COMMANDS.has(m[1] as string)) continue;
    out.calls += Number(m[2]);
    out.usec += Number(m[3]);
    out.commands.push(m[1] as string);
  }
  return out;
}

const ADMIT: Limits = { capacity: 1e9, windowMs: 3_600_000 };
const REJECT: Limits = { capacity: 1, windowMs: 3_600_000 };
const ADMIT_KEYS = 10_000;
const REJECT_KEYS = 1_000;

interface Driven {
  decisions: number;
  allowed: number;
  elapsedMs: number;
}

/**
 * drive keeps `inFlight` decisions outstanding until `durationMs` has passed:
 * `inFlight` async loops, each awaiting its decision before taking the next
 * key from a shared round-robin cursor (as `inFlight` concurrent requests
 * would). The clock is read every 16 decisions: a cached denial resolves in
 * microtasks, so no timer could fire meanwhile.
 */
async function drive(
  decide: Decide,
  keys: readonly string[],
  inFlight: number,
  durationMs: number,
): Promise<Driven> {
  let cursor = 0;
  let decisions = 0;
  let allowed = 0;
  let stop = false;
  const start = performance.now();
  const end = start + durationMs;
  async function loop(): Promise<void> {
    while (!stop) {
      const key = keys[cursor] as string;
      if (++cursor === keys.length) cursor = 0;
      if (await decide(key)) allowed++;
      if ((++decisions & 15) === 0 && performance.now() >= end) stop = true;
    }
  }
  const loops: Promise<void>[] = [];
  for (let i = 0; i < inFlight; i++) loops.push(loop());
  await Promise.all(loops);
  return { decisions, allowed, elapsedMs: performance.now() - start };
}

async function redisCpu(monitor: Redis | undefined): Promise<number> {
  if (monitor === undefined) return 0;
  const info = await monitor.info("cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6;
}

const ZERO: Counters = { fallbacks: 0, cached: 0, storeCalls: 0 };

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] as string) as RedisJob;
  const c = redisContender(job.contender);
  const monitor = c.local ? undefined : new Redis({ host: "127.0.0.1", port: job.port });
  const out: Record<string, RedisCaseResult> = {};
  for (const name of job.cases) {
    const match = /^(admit|reject)-(\d+)$/.exec(name);
    if (!match) throw new Error(`bench: unknown Redis case ${name}`);
    const reject = match[1] === "reject";
    const inFlight = Number(match[2]);
    await monitor?.flushall();
    const keys = ipKeys(reject ? REJECT_KEYS : ADMIT_KEYS);
    const instance = await c.create(job.port, reject ? REJECT : ADMIT);
    // Warm up: JIT, the script cache, every key seen once (on the reject
    // path: allowed once, then denied from the warm-up drive on).
    for (const key of keys) await instance.decide(key);
    await drive(instance.decide, keys, inFlight, job.warmupMs);
    const before = instance.counters?.() ?? ZERO;
    await monitor?.config("RESETSTAT");
    const redisBefore = await redisCpu(monitor);
    const cpu = process.cpuUsage();
    const run = await drive(instance.decide, keys, inFlight, job.durationMs);
    const used = process.cpuUsage(cpu);
    const redisUsed = (await redisCpu(monitor)) - redisBefore;
    const script = monitor === undefined ? undefined : await scriptStats(monitor);
    const after = instance.counters?.() ?? ZERO;
    const clientUs = used.user + used.system;
    out[name] = {
      perSecond: (run.decisions / run.elapsedMs) * 1000,
      clientCpuUs: clientUs / run.decisions,
      redisCpuUs: redisUsed / run.decisions,
      perCpuSecond: (run.decisions / clientUs) * 1e6,
      allowed: run.allowed / run.decisions,
      fallbacks: (after.fallbacks - before.fallbacks) / run.decisions,
      cached: (after.cached - before.cached) / run.decisions,
      decisions: run.decisions,
      ...(script === undefined
        ? {}
        : {
            scriptUsPerCall: script.calls > 0 ? script.usec / script.calls : Number.NaN,
            scriptCallsPerDecision: script.calls / run.decisions,
            scriptCommands: script.commands,
          }),
    };
    await instance.close();
  }
  if (monitor !== undefined && job.contender.startsWith("floodgate")) {
    const [loaded] = (await monitor.script("EXISTS", job.sha)) as number[];
    if (loaded !== 1) {
      throw new Error(
        `bench: floodgate's script ${job.sha} (from src/) was not loaded by dist/: rebuild`,
      );
    }
  }
  monitor?.disconnect();
  process.stdout.write(`${JSON.stringify({ id: c.id, cases: out })}\n`);
  process.exit(0);
}

await main();
