import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import {
  cpuRatios,
  MODES,
  type Mode,
  measure as measureOneProcess,
  RATIOS,
  type Series,
} from "../http/floor.js";
import type { Framework, LimiterKind, Mark, PathKind, ServerJob } from "../http/server.js";
import { rotate } from "../lib/child.js";
import { DIST_ENV } from "../lib/floodgate.js";
import { median, pairedRatio, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { Config, Figure, RunData, Scenario, Target } from "../lib/types.js";

const FRAMEWORKS: readonly Framework[] = ["fastify", "express", "hono"];
/** The peer limiter of each framework, and the framework's own package. */
const PEER: Record<Framework, string> = {
  fastify: "@fastify/rate-limit",
  express: "express-rate-limit",
  hono: "hono-rate-limiter",
};
/** What each peer sends with its defaults, beside floodgate's five (bench/http/common.ts FIXED_HEADERS). */
const PEER_HEADERS: Record<Framework, string> = {
  fastify: "@fastify/rate-limit three (X-RateLimit-*)",
  express: "express-rate-limit three (X-RateLimit-*)",
  hono: "hono-rate-limiter four (draft-6 RateLimit-*)",
};
const PACKAGE: Record<Framework, string> = {
  fastify: "fastify",
  express: "express",
  hono: "hono",
};
/** The (limiter, path) pairs measured per framework; no limiter has no rejected path. */
const SERVERS: readonly [LimiterKind, PathKind][] = [
  ["none", "allowed"],
  ["noop", "allowed"],
  ["headers", "allowed"],
  ["floodgate", "allowed"],
  ["peer", "allowed"],
  ["floodgate", "rejected"],
  ["peer", "rejected"],
];
/** Issue 18: floodgate's allowed path at least this share of the five-fixed-headers floor's req/s. */
const FLOOR_BOUND = 0.97;
/** Issue 18: the 429 path at least this share of the no-limiter allowed path's req/s. */
const REJECT_BOUND = 0.95;
/** autocannon connections (one request in flight on each). */
const CONNECTIONS = 50;
/** Seconds of each measured burst. */
const BURST_S = 1;
/** Seconds of each server's one burst in the unmeasured warm-up round of each generation. */
const WARMUP_S = 1;
/** Sets of fresh server processes the rounds are split over. */
const GENERATIONS = 3;
/** Rounds of bursts per round of the suite: `--rounds N` gives 3N rounds here. */
const ROUNDS_PER_ROUND = 3;
/** Rounds and seconds per slot of the one-process header floor (bench/http/floor.ts's defaults). */
const ONE_PROCESS_ROUNDS = 8;
const ONE_PROCESS_SLOT_S = 0.75;

/** One measured burst against one server. */
export interface HttpResult {
  /** Responses per second seen by autocannon. */
  rps: number;
  /** Server CPU microseconds (user + system, process.cpuUsage) per request it served. */
  cpuUs: number;
  /** Share of responses that were not 2xx (0 on the allowed path, ~1 on the rejected one). */
  non2xx: number;
  errors: number;
}

interface HttpRun {
  measured: boolean;
  reason?: string;
  connections: number;
  /** Seconds of each measured burst. */
  durationS: number;
  warmupS: number;
  /** Sets of fresh server processes the rounds were split over (absent in older results: 1). */
  generations?: number;
  /** Measured rounds per framework (each gives every server one burst). */
  rounds: number;
  /** Frameworks measured without floodgate because dist/<framework>.js was missing. */
  missing: string[];
  versions: Record<string, string>;
  /** `framework:limiter:path` -> one result per round (null when the burst failed). */
  runs: Record<string, (HttpResult | null)[]>;
  /**
   * The header floor inside one server process per framework
   * (bench/http/floor.ts): server CPU per request of each mode, per round.
   * Absent in older results, and for a framework whose floor failed.
   */
  oneProcess?: Partial<Record<Framework, Series>>;
  /** Rounds and seconds per slot of the one-process floor. */
  oneProcessRounds?: number;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function version(pkg: string): string {
  const file = new URL(`../../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

function distHas(name: string): boolean {
  const dir = process.env[DIST_ENV];
  const file = dir
    ? join(dir, `${name}.js`)
    : fileURLToPath(new URL(`../../dist/${name}.js`, import.meta.url));
  return existsSync(file);
}

interface Running {
  port: number;
  mark(): Promise<Mark>;
  stop(): void;
}

/** startServer runs bench/http/server.ts in a child process and waits for its port. */
function startServer(job: ServerJob): Promise<Running> {
  const file = fileURLToPath(new URL("../http/server.ts", import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", file, JSON.stringify(job)],
    { stdio: ["ignore", "ignore", "pipe", "ipc"] },
  );
  const name = JSON.stringify(job);
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const stop = () => {
    process.off("exit", kill);
    kill();
  };
  process.once("exit", kill);
  const exited = new Promise<never>((_, reject) => {
    child.once("exit", (code, signal) => {
      reject(new Error(`bench: server ${name} exited (${code ?? signal}): ${err.trim()}`));
    });
  });
  exited.catch(() => undefined);
  const started = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`bench: server ${name} did not start: ${err.trim()}`));
    }, 30_000);
    exited.catch((error: unknown) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("message", (message: { port: number }) => {
      clearTimeout(timer);
      resolve(message.port);
    });
  });
  return started.then((port) => ({
    port,
    mark: () =>
      Promise.race([
        new Promise<Mark>((done) => {
          child.once("message", (m: Mark) => done(m));
          child.send("mark");
        }),
        exited,
      ]),
    stop,
  }));
}

/** burst drives one server for `seconds` and reads its CPU and request count around it. */
async function burst(server: Running, seconds: number): Promise<HttpResult> {
  const url = `http://127.0.0.1:${server.port}/`;
  const before = await server.mark();
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds });
  const after = await server.mark();
  const served = after.requests - before.requests;
  const total = result["2xx"] + result.non2xx;
  if (total === 0 || served === 0) throw new Error(`bench: no responses from ${url}`);
  return {
    rps: total / result.duration,
    cpuUs: (after.cpuUs - before.cpuUs) / served,
    non2xx: result.non2xx / total,
    errors: result.errors + result.timeouts,
  };
}

/** order is round `round`'s order of the servers: rotated, and reversed every other round. */
function order<T>(list: readonly T[], round: number): T[] {
  const rotated = rotate(list, round);
  return round % 2 === 1 ? rotated.reverse() : rotated;
}

/**
 * startAll starts one process per server of `framework` side by side and
 * gives each a warm-up burst; a server that fails to start is left out
 * (and logged).
 */
async function startAll(
  framework: Framework,
  servers: readonly [LimiterKind, PathKind][],
): Promise<{ id: string; path: PathKind; server: Running }[]> {
  const started = await Promise.allSettled(
    servers.map(([limiter, path]) => startServer({ framework, limiter, path })),
  );
  const live: { id: string; path: PathKind; server: Running }[] = [];
  servers.forEach(([limiter, path], i) => {
    const s = started[i];
    if (s?.status === "fulfilled")
      live.push({ id: `${framework}:${limiter}:${path}`, path, server: s.value });
    else log(String(s?.reason));
  });
  log(`bench: http ${framework} warm-up`);
  for (const { id, server } of live) {
    try {
      await burst(server, WARMUP_S);
    } catch (error) {
      log(`bench: ${id} warm-up: ${String(error)}`);
    }
  }
  return live;
}

/**
 * measureFramework runs `rounds` rounds in which every server of one
 * framework gets one burst of `BURST_S` seconds, in a different order each
 * round. The rounds are split over GENERATIONS sets of fresh server
 * processes: two processes of the same server differ by a few percent for
 * their whole life (where the JIT put their code, how their heap grew), and
 * fresh ones spread that over every contender instead of fixing it on one.
 * A server that fails to start, or a burst that fails, leaves null.
 */
async function measureFramework(
  framework: Framework,
  servers: readonly [LimiterKind, PathKind][],
  rounds: number,
  runs: HttpRun["runs"],
): Promise<void> {
  const ids = servers.map(([limiter, path]) => `${framework}:${limiter}:${path}`);
  for (const id of ids) runs[id] = [];
  const generations = Math.min(GENERATIONS, rounds);
  let round = 0;
  for (let g = 0; g < generations; g++) {
    const live = await startAll(framework, servers);
    try {
      const until = Math.round((rounds * (g + 1)) / generations);
      for (; round < until; round++) {
        log(`bench: http ${framework} round ${round + 1}/${rounds}`);
        const results = new Map<string, HttpResult | null>();
        for (const { id, path, server } of order(live, round)) {
          let r: HttpResult | null = null;
          try {
            r = await burst(server, BURST_S);
            const expected = path === "allowed" ? 0 : 1;
            if (Math.abs(r.non2xx - expected) > 0.01 || r.errors > 0) {
              log(`bench: ${id}: ${r.non2xx} non-2xx, ${r.errors} errors: burst discarded`);
              r = null;
            }
          } catch (error) {
            log(`bench: ${id}: ${String(error)}`);
          }
          results.set(id, r);
        }
        for (const id of ids) runs[id]?.push(results.get(id) ?? null);
      }
    } finally {
      for (const { server } of live) server.stop();
    }
  }
}

async function measure(config: Config): Promise<HttpRun> {
  const rounds = Math.max(1, config.rounds * ROUNDS_PER_ROUND);
  const missing = FRAMEWORKS.filter((f) => !distHas(f));
  const runs: HttpRun["runs"] = {};
  const versions: Record<string, string> = {};
  for (const f of FRAMEWORKS) {
    versions[PACKAGE[f]] = version(PACKAGE[f]);
    versions[PEER[f]] = version(PEER[f]);
  }
  versions.autocannon = version("autocannon");
  // `--only fastify,hono` measures those frameworks alone.
  const named = FRAMEWORKS.filter((f) => config.only.includes(f));
  const chosen = named.length > 0 ? named : FRAMEWORKS;
  for (const framework of chosen) {
    const servers = SERVERS.filter(([l]) => l !== "floodgate" || !missing.includes(framework));
    await measureFramework(framework, servers, rounds, runs);
  }
  // What a truthful limiter's headers cost by themselves, one process per framework.
  const oneProcess: Partial<Record<Framework, Series>> = {};
  const floorRounds = config.quick ? 3 : ONE_PROCESS_ROUNDS;
  for (const framework of chosen.filter((f) => !missing.includes(f))) {
    log(`bench: http one-process floor ${framework}`);
    try {
      oneProcess[framework] = await measureOneProcess(framework, floorRounds, ONE_PROCESS_SLOT_S);
    } catch (error) {
      log(String(error));
    }
  }
  return {
    oneProcess,
    oneProcessRounds: floorRounds,
    measured: true,
    connections: CONNECTIONS,
    durationS: BURST_S,
    warmupS: WARMUP_S,
    generations: Math.min(GENERATIONS, rounds),
    rounds,
    missing,
    versions,
    runs,
  };
}

// ---- report ----------------------------------------------------------------

function series(r: HttpRun, id: string, field: keyof HttpResult): number[] {
  return (r.runs[id] ?? []).map((x) => (x === null ? Number.NaN : x[field]));
}

function rps(value: number): string {
  return Number.isFinite(value) ? `${(value / 1000).toFixed(1)}k` : "–";
}

function micros(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} µs` : "–";
}

function signedMicros(value: number): string {
  return Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(1)} µs` : "–";
}

