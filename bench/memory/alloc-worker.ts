/**
 * One child process: bytes a contender allocates per decision on one hot key,
 * admit path or reject path, through the same loop the speed worker times.
 * Prints `{ id, cases: { [case]: AllocResult } }`.
 *
 * Method: the child runs with a young generation large enough that a sample
 * of SAMPLE decisions fits in it without a scavenge (the parent passes
 * `--min-semi-space-size` and `--max-semi-space-size`). After a warm-up, each
 * sample forces a full GC, reads `used_heap_size`, takes SAMPLE decisions
 * and reads it again: with no collection in between, the growth is exactly
 * what the decisions allocated on the heap (garbage included). A
 * PerformanceObserver on `gc` entries checks that no collection ran during a
 * sample; a sample with one is discarded. The figure is the median over
 * SAMPLES samples; their spread is reported too (JIT tiering during a sample
 * can add a few bytes per decision; allocation itself is deterministic).
 */
import { PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { getHeapStatistics } from "node:v8";
import { HOT_KEY } from "../lib/keys.js";
import { median } from "../lib/stats.js";
import { contender, type Limits } from "./contenders.js";

/** Decisions per sample: at ~1 kB a decision at most, 20 MB, inside a 128 MB semi-space. */
const SAMPLE = 20_000;
const SAMPLES = 9;
/** Untimed decisions first, so the contender's code is optimised before sampling. */
const WARMUP = 200_000;

export interface AllocJob {
  contender: string;
  cases: string[];
}

export interface AllocResult {
  /** Heap bytes allocated per decision: median over the samples without a GC. */
  bytesPerDecision: number;
  /** Lowest and highest sample (bytes per decision). */
  min: number;
  max: number;
  /** Samples that counted (no GC ran during them). */
  samples: number;
  /** Share of the sampled decisions that were allowed (checks the setup). */
  allowed: number;
}

const ADMIT: Limits = { capacity: 1e9, windowMs: 3_600_000 };
const REJECT: Limits = { capacity: 1, windowMs: 3_600_000 };

const gc = (globalThis as { gc?: () => void }).gc;

let collections = 0;
new PerformanceObserver((list) => {
  collections += list.getEntries().length;
}).observe({ entryTypes: ["gc"] });

/** flushObserver lets pending `gc` entries reach the observer (they arrive a few ms after the GC). */
function flushObserver(): Promise<void> {
  return sleep(10);
}

async function main(): Promise<void> {
  if (gc === undefined) throw new Error("bench: alloc-worker needs --expose-gc");
  const job = JSON.parse(process.argv[2] as string) as AllocJob;
  const c = contender(job.contender);
  const keys = [HOT_KEY];
  const out: Record<string, AllocResult> = {};
  for (const name of job.cases) {
    if (name !== "hot-admit" && name !== "hot-reject") {
      throw new Error(`bench: unknown allocation case ${name}`);
    }
    const run = await c.create(name === "hot-admit" ? ADMIT : REJECT);
    for (let done = 0; done < WARMUP; done += SAMPLE) await run(keys, 0, SAMPLE);
    const perDecision: number[] = [];
    let allowed = 0;
    let decided = 0;
    for (let s = 0; s < SAMPLES; s++) {
      gc();
      await flushObserver();
      const seen = collections;
      const before = getHeapStatistics().used_heap_size;
      allowed += await run(keys, 0, SAMPLE);
      const after = getHeapStatistics().used_heap_size;
      decided += SAMPLE;
      await flushObserver();
      if (collections === seen) perDecision.push((after - before) / SAMPLE);
    }
    out[name] = {
      bytesPerDecision: median(perDecision),
      min: perDecision.length ? Math.min(...perDecision) : Number.NaN,
      max: perDecision.length ? Math.max(...perDecision) : Number.NaN,
      samples: perDecision.length,
      allowed: allowed / decided,
    };
  }
  process.stdout.write(`${JSON.stringify({ id: c.id, cases: out })}\n`);
  process.exit(0);
}

await main();
