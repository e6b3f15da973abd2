/**
 * close() of a limiter over `RedisStore({ url })` lets its process exit by
 * itself within 1 s (issue 13 point 5): after redis-server was killed under
 * load, during `CLIENT PAUSE 3000`, while the client is still connecting to
 * a server that never answers, and to one that refuses. Each case runs
 * test/chaos/close-child.ts in its own process and times SIGUSR2 (which
 * makes the child stop its load and close) to the child's exit.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  describeRedis,
  freePort,
  HOST,
  type RedisServer,
  startRedis,
} from "../helpers/redis-server.js";

const CHILD = join(import.meta.dirname, "close-child.ts");
/** The bound the issue sets, from close() to the process gone. */
const EXIT_WITHIN = 1000;
const last = (out: string) => out.trim().split("\n").pop();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  /** Resolves when the child has built its limiter and started its load. */
  started: Promise<void>;
  /** Sends SIGUSR2 and resolves with the ms from then to the child's exit, and what it printed. */
  close(): Promise<{ exitMs: number; code: number | null; out: string; err: string }>;
}

function run(url: string, wait: "ready" | "no-ready"): Run {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, url, wait], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  // A child that never exits fails the case instead of outliving the suite.
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => {
    child.once("exit", (code) => {
      clearTimeout(guard);
      resolve({ code, at: performance.now() });
    });
  });
  const started = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("started\n")) resolve();
    });
    void exited.then(() => reject(new Error(`child exited before starting: ${out} ${err}`)));
  });
  return {
    started,
    close: async () => {
      const sent = performance.now();
      child.kill("SIGUSR2");
      const { code, at } = await exited;
      return { exitMs: at - sent, code, out, err };
    },
  };
}

describeRedis("guarantee: close() lets the process exit within 1 s", () => {
  let server: RedisServer;
  /** Slowest exit after SIGUSR2, per case, for the guarantee line. */
  const slowest = new Map<string, number>();
  const note = (name: string, ms: number) =>
    slowest.set(name, Math.max(slowest.get(name) ?? 0, Math.round(ms)));

  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
    console.log(
      `guarantee: close() of a limiter over RedisStore({ url }): the process exits by itself within ${[...slowest].map(([k, v]) => `${v} ms (${k})`).join(", ")} of close (bound ${EXIT_WITHIN} ms)`,
    );
  });

  it("after redis-server was killed (SIGKILL) under load", async () => {
    try {
      for (let round = 0; round < 3; round++) {
        if (round > 0) await server.start();
        const child = run(server.url, "ready");
        await child.started;
        await sleep(500);
        await server.kill();
        await sleep(500);
        const r = await child.close();
        note("redis-server killed under load", r.exitMs);
        console.log(
          `killed, round ${round}: exit ${r.exitMs.toFixed(0)} ms after SIGUSR2; ${last(r.out)}`,
        );
        expect(r.err).toBe("");
        expect(r.code).toBe(0);
        expect(r.out).toMatch(/closed \d+ \d+ .*"store":\d+/);
        expect(r.exitMs).toBeLessThan(EXIT_WITHIN);
      }
    } finally {
      await server.start();
    }
  });

  it("during CLIENT PAUSE 3000 (close does not wait the pause out)", async () => {
    const child = run(server.url, "ready");
    await child.started;
    await sleep(300);
    await server.cli("client", "pause", "3000");
    await sleep(100);
    const r = await child.close();
    note("CLIENT PAUSE 3000", r.exitMs);
    console.log(`paused: exit ${r.exitMs.toFixed(0)} ms after SIGUSR2; ${last(r.out)}`);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.exitMs).toBeLessThan(EXIT_WITHIN);
    await sleep(3000);
  });

  it("while still connecting to a server that accepts and never answers", async () => {
    const mute = createServer(() => {});
    await new Promise<void>((r) => mute.listen(0, HOST, r));
    const port = (mute.address() as { port: number }).port;
    try {
      const child = run(`redis://${HOST}:${port}`, "no-ready");
      await child.started;
      await sleep(300);
      const r = await child.close();
      note("connecting to a mute server", r.exitMs);
      console.log(`mute server: exit ${r.exitMs.toFixed(0)} ms after SIGUSR2; ${last(r.out)}`);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).not.toContain('"store"');
      expect(r.exitMs).toBeLessThan(EXIT_WITHIN);
    } finally {
      mute.close();
    }
  });

  it("closed right after construction, while the client library is still loading", async () => {
    const src = join(import.meta.dirname, "../../src/index.ts");
    const code = `import { RedisStore } from ${JSON.stringify(src)};
const store = new RedisStore({ url: ${JSON.stringify(server.url)} });
const waiting = store.ready().catch((e) => e.code);
await store.close();
process.stdout.write("closed " + (await waiting) + "\\n");`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
    let out = "";
    let err = "";
    let closedAt = 0;
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.stdout.on("data", (d) => {
      out += d;
      if (closedAt === 0 && out.includes("closed")) closedAt = performance.now();
    });
    const exitCode = await new Promise<number | null>((r) => child.once("exit", r));
    const exitMs = performance.now() - closedAt;
    clearTimeout(guard);
    note("closed during construction", exitMs);
    expect(err).toBe("");
    expect(exitCode).toBe(0);
    expect(out.trim()).toBe("closed ERR_FLOODGATE_CLOSED");
    expect(exitMs).toBeLessThan(EXIT_WITHIN);
  });

  it("while reconnecting to a port that refuses", async () => {
    const port = await freePort();
    const child = run(`redis://${HOST}:${port}`, "no-ready");
    await child.started;
    await sleep(300);
    const r = await child.close();
    note("reconnecting to a refusing port", r.exitMs);
    console.log(`refused: exit ${r.exitMs.toFixed(0)} ms after SIGUSR2; ${last(r.out)}`);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.exitMs).toBeLessThan(EXIT_WITHIN);
  });
});