/** pairedDiff is the median over rounds of a[i] - b[i]. */
function pairedDiff(a: readonly number[], b: readonly number[]): number {
  const d: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (Number.isFinite(x) && Number.isFinite(y)) d.push(x - y);
  }
  return median(d);
}

function report(data: RunData) {
  const r = data.extra.http as HttpRun | undefined;
  if (r === undefined || !r.measured) {
    return {
      markdown: `Not measured in this run: ${r?.reason ?? "not run"}.`,
      targets: [
        {
          target: `HTTP: >= ${FLOOR_BOUND} of the five-fixed-headers floor (allowed path); 429 path >= ${REJECT_BOUND} of no limiter; ahead of each peer`,
          measured: "not measured",
          met: null,
        },
      ],
    };
  }
  const rows: string[][] = [];
  const cpuRows: string[][] = [];
  const floorRows: string[][] = [];
  const targets: Target[] = [];
  const vs = (a: string, b: string) => pairedRatio(series(r, a, "rps"), series(r, b, "rps"));
  const cpuVs = (a: string, b: string) => pairedRatio(series(r, b, "cpuUs"), series(r, a, "cpuUs"));
  const both = (a: string, b: string) => `${ratio(vs(a, b))} (${ratio(cpuVs(a, b))})`;
  // Frameworks this run measured (`--only` may pick some).
  const measuredFrameworks = FRAMEWORKS.filter((f) => r.runs[`${f}:none:allowed`] !== undefined);
  for (const f of measuredFrameworks) {
    const base = `${f}:none:allowed`;
    const noop = `${f}:noop:allowed`;
    const fixed = `${f}:headers:allowed`;
    const cpuMedian = (id: string) => micros(median(series(r, id, "cpuUs")));
    floorRows.push([
      `${f} ${version(PACKAGE[f])}`,
      both(noop, base),
      both(fixed, base),
      both(`${f}:floodgate:allowed`, base),
      both(`${f}:floodgate:allowed`, fixed),
      `${cpuMedian(base)} / ${cpuMedian(noop)} / ${cpuMedian(fixed)} / ${cpuMedian(`${f}:floodgate:allowed`)}`,
    ]);
    // What the framework charges any limiter that sends floodgate's default headers.
    const floors = `; floors: any middleware ${ratio(vs(noop, base))}, five fixed headers ${ratio(vs(fixed, base))}`;
    for (const path of ["allowed", "rejected"] as const) {
      const fg = `${f}:floodgate:${path}`;
      const peer = `${f}:peer:${path}`;
      const rpsOf = (id: string) => median(series(r, id, "rps"));
      const cpuOf = (id: string) => median(series(r, id, "cpuUs"));
      rows.push([
        `${f} ${version(PACKAGE[f])}`,
        path,
        rps(rpsOf(base)),
        rps(rpsOf(fg)),
        rps(rpsOf(peer)),
        ratio(vs(fg, base)),
        ratio(vs(peer, base)),
        ratio(vs(fg, peer)),
      ]);
      cpuRows.push([
        `${f} ${version(PACKAGE[f])}`,
        path,
        micros(cpuOf(base)),
        micros(cpuOf(fg)),
        micros(cpuOf(peer)),
        signedMicros(pairedDiff(series(r, fg, "cpuUs"), series(r, base, "cpuUs"))),
        signedMicros(pairedDiff(series(r, peer, "cpuUs"), series(r, base, "cpuUs"))),
        ratio(cpuVs(fg, base)),
        ratio(cpuVs(fg, peer)),
      ]);
      const label = `${f} + ${PEER[f]} ${version(PEER[f])}`;
      const perRequest = (a: string, b: string) =>
        `server CPU: ${ratio(cpuVs(a, b))}, ${micros(cpuOf(a))} against ${micros(cpuOf(b))} per request`;
      const one = r.oneProcess?.[f];
      const inOne = (a: Mode, b: Mode) =>
        one === undefined ? Number.NaN : median(cpuRatios(one, a, b));
      if (path === "allowed") {
        const v = vs(fg, fixed);
        const met = Number.isFinite(v) ? v >= FLOOR_BOUND : null;
        const real = inOne("real", "fixed");
        targets.push({
          target: `HTTP ${f}: floodgate >= ${FLOOR_BOUND} of the five-fixed-headers floor (allowed path, req/s)`,
          measured: `${ratio(v)} (${perRequest(fg, fixed)}; ÷ no limiter ${ratio(vs(fg, base))}${floors})`,
          met,
          ...(met === false && Number.isFinite(real)
            ? {
                why: `in one server process (server CPU, ${r.oneProcessRounds} rounds), the same five headers with each request's true values cost ${ratio(real)} of the fixed ones by themselves${real < FLOOR_BOUND ? ", below the bound before any decision" : ""}; floodgate runs at ${ratio(inOne("floodgate", "real"))} of that true-value floor`,
              }
            : {}),
        });
      } else {
        const v = vs(fg, base);
        const met = Number.isFinite(v) ? v >= REJECT_BOUND : null;
        const headers = vs(fixed, base);
        targets.push({
          target: `HTTP ${f}: 429 path >= ${REJECT_BOUND} of the no-limiter allowed path (req/s)`,
          measured: `${ratio(v)} (${perRequest(fg, base)})`,
          met,
          ...(met === false && Number.isFinite(headers)
            ? {
                why: `a 429 carries the same five headers, and a middleware that only sets them to fixed values runs at ${ratio(headers)} of no limiter (${ratio(inOne("fixed", "none"))} in one server process)${headers < REJECT_BOUND ? ": the bound is above that floor" : ""}; floodgate's 429 ÷ that floor ${ratio(vs(fg, fixed))}`,
              }
            : {}),
        });
      }
      const p = vs(fg, peer);
      const ahead = Number.isFinite(p) ? p > 1 : null;
      const sameHeaders = inOne("legacy", "peer");
      targets.push({
        target: `HTTP ${f}: floodgate ahead of ${label} (${path} path, req/s)`,
        measured: `${ratio(p)} (${perRequest(fg, peer)})`,
        met: ahead,
        // The one-process harness measures the allowed path only.
        ...(ahead === false && path === "allowed" && Number.isFinite(sameHeaders)
          ? {
              why: `floodgate's default sends five headers, ${PEER_HEADERS[f]}; in one server process (server CPU, ${r.oneProcessRounds} rounds) floodgate runs at ${ratio(inOne("floodgate", "peer"))} of the peer with its defaults and at ${ratio(sameHeaders)} with \`headers: "legacy"\` (the three X-RateLimit-* headers)`,
            }
          : {}),
      });
    }
  }
  const figures: Figure[] = [];
  for (const id of Object.keys(r.runs)) {
    figures.push({
      name: `http ${id} (req/s)`,
      value: median(series(r, id, "rps")),
      better: "higher",
    });
    figures.push({
      name: `http ${id} (server µs/request)`,
      value: median(series(r, id, "cpuUs")),
      better: "lower",
    });
  }
  for (const f of measuredFrameworks) {
    const fg = `${f}:floodgate`;
    const ratios: [string, string, string][] = [
      ["floodgate ÷ five fixed headers (allowed)", `${fg}:allowed`, `${f}:headers:allowed`],
      ["floodgate 429 ÷ no limiter", `${fg}:rejected`, `${f}:none:allowed`],
      ["floodgate ÷ peer (allowed)", `${fg}:allowed`, `${f}:peer:allowed`],
      ["floodgate ÷ peer (429)", `${fg}:rejected`, `${f}:peer:rejected`],
    ];
    for (const [name, a, b] of ratios) {
      figures.push({ name: `http ${f} ${name} (req/s)`, value: vs(a, b), better: "higher" });
      figures.push({
        name: `http ${f} ${name} (server CPU)`,
        value: cpuVs(a, b),
        better: "higher",
      });
    }
  }
  const markdown = [
    `Hello-world \`GET /\` (JSON body), one server process per (framework, limiter, path); all servers of one`,
    `framework run side by side. autocannon ${r.versions.autocannon} in the run's process, ${r.connections} connections, runs ${r.rounds} rounds`,
    `in which each server gets one ${r.durationS} s burst (order rotated, and reversed every other round), split over ${r.generations ?? 1} sets of`,
    `fresh server processes, each started with a ${r.warmupS} s warm-up burst per server (two processes of one server differ by`,
    "a few percent for their whole life). Medians over rounds; ratios are medians of per-round ratios (the",
    "servers compared in one round ran seconds apart). Allowed path: a limit no run reaches (1e9 per",
    "hour); rejected path: 1 per hour, so every request after the first is a 429 (one client:",
    "loopback). Each limiter with its defaults (floodgate: legacy and IETF headers; the peers: their",
    "default headers). On the rejected path `÷ none` compares with the no-limiter *allowed* path (a",
    "429 must cost less than the handler).",
    r.missing.length > 0
      ? `\nNot built in this run: ${r.missing.map((m) => `floodgate/${m}`).join(", ")} (only the no-limiter and peer servers ran for those).`
      : "",
    "",
    "Requests per second (k = thousand):",
    "",
    table(
      [
        "framework",
        "path",
        "no limiter",
        "floodgate",
        "peer",
        "floodgate ÷ none",
        "peer ÷ none",
        "floodgate ÷ peer",
      ],
      rows,
    ),
    "",
    "Server CPU per request (process.cpuUsage in the server, user + system, over the requests it",
    "served): the steadier yardstick on a shared machine. Ratios are throughput-equivalent",
    "(none's CPU ÷ floodgate's: above 1 means floodgate's server spends less per request).",
    "",
    table(
      [
        "framework",
        "path",
        "no limiter",
        "floodgate",
        "peer",
        "floodgate extra",
        "peer extra",
        "floodgate ÷ none (CPU)",
        "floodgate ÷ peer (CPU)",
      ],
      cpuRows,
    ),
    "",
    "Floors, allowed path: what any middleware costs (one that does nothing), and one that only",
    "sets floodgate's five default headers with fixed values, beside floodgate; req/s ratios,",
    "server-CPU ratios in brackets (throughput-equivalent, as above).",
    "",
    table(
      [
        "framework",
        "any middleware ÷ none",
        "five fixed headers ÷ none",
        "floodgate ÷ none",
        "floodgate ÷ five fixed headers",
        "server CPU per request: none / any middleware / five fixed headers / floodgate",
      ],
      floorRows,
    ),
    ...oneProcessSection(r),
    "",
    `Peers: ${FRAMEWORKS.map((f) => `${PEER[f]} ${r.versions[PEER[f]]}`).join(", ")}.`,
  ].join("\n");
  return { markdown, targets, figures };
}

