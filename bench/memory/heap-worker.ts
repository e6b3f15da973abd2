/**
 * One child process (run with --expose-gc): heap bytes per tracked key for
 * one contender at one key count. The worker keeps no key strings itself, so
 * the figure includes each key string as the contender stores it, plus the
 * contender's arrays outside the JS heap (typed arrays count as external).
 * Prints `{ id, keys, bytesPerKey, heapPerKey, externalPerKey }`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ipKey } from "../lib/keys.js";
import { contender } from "./contenders.js";

export interface HeapJob {
  contender: string;
  keys: number;
}

export interface HeapResult {
  id: string;
  keys: number;
  bytesPerKey: number;
  heapPerKey: number;
  externalPerKey: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("bench: heap-worker needs node --expose-gc");

async function usage(): Promise<{ heap: number; external: number }> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(10);
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] as string) as HeapJob;
  const c = contender(job.contender);
  const run = await c.create({ capacity: 1e9, windowMs: 3_600_000 });
  // Warm the code paths on other keys first so compiled code is in the baseline.
  await run(["warm-a", "warm-b"], 0, 1000);
  const before = await usage();
  const chunk = 10_000;
  for (let base = 0; base < job.keys; base += chunk) {
    const keys: string[] = [];
    for (let i = base; i < Math.min(job.keys, base + chunk); i++) keys.push(ipKey(i));
    await run(keys, 0, keys.length);
  }
  const after = await usage();
  const heapPerKey = (after.heap - before.heap) / job.keys;
  const externalPerKey = (after.external - before.external) / job.keys;
  const result: HeapResult = {
    id: c.id,
    keys: job.keys,
    bytesPerKey: heapPerKey + externalPerKey,
    heapPerKey,
    externalPerKey,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Keep the contender alive until measured, then exit (peers hold timers).
  if (run.length < 0) console.log(run);
  process.exit(0);
}

await main();
