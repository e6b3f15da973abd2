/**
 * The HTTP header floor measured inside one server process (issue 18, point
 * 3). The suite runs one process per (framework, limiter) and compares them
 * across processes, but two processes of one server differ by a few per cent
 * for their whole life, more than the 3% the floor target turns on. Here each
 * framework gets ONE server process that serves every mode side by side, one
 * route each, so the modes share one JIT, one heap and one set of sockets:
 *
 * - `none`: the hello-world handler only;
 * - `fixed`: a middleware setting floodgate's five default headers to constant strings;
 * - `real`: the same five headers formatted per request as floodgate formats
 *   them (remaining counting down, reset from the clock, the IETF values);
 * - `floodgate`: floodgate's adapter with its defaults (both header sets);
 * - `legacy`: floodgate with `headers: "legacy"`: the three X-RateLimit-* headers, what
 *   @fastify/rate-limit and express-rate-limit send (hono-rate-limiter sends
 *   four draft-6 RateLimit-* headers);
 * - `peer`: the framework's peer limiter with its defaults.
 *
 * autocannon (50 connections, loopback) keeps the server busy for the whole
 * run with requests to `/`, which the server points at the current mode's
 * route; an IPC message switches the mode, so no connection opens or closes
 * between modes. Each round gives every mode a slot, in an order rotated
 * each round and reversed every other round; the server reports its CPU
 * (process.cpuUsage), requests served and clock at two marks inside each
 * slot, so a slot gives the steady server CPU per request and req/s. Tables
 * show medians over rounds; ratios are medians of per-round ratios.
 *
 *   npx tsx bench/http/floor.ts                       # fastify, express, hono: about 2.5 minutes
 *   npx tsx bench/http/floor.ts fastify --rounds 16 --secs 2
 *
 * floodgate comes from dist/ (`npm run build` first). The table is printed
 * and written to bench/results/http-floor.md.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { rotate } from "../lib/child.js";
import { machine } from "../lib/machine.js";
import { median, pairedRatio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import { BODY, FIXED_HEADERS, floodgateModule, HOUR } from "./common.js";
import type { Framework } from "./server.js";

const FRAMEWORKS: readonly Framework[] = ["fastify", "express", "hono"];
export const MODES = ["none", "fixed", "real", "floodgate", "legacy", "peer"] as const;
export type Mode = (typeof MODES)[number];
const PEER: Record<Framework, string> = {
  fastify: "@fastify/rate-limit",
  express: "express-rate-limit",
  hono: "hono-rate-limiter",
};
/** The allowed path: a limit no run reaches. */
const CAPACITY = 1e9;
const POLICY = { capacity: CAPACITY, refillRate: 1, interval: HOUR };
const CONNECTIONS = 50;
/** Seconds between switching the mode and the first mark (the requests in flight drain). */
const SETTLE_S = 0.15;
/** Seconds of each mode's warm-up slot before the rounds. */
const WARMUP_S = 1;

/** Mark is the server's answer to "mark": CPU microseconds, requests served, and its clock in ms. */
interface Mark {
  cpuUs: number;
  requests: number;
  at: number;
}

/** One measured slot: steady server CPU per request and requests per second, between its two marks. */
interface Sample {
  cpuUs: number;
  rps: number;
}

// ---- the server (a child process: `floor.ts --serve <framework>`) ------------

const NAMES = FIXED_HEADERS.map(([name]) => name);
const FIXED_VALUES = FIXED_HEADERS.map(([, value]) => value);

/**
 * realHeaders returns a function giving the five header values of the next
 * allowed request of one bucket (capacity 1e9, one token an hour), formatted
 * as floodgate formats them: the limit and the RateLimit-Policy depend on
 * the policy alone, so they are constant; the remaining count goes down by
 * one per request, the reset is the next refill in Unix seconds, and the
 * IETF RateLimit value carries both remaining and seconds to that refill.
 */