/** oneProcessSection renders the header floor measured inside one server process per framework. */
function oneProcessSection(r: HttpRun): string[] {
  const measured = FRAMEWORKS.filter((f) => r.oneProcess?.[f] !== undefined);
  if (measured.length === 0) return [];
  const rows = measured.map((f) => {
    const s = r.oneProcess?.[f] as Series;
    return [
      `${f} ${r.versions[PACKAGE[f]]}`,
      ...MODES.map((m) => micros(median(s[m].cpuUs))),
      ...RATIOS.map(([, a, b]) => ratio(median(cpuRatios(s, a, b)))),
    ];
  });
  return [
    "",
    `The header floor inside ONE server process per framework (\`bench/http/floor.ts\`, run here: ${r.oneProcessRounds} rounds, every mode a slot per round, one JIT and heap for all): server CPU per request of the bare handler (none), five fixed headers, the same five headers with each request's true values (remaining counting down, reset from the clock), floodgate, floodgate with \`headers: "legacy"\` and the peer; ratios are throughput-equivalent medians of per-round ratios. Two processes of one server differ by a few per cent, so the floor targets are read here.`,
    "",
    table(["framework", ...MODES, ...RATIOS.map(([name]) => name)], rows),
  ];
}

/**
 * (c) HTTP requests per second of a hello-world route: no limiter, floodgate,
 * and the framework's popular limiter, for Fastify, Express and Hono; allowed
 * path and all-rejected path. Each server runs in its own child process and
 * reports its process.cpuUsage() per request over IPC; autocannon drives it
 * from this process. All servers of one framework run at once and take turns
 * in short bursts over many rounds, so the machine's slow swings hit every
 * server of a round alike and cancel in the per-round ratios.
 */
export const http: Scenario = {
  id: "http",
  title: "(c) HTTP throughput (Fastify, Express, Hono)",
  async run(config) {
    try {
      return await measure(config);
    } catch (error) {
      log(String(error));
      return {
        measured: false,
        reason: String(error),
        connections: CONNECTIONS,
        durationS: 0,
        warmupS: 0,
        rounds: 0,
        missing: [],
        versions: {},
        runs: {},
      } satisfies HttpRun;
    }
  },
  report,
};
