/**
 * Measures the heap one structure keeps per tracked key, in a process of its
 * own so no other test's garbage moves the figure. Usage:
 *   node --import tsx test/helpers/key-heap.ts <memory|denials|fallback> <short|long> <n>
 * `long` keys are fresh flat 15 KB strings (what an HTTP parser hands over for
 * a 15 KB header), never slices of a shared one. Prints one JSON line:
 * { bytesPerKey, tracked }.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { MemoryStore, RateLimiter, type Store } from "../../src/index.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const [structure = "memory", kind = "short", count = "100000"] = process.argv.slice(2);
const n = Number(count);
const filler = Buffer.alloc(15_000, "k");
const key =
  kind === "long"
    ? (i: number) => {
        filler.write(i.toString(36).padStart(10, "0"), 0, "latin1");
        return filler.toString("latin1");
      }
    : (i: number) => `k${i}`;

/** A network store (it has a timeout) that denies every key, or fails every call. */
const remote = (fail: boolean): Store => ({
  timeout: 1000,
  consume(): number[] {
    if (fail) throw new Error("store down");
    return [0, 0, 0, 0];
  },
  reset(): void {},
});

const policy = { capacity: 10, refillRate: 1, interval: 600_000 };
const memory = new MemoryStore({ clock: () => 0 });
const limiter = new RateLimiter({
  policy,
  clock: () => 0,
  store: structure === "memory" ? memory : remote(structure === "fallback"),
});
await limiter.consume("warm-up");
const before = heap();
for (let i = 0; i < n; i++) await limiter.consume(key(i));
const bytesPerKey = (heap() - before) / n;
const stats = limiter.stats();
const tracked =
  structure === "memory"
    ? memory.stats().trackedKeys - 1
    : structure === "denials"
      ? stats.storeCalls - 1
      : stats.fallbacks - 1;
process.stdout.write(`${JSON.stringify({ bytesPerKey, tracked })}\n`);
