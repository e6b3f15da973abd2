import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { rateLimit } from "../../src/adapters/node/index.js";
import { keys, MemoryStore, RateLimiter } from "../../src/index.js";
import { closeAgents, get } from "../helpers/http-client.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

describe("guarantee: a flood of unique clients stays under maxKeys and never frees a throttled client", () => {
  it("1,000,000 unique clients through a store capped at 100,000 keys", async () => {
    let t = 1_700_000_000_000;
    const store = new MemoryStore({ clock: () => t, maxKeys: 100_000 });
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 1, interval: 60_000 },
      store,
    });
    await limiter.consume("abuser", { cost: 10 });
    expect((await limiter.consume("abuser")).allowed).toBe(false);
    const before = heap();
    let maxTracked = 0;
    for (let i = 0; i < 1_000_000; i++) {
      if (i % 1000 === 0) t += 1;
      await limiter.consume(`203.0.113.${i}`);
      if (i % 50_000 === 0) maxTracked = Math.max(maxTracked, store.stats().trackedKeys);
    }
    const stats = store.stats();
    expect(Math.max(maxTracked, stats.trackedKeys)).toBeLessThanOrEqual(100_000);
    expect(stats.evictions.throttled).toBe(0);
    expect(stats.evictions.active).toBeGreaterThan(0);
    const d = await limiter.consume("abuser");
    expect(d.allowed).toBe(false);
    // 100k buckets of about 90 B plus the store's scratch: far under 32 MB of growth.
    const grown = heap() - before;
    console.log(
      `flood: 1e6 clients, maxKeys 1e5: peak tracked ${maxTracked}, heap +${(grown / 2 ** 20).toFixed(1)} MiB, evictions ${JSON.stringify(stats.evictions)}`,
    );
    expect(grown).toBeLessThan(32 * 2 ** 20);
  });
});

/**
 * Issue 14 item 1: memory bounded in bytes. Each per-key figure comes from a
 * process of its own (test/helpers/key-heap.ts), so no other run's garbage
 * moves it. Long keys are fresh flat 15 KB strings (what an HTTP parser hands
 * over for a 15 KB header), never slices of a shared one.
 */
const filler = Buffer.alloc(15_000, "k");
function longKey(i: number): string {
  filler.write(i.toString(36).padStart(10, "0"), 0, "latin1");
  return filler.toString("latin1");
}

const N = 100_000;
const LIMIT_PER_KEY = 200;
const helper = fileURLToPath(new URL("../helpers/key-heap.ts", import.meta.url));

/** perKey measures, in a fresh process, the heap `structure` keeps per key of `kind`. */
function perKey(structure: string, kind: "short" | "long"): number {
  const out = execFileSync(process.execPath, ["--import", "tsx", helper, structure, kind, `${N}`], {
    encoding: "utf8",
    timeout: 60_000,
  });
  const { bytesPerKey, tracked } = JSON.parse(out) as { bytesPerKey: number; tracked: number };
  expect(tracked, `${structure}, ${kind} keys`).toBe(N);
  return bytesPerKey;
}

describe("guarantee: a key longer than 64 bytes costs at most 200 B more heap than a short one", () => {
  it(`${N.toLocaleString("en")} unique 15 KB keys through the memory store, a network store's denial cache and its fallback`, () => {
    const rows: string[] = [];
    for (const structure of ["memory", "denials", "fallback"]) {
      const short = perKey(structure, "short");
      const long = perKey(structure, "long");
      rows.push(
        `${structure}: short ${short.toFixed(0)} B/key, 15 KB ${long.toFixed(0)} B/key (+${(long - short).toFixed(0)} B)`,
      );
      expect(long - short, structure).toBeLessThanOrEqual(LIMIT_PER_KEY);
    }
    console.log(
      `guarantee: long keys: ${N} unique keys each: ${rows.join("; ")}; bound +${LIMIT_PER_KEY} B`,
    );
  });

  it("6,000 requests with unique 15 KB x-api-key values over HTTP add < 5 MiB", async () => {
    const limit = rateLimit({
      policy: { capacity: 10, refillRate: 1, interval: 60_000 },
      key: keys.header("x-api-key"),
    });
    const server = createServer((req, res) => {
      limit(req, res).then((go) => {
        if (go) res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      await get(port, "/", { "x-api-key": "warm-up" });
      const before = heap();
      const started = performance.now();
      for (let i = 0; i < 6000; i++) {
        const reply = await get(port, "/", { "x-api-key": longKey(i) });
        expect(reply.status).toBe(200);
      }
      const ms = performance.now() - started;
      const grown = heap() - before;
      console.log(
        `guarantee: long keys over HTTP: 6000 requests with unique 15 KB x-api-key values in ${(ms / 1000).toFixed(1)} s: heap +${(grown / 2 ** 20).toFixed(2)} MiB (bound 5 MiB)`,
      );
      expect(grown).toBeLessThan(5 * 2 ** 20);
    } finally {
      closeAgents();
      await new Promise((r) => server.close(r));
    }
  });
});