function realHeaders(): () => string[] {
  const limit = FIXED_VALUES[0] as string;
  const policy = FIXED_VALUES[3] as string;
  let remaining = CAPACITY;
  let refillAt = Date.now() + HOUR;
  return () => {
    const now = Date.now();
    if (now >= refillAt) refillAt += HOUR;
    const left = String(--remaining);
    return [
      limit,
      left,
      String(Math.ceil(refillAt / 1000)),
      policy,
      `"default";r=${left};t=${Math.ceil((refillAt - now) / 1000)}`,
    ];
  };
}

async function fastifyServer(): Promise<Server> {
  const { default: Fastify } = await import("fastify");
  const { default: peer } = await import("@fastify/rate-limit");
  const { default: floodgate } =
    await floodgateModule<typeof import("../../src/adapters/fastify/index.js")>("fastify");
  const app = Fastify({ logger: false });
  const real = realHeaders();
  // Each mode in an encapsulated context of its own: its hooks apply to its route only.
  for (const mode of MODES) {
    await app.register(
      async (child) => {
        if (mode === "fixed") {
          child.addHook("onRequest", (_request, reply, done) => {
            for (let i = 0; i < NAMES.length; i++)
              reply.header(NAMES[i] as string, FIXED_VALUES[i]);
            done();
          });
        } else if (mode === "real") {
          child.addHook("onRequest", (_request, reply, done) => {
            const values = real();
            for (let i = 0; i < NAMES.length; i++) reply.header(NAMES[i] as string, values[i]);
            done();
          });
        } else if (mode === "floodgate") {
          await child.register(floodgate, { policy: POLICY });
        } else if (mode === "legacy") {
          await child.register(floodgate, { policy: POLICY, headers: "legacy" });
        } else if (mode === "peer") {
          await child.register(peer, { max: CAPACITY, timeWindow: HOUR });
        }
        child.get("/", async () => BODY);
      },
      { prefix: `/${mode}` },
    );
  }
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app.server;
}

