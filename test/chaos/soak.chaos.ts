/**
 * Issue 8 item 9, soak: the demo started as a user starts it (a child
 * process, `src/demo/main.ts`), 60 s of mixed traffic from 300 clients, each
 * on its own loopback address so each has its own bucket, sending faster than
 * the refill so limits are hit all the time. Measured: 0 errors (every answer
 * 200, 404 or 429, never a reset or a timeout), p99 latency of the last 10 s
 * against the first 10 s, the demo's heap after a full GC and its open
 * handles back at their baseline once the clients have gone, and the 429s
 * the clients saw equal to the demo's own Prometheus count.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const probe = fileURLToPath(new URL("../helpers/soak-probe.ts", import.meta.url));

const CLIENTS = 300;
const SOAK_MS = 60_000;
const WINDOW_MS = 10_000;
const CAPACITY = 5;
const REFILL_PER_S = 1;

interface Stats {
  heap: number;
  handles: Record<string, number>;
}

interface Sample {
  at: number;
  ms: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function p99(samples: Sample[]): number {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
}

/** Demo is the demo as a child process with the probe preloaded. */
class Demo {
  readonly child: ChildProcess;
  port = 0;
  out = "";

  constructor() {
    this.child = spawn(
      process.execPath,
      ["--import", "tsx", "--import", probe, "src/demo/main.ts"],
      {
        cwd: root,
        env: {
          ...process.env,
          HOST: "127.0.0.1",
          PORT: "0",
          RATE_LIMIT_CAPACITY: String(CAPACITY),
          RATE_LIMIT_REFILL_RATE: String(REFILL_PER_S),
          RATE_LIMIT_INTERVAL_MS: "1000",
          REDIS_URL: "",
        },
        stdio: ["ignore", "pipe", "pipe", "ipc"],
      },
    );
    this.child.stdout?.on("data", (d) => {
      this.out += d;
    });
    this.child.stderr?.on("data", (d) => {
      this.out += d;
    });
  }

  async listening(): Promise<void> {
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(this.out);
      if (m) {
        this.port = Number(m[1]);
        return;
      }
      if (this.child.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`demo did not start: ${this.out}`);
  }

  stats(): Promise<Stats> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("demo: no stats")), 10_000);
      this.child.once("message", (m) => {
        clearTimeout(timer);
        resolve(m as Stats);
      });
      this.child.send("stats");
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await exited;
  }
}

type Route = { method: "GET" | "HEAD"; path: string; limited: boolean };
const ROUTES: readonly [number, Route][] = [
  [40, { method: "GET", path: "/", limited: true }],
  [30, { method: "GET", path: "/data", limited: true }],
  [10, { method: "HEAD", path: "/", limited: true }],
  [10, { method: "GET", path: "/health", limited: false }],
  [5, { method: "GET", path: "/nope", limited: true }],
  [5, { method: "GET", path: "/metrics", limited: false }],
];

function pick(): Route {
  let r = Math.random() * 100;
  for (const [weight, route] of ROUTES) {
    r -= weight;
    if (r < 0) return route;
  }
  return (ROUTES[0] as [number, Route])[1];
}

interface Load {
  samples: Sample[];
  statuses: Map<string, number>;
  errors: string[];
  too: number;
  admitted: Map<number, number>;
  stop(): Promise<void>;
}