async function expressServer(): Promise<Server> {
  const { default: express } = await import("express");
  const { rateLimit: peer } = await import("express-rate-limit");
  const { rateLimit } =
    await floodgateModule<typeof import("../../src/adapters/express/index.js")>("express");
  const real = realHeaders();
  const middleware: Record<Mode, import("express").RequestHandler | undefined> = {
    none: undefined,
    fixed: (_req, res, next) => {
      for (let i = 0; i < NAMES.length; i++)
        res.setHeader(NAMES[i] as string, FIXED_VALUES[i] as string);
      next();
    },
    real: (_req, res, next) => {
      const values = real();
      for (let i = 0; i < NAMES.length; i++) res.setHeader(NAMES[i] as string, values[i] as string);
      next();
    },
    floodgate: rateLimit({ policy: POLICY }),
    legacy: rateLimit({ policy: POLICY, headers: "legacy" }),
    peer: peer({ windowMs: HOUR, limit: CAPACITY }),
  };
  // One app per mode, each with its middleware app-wide as the suite's servers
  // have it; a Map picks the app, so no mode waits behind another's routes.
  const apps = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  for (const mode of MODES) {
    const app = express();
    const use = middleware[mode];
    if (use !== undefined) app.use(use);
    app.get(`/${mode}`, (_req, res) => {
      res.json(BODY);
    });
    apps.set(`/${mode}`, app);
  }
  const server = createServer((req, res) => {
    const app = apps.get(req.url ?? "");
    if (app !== undefined) app(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

async function honoServer(): Promise<Server> {
  const { Hono } = await import("hono");
  const { serve } = await import("@hono/node-server");
  const { rateLimiter } = await import("hono-rate-limiter");
  const { rateLimit } =
    await floodgateModule<typeof import("../../src/adapters/hono/index.js")>("hono");
  type Outgoing = { outgoing: { setHeader(name: string, value: string): void } };
  const real = realHeaders();
  const middleware: Record<Mode, import("hono").MiddlewareHandler | undefined> = {
    none: undefined,
    // Where floodgate/hono puts its headers on @hono/node-server: the Node response.
    fixed: (c, next) => {
      const outgoing = (c.env as Outgoing).outgoing;
      for (let i = 0; i < NAMES.length; i++)
        outgoing.setHeader(NAMES[i] as string, FIXED_VALUES[i] as string);
      return next();
    },
    real: (c, next) => {
      const outgoing = (c.env as Outgoing).outgoing;
      const values = real();
      for (let i = 0; i < NAMES.length; i++)
        outgoing.setHeader(NAMES[i] as string, values[i] as string);
      return next();
    },
    floodgate: rateLimit({ policy: POLICY }),
    legacy: rateLimit({ policy: POLICY, headers: "legacy" }),
    peer: rateLimiter({
      windowMs: HOUR,
      limit: CAPACITY,
      // hono-rate-limiter has no default key: the socket's address, as floodgate's default.
      keyGenerator: (c) =>
        (c.env as { incoming: { socket: { remoteAddress?: string } } }).incoming.socket
          .remoteAddress ?? "",
    }),
  };
  // One app, a route per mode: Hono's router matches a static path in one
  // lookup, whatever the number of routes.
  const app = new Hono();
  for (const mode of MODES) {
    const use = middleware[mode];
    if (use === undefined) app.get(`/${mode}`, (c) => c.json(BODY));
    else app.get(`/${mode}`, use, (c) => c.json(BODY));
  }
  return await new Promise<Server>((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(server as Server),
    );
  });
}

async function serveFramework(framework: Framework): Promise<void> {
  const server =
    framework === "fastify"
      ? await fastifyServer()
      : framework === "express"
        ? await expressServer()
        : await honoServer();
  // Every request is sent to `/`; this listener, ahead of the framework's,
  // counts it and points it at the current mode's route, the same work
  // whichever mode is on.
  let requests = 0;
  let path = "/none";
  server.prependListener("request", (req: IncomingMessage) => {
    requests++;
    req.url = path;
  });
  process.on("message", (message: "mark" | { mode: Mode }) => {
    if (message === "mark") {
      const cpu = process.cpuUsage();
      process.send?.({
        cpuUs: cpu.user + cpu.system,
        requests,
        at: performance.now(),
      } satisfies Mark);
    } else {
      path = `/${message.mode}`;
      process.send?.({ mode: message.mode });
    }
  });
  process.on("disconnect", () => process.exit(0));
  const address = server.address();
  process.send?.({ port: typeof address === "object" && address !== null ? address.port : 0 });
}

// ---- the driver ---------------------------------------------------------------

interface Running {
  port: number;
  /** mark reads the server's CPU, requests served and clock. */
  mark(): Promise<Mark>;
  /** serve points every later request at `mode`'s route. */
  serve(mode: Mode): Promise<unknown>;
  stop(): void;
}

/** start runs this file as the framework's server in a child process and waits for its port. */
function start(framework: Framework): Promise<Running> {
  const file = fileURLToPath(import.meta.url);
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", file, "--serve", framework],
    { stdio: ["ignore", "ignore", "pipe", "ipc"] },
  );
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", stop);
  const exited = new Promise<never>((_, reject) => {
    child.once("exit", (code, signal) =>
      reject(new Error(`bench: ${framework} server exited (${code ?? signal}): ${err.trim()}`)),
    );
  });
  exited.catch(() => undefined);
  const ask = <T>(message: unknown) =>
    Promise.race([
      new Promise<T>((resolve) => {
        child.once("message", (answer: T) => resolve(answer));
        child.send(message as string);
      }),
      exited,
    ]);
  const port = new Promise<number>((resolve) => {
    child.once("message", (message: { port: number }) => resolve(message.port));
  });
  const timeout = new Promise<never>((_, reject) => {
    setTimeout(() => reject(new Error(`bench: ${framework} server did not start`)), 30_000).unref();
  });
  return Promise.race([port, exited, timeout]).then(
    (p) => ({ port: p, mark: () => ask<Mark>("mark"), serve: (mode) => ask({ mode }), stop }),
    (error: unknown) => {
      stop();
      throw error;
    },
  );
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** slot switches the server to `mode`, lets SETTLE_S pass, and measures the next `seconds`. */
async function slot(server: Running, mode: Mode, seconds: number): Promise<Sample> {
  await server.serve(mode);
  await sleep(SETTLE_S);
  const a = await server.mark();
  await sleep(seconds);
  const b = await server.mark();
  const served = b.requests - a.requests;
  return { cpuUs: (b.cpuUs - a.cpuUs) / served, rps: (served * 1000) / (b.at - a.at) };
}

/** Per mode, one sample per round. */
export type Series = Record<Mode, { cpuUs: number[]; rps: number[] }>;

/**
 * measure starts the framework's server and one autocannon run against it
 * that lasts the whole measurement (no connection is opened or closed
 * between modes), gives each mode a warm-up slot, then runs the rounds. Any
 * response other than a 2xx, or any error, fails the framework's run: on the
 * allowed path there must be none.
 */
export async function measure(
  framework: Framework,
  rounds: number,
  seconds: number,
): Promise<Series> {
  const series = Object.fromEntries(
    MODES.map((m) => [m, { cpuUs: [] as number[], rps: [] as number[] }]),
  ) as Series;
  const server = await start(framework);
  const planned = MODES.length * (WARMUP_S + rounds * (SETTLE_S + seconds));
  const load = autocannon({
    url: `http://127.0.0.1:${server.port}/`,
    connections: CONNECTIONS,
    // A bound: the run is stopped when the rounds are done.
    duration: Math.ceil(planned * 2 + 30),
  }) as ReturnType<typeof autocannon> & { stop(): void };
  try {
    await sleep(SETTLE_S);
    for (const mode of MODES) await slot(server, mode, WARMUP_S);
    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`bench: ${framework} round ${round + 1}/${rounds}\n`);
      const rotated = rotate(MODES, round);
      for (const mode of round % 2 === 1 ? rotated.reverse() : rotated) {
        const s = await slot(server, mode, seconds);
        series[mode].cpuUs.push(s.cpuUs);
        series[mode].rps.push(s.rps);
      }
    }
  } finally {
    load.stop();
    await load.catch(() => undefined);
    server.stop();
  }
  const result = await load;
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `bench: ${framework}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts on the allowed path`,
    );
  }
  return series;
}

// ---- the report ---------------------------------------------------------------

/** The ratios the floor target and the peer comparison turn on: [label, a, b] for a ÷ b. */
export const RATIOS: readonly (readonly [string, Mode, Mode])[] = [
  ["fixed ÷ none", "fixed", "none"],
  ["real ÷ fixed", "real", "fixed"],
  ["floodgate ÷ fixed", "floodgate", "fixed"],
  ["floodgate ÷ real", "floodgate", "real"],
  ["legacy ÷ peer", "legacy", "peer"],
  ["floodgate ÷ peer", "floodgate", "peer"],
];

/** ratio3 formats a ratio with three decimals: the floor target turns on the third. */
function ratio3(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(3)}x` : "–";
}

/** cpuRatios are a ÷ b in throughput terms, b's CPU per request over a's, one per round. */
export function cpuRatios(s: Series, a: Mode, b: Mode): number[] {
  return s[a].cpuUs.map((x, i) => (s[b].cpuUs[i] as number) / x).filter(Number.isFinite);
}

function version(pkg: string): string {
  const file = new URL(`../../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

function report(
  results: readonly (readonly [Framework, Series])[],
  rounds: number,
  seconds: number,
  command: string,
  started: Date,
): string {
  const m = machine();
  const label = (f: Framework) => `${f} ${version(f)}`;
  const absolute = results.map(([f, s]) => [
    label(f),
    ...MODES.map(
      (mode) =>
        `${median(s[mode].cpuUs).toFixed(2)} µs · ${(median(s[mode].rps) / 1000).toFixed(1)}k`,
    ),
  ]);
  const ratios = results.map(([f, s]) => [
    label(f),
    ...RATIOS.map(
      ([, a, b]) =>
        `${ratio3(median(cpuRatios(s, a, b)))} (${ratio3(pairedRatio(s[a].rps, s[b].rps))})`,
    ),
  ]);
  const spread = results.map(([f, s]) => [
    label(f),
    ...RATIOS.map(([, a, b]) => {
      const r = cpuRatios(s, a, b);
      return r.length === 0 ? "–" : `${Math.min(...r).toFixed(3)}–${Math.max(...r).toFixed(3)}`;
    }),
  ]);
  const date = `${started.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return [
    "# HTTP floor: the header floor in one server process",
    "",
    `Command: \`${command}\` (${date}).`,
    `Machine: ${m.cpu}, ${m.nproc} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; load average at start ${m.loadavg.join(" ")}.`,
    "",
    "One server process per framework serves six modes side by side, a route each (one JIT, one heap):",
    "`none` the hello-world handler only; `fixed` a middleware setting floodgate's five default headers",
    "to constant strings; `real` the same five headers formatted per request as floodgate formats them",
    "(remaining counting down, reset from the clock, the IETF values); `floodgate` floodgate's adapter",
    '(defaults: both header sets); `legacy` floodgate with `headers: "legacy"` (the three X-RateLimit-*',
    "headers @fastify/rate-limit and express-rate-limit send; hono-rate-limiter sends four draft-6",
    "RateLimit-* headers); `peer` the framework's peer limiter with its defaults. Allowed path: one policy of",
    `capacity 1e9 per hour. autocannon ${version("autocannon")} in the driver process keeps ${CONNECTIONS} connections busy over`,
    "loopback for the whole run, every request to `/`; the server points each at the current mode's",
    "route (switched by an IPC message), so no connection opens or closes between modes. Each mode gets",
    `a ${WARMUP_S} s warm-up slot, then ${rounds} rounds in which each gets a slot (order rotated each round and`,
    `reversed every other round): ${SETTLE_S} s after the switch, the server reads process.cpuUsage (user +`,
    `system), its request count and its clock, and again ${seconds} s later: server CPU per request and req/s`,
    "of the steady load.",
    "",
    "Server CPU per request and req/s (k = thousand), medians over rounds:",
    "",
    table(["framework", ...MODES], absolute),
    "",
    "Ratios, throughput-equivalent: a ÷ b is b's server CPU per request over a's (above 1: a is",
    "cheaper), the median of the per-round ratios; req/s ratios in brackets.",
    "",
    table(["framework", ...RATIOS.map(([name]) => name)], ratios),
    "",
    "The same server-CPU ratios, lowest and highest round (how far one round can be trusted):",
    "",
    table(["framework", ...RATIOS.map(([name]) => name)], spread),
    "",
    `Peers: ${results.map(([f]) => `${PEER[f]} ${version(PEER[f])}`).join(", ")}.`,
    "",
  ].join("\n");
}