/** load runs CLIENTS clients, each on 127.0.x.y with its own keep-alive connection, until stopped. */
function load(port: number, startedAt: number, duration: number): Load {
  const agents = Array.from(
    { length: CLIENTS },
    (_, i) =>
      new Agent({
        keepAlive: true,
        maxSockets: 1,
        localAddress: `127.0.${1 + Math.floor(i / 200)}.${1 + (i % 200)}`,
      } as ConstructorParameters<typeof Agent>[0]),
  );
  const result: Load = {
    samples: [],
    statuses: new Map(),
    errors: [],
    too: 0,
    admitted: new Map(),
    stop: async () => {},
  };
  let running = true;
  const one = (i: number, route: Route) =>
    new Promise<number>((resolve) => {
      const req = request(
        { host: "127.0.0.1", port, path: route.path, method: route.method, agent: agents[i] },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", (e) => {
            result.errors.push(String(e));
            resolve(0);
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
      req.on("error", (e) => {
        result.errors.push(String(e));
        resolve(0);
      });
      req.end();
    });
  const loops = agents.map(async (_, i) => {
    // Spread the clients' starts over the first second.
    await sleep(Math.random() * 1000);
    while (running && performance.now() - startedAt < duration) {
      const route = pick();
      const t = performance.now();
      const status = await one(i, route);
      const ms = performance.now() - t;
      result.samples.push({ at: t - startedAt, ms });
      const label = `${route.path} ${status}`;
      result.statuses.set(label, (result.statuses.get(label) ?? 0) + 1);
      const okStatus = route.path === "/nope" ? [404, 429] : route.limited ? [200, 429] : [200];
      if (!okStatus.includes(status))
        result.errors.push(`${route.method} ${route.path} -> ${status}`);
      if (status === 429) result.too++;
      if (route.limited && status === 200) {
        result.admitted.set(i, (result.admitted.get(i) ?? 0) + 1);
      }
      // About 2.5 requests a second per client: over the refill of 1 a second, so always limited.
      await sleep(200 + Math.random() * 400);
    }
  });
  result.stop = async () => {
    running = false;
    await Promise.all(loops);
    for (const agent of agents) agent.destroy();
  };
  return result;
}

function decisions(text: string, outcome: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^floodgate_decisions_total\{policy="[^"]+",outcome="([a-z_]+)"\} (\d+)$/.exec(line);
    if (m && m[1] === outcome) sum += Number(m[2]);
  }
  return sum;
}

function metricsText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/metrics", agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve(body));
    })
      .on("error", reject)
      .end();
  });
}

describe("guarantee: 60 s soak through the demo", () => {
  const demo = new Demo();
  afterAll(async () => {
    await demo.stop();
  });

  it("300 clients, limits hit constantly: 0 errors, p99 steady, heap and handles back to baseline", {
    timeout: 240_000,
  }, async () => {
    await demo.listening();
    // Warm up (JIT, lazy set-up of every route), let every connection close, then take the baseline.
    const warm = load(demo.port, performance.now(), 3000);
    await sleep(3000);
    await warm.stop();
    expect(warm.errors).toEqual([]);
    await sleep(2000);
    const before = await demo.stats();
    const metricsBefore = await metricsText(demo.port);
    const limitedBefore = decisions(metricsBefore, "limited");

    const started = performance.now();
    const run = load(demo.port, started, SOAK_MS);
    await sleep(SOAK_MS);
    await run.stop();
    const elapsed = (performance.now() - started) / 1000;

    await sleep(2000);
    const after = await demo.stats();
    const limitedAfter = decisions(await metricsText(demo.port), "limited");
    const first = run.samples.filter((s) => s.at < WINDOW_MS);
    const last = run.samples.filter((s) => s.at >= SOAK_MS - WINDOW_MS);
    const firstP99 = p99(first);
    const lastP99 = p99(last);
    const heapGrowth = (after.heap - before.heap) / 2 ** 20;
    let over = 0;
    for (const n of run.admitted.values()) {
      if (n > CAPACITY + REFILL_PER_S * Math.ceil(elapsed) + 1) over++;
    }
    const total = run.samples.length;
    console.log(
      `guarantee: soak: ${total} requests in ${elapsed.toFixed(0)} s from ${CLIENTS} clients (${(total / elapsed).toFixed(0)}/s, ${run.too} x 429 = ${((run.too / total) * 100).toFixed(0)}%), ${run.errors.length} errors; p99 first 10 s ${firstP99.toFixed(1)} ms, last 10 s ${lastP99.toFixed(1)} ms; demo heap after GC ${(before.heap / 2 ** 20).toFixed(1)} -> ${(after.heap / 2 ** 20).toFixed(1)} MiB (${heapGrowth >= 0 ? "+" : ""}${heapGrowth.toFixed(2)}); handles ${JSON.stringify(before.handles)} -> ${JSON.stringify(after.handles)}; /metrics limited +${limitedAfter - limitedBefore} vs 429s seen ${run.too}; clients over their limit ${over}`,
    );
    console.log(`soak statuses: ${JSON.stringify(Object.fromEntries(run.statuses))}`);
    expect(run.errors.slice(0, 5)).toEqual([]);
    expect(run.too / total).toBeGreaterThan(0.3);
    expect(total / elapsed).toBeGreaterThan(300);
    expect(lastP99).toBeLessThanOrEqual(2 * firstP99 + 20);
    expect(heapGrowth).toBeLessThan(4);
    expect(after.handles).toEqual(before.handles);
    expect(limitedAfter - limitedBefore).toBe(run.too);
    expect(over).toBe(0);
  });
});