function parse(argv: readonly string[]): { frameworks: Framework[]; rounds: number; secs: number } {
  const frameworks: Framework[] = [];
  let rounds = 8;
  let secs = 0.75;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--rounds" || arg === "--secs") {
      const value = Number(argv[++i]);
      if (!(value > 0) || (arg === "--rounds" && !Number.isInteger(value))) {
        throw new Error(
          `bench: ${arg} needs a positive ${arg === "--rounds" ? "integer" : "number"}`,
        );
      }
      if (arg === "--rounds") rounds = value;
      else secs = value;
    } else if ((FRAMEWORKS as readonly string[]).includes(arg)) {
      frameworks.push(arg as Framework);
    } else {
      throw new Error(
        `bench: unknown argument ${JSON.stringify(arg)}; usage: floor.ts [fastify|express|hono ...] [--rounds N] [--secs S]`,
      );
    }
  }
  return { frameworks: frameworks.length > 0 ? frameworks : [...FRAMEWORKS], rounds, secs };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { frameworks, rounds, secs } = parse(argv);
  const started = new Date();
  const results: [Framework, Series][] = [];
  for (const f of frameworks) results.push([f, await measure(f, rounds, secs)]);
  const markdown = report(
    results,
    rounds,
    secs,
    ["npx tsx bench/http/floor.ts", ...argv].join(" "),
    started,
  );
  console.log(markdown);
  writeFileSync(new URL("../results/http-floor.md", import.meta.url), markdown);
}

// Run as a script (the floor alone, or a server child); imported by the suite, nothing runs.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === "--serve") await serveFramework(process.argv[3] as Framework);
  else await main();
}
