/**
 * floodgate's benchmark suite (issue 7). Usage:
 *
 *   npm run bench                       # build, then every scenario
 *   npm run bench -- --quick            # shorter: fewer rounds and sizes (about a minute)
 *   npm run bench:memory                # one scenario: memory | heap | scaling | http | redis | gateway
 *   tsx bench/run.ts memory heap --rounds 7 --only floodgate,inline-await
 *   tsx bench/run.ts http --only fastify,hono   # http: --only names frameworks
 *   tsx bench/run.ts --baseline main            # also compare with main's committed results
 *   tsx bench/run.ts report --baseline main     # render results/latest.json again, measuring nothing
 *   tsx bench/run.ts compare --baseline old.json --current bench/results/latest.json
 *
 * Every job runs in a fresh child process against the built dist/; contenders
 * alternate within each round; the report gives medians and ratios measured
 * side by side in this one run. Writes bench/results/latest.md and .json.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { rotate, runChild } from "./lib/child.js";
import { compare, figures, loadBaseline } from "./lib/compare.js";
import { DIST_ENV, loadFloodgate } from "./lib/floodgate.js";
import { machine } from "./lib/machine.js";
import { table } from "./lib/table.js";
import type { Config, RunData, Scenario, Section } from "./lib/types.js";
import { CONTENDERS } from "./memory/contenders.js";
import type { HeapJob, HeapResult } from "./memory/heap-worker.js";
import type { CaseResult, SpeedJob } from "./memory/speed-worker.js";
import { gateway } from "./scenarios/gateway.js";
import { heap } from "./scenarios/heap.js";
import { http } from "./scenarios/http.js";
import { memory } from "./scenarios/memory.js";
import { redis } from "./scenarios/redis.js";
import { scaling } from "./scenarios/scaling.js";

const SCENARIOS: readonly Scenario[] = [memory, heap, scaling, http, redis, gateway];

interface Parsed {
  config: Config;
  scenarios: Scenario[];
  out: string;
  baseline?: string;
  /** `compare` mode: the run to compare with the baseline (no measuring). */
  current?: string;
  /** `report` mode: render `<out>.json` again (no measuring). */
  reporting: boolean;
}

function parse(): Parsed {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      "heap-rounds": { type: "string" },
      duration: { type: "string" },
      only: { type: "string" },
      out: { type: "string", default: "bench/results/latest" },
      baseline: { type: "string" },
      current: { type: "string", default: "bench/results/latest.json" },
    },
  });
  const comparing = positionals[0] === "compare";
  const reporting = positionals[0] === "report";
  const named = comparing || reporting ? positionals.slice(1) : positionals;
  const scenarios = named.length
    ? named.map((id) => {
        const s = SCENARIOS.find((x) => x.id === id);
        if (!s)
          throw new Error(`bench: no scenario ${id}; use ${SCENARIOS.map((x) => x.id).join(", ")}`);
        return s;
      })
    : [...SCENARIOS];
  const quick = values.quick === true;
  const config: Config = {
    quick,
    rounds: Number(values.rounds ?? (quick ? 2 : 4)),
    heapRounds: Number(values["heap-rounds"] ?? 1),
    durationMs: Number(values.duration ?? (quick ? 150 : 300)),
    warmupMs: quick ? 100 : 200,
    only: values.only ? values.only.split(",") : [],
  };
  const baseline = values.baseline;
  if (comparing && baseline === undefined) throw new Error("bench: compare needs --baseline");
  return {
    config,
    scenarios,
    out: values.out as string,
    ...(baseline === undefined ? {} : { baseline }),
    ...(comparing ? { current: values.current as string } : {}),
    reporting,
  };
}

/** compareOnly prints a saved run (`--current`) against `--baseline`, measuring nothing. */
function compareOnly(current: string, baseline: string, scenarios: readonly Scenario[]): void {
  const run = loadBaseline(current);
  process.stdout.write(
    `${compare(figures(run.data, scenarios), loadBaseline(baseline), scenarios)}\n`,
  );
}

const CASE_ORDER = (name: string): number =>
  name === "hot-admit" ? -2 : name === "hot-reject" ? -1 : Number(name.slice(3));

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** push appends `value` to `runs[id][name]`, creating the lists as needed. */
function push(
  runs: Record<string, Record<string, number[]>>,
  id: string,
  name: string,
  value: number,
) {
  const byName = runs[id] ?? {};
  runs[id] = byName;
  const list = byName[name] ?? [];
  byName[name] = list;
  list.push(value);
}

async function main(): Promise<void> {
  const { config, scenarios, out, baseline, current, reporting } = parse();
  if (current !== undefined && baseline !== undefined) {
    compareOnly(current, baseline, scenarios);
    return;
  }
  if (reporting) {
    reportOnly(out, scenarios, baseline);
    return;
  }
  const before = baseline === undefined ? undefined : loadBaseline(baseline);
  const dist = fileURLToPath(new URL(`../.tmp/bench-dist-${process.pid}/`, import.meta.url));
  cpSync(fileURLToPath(new URL("../dist/", import.meta.url)), dist, { recursive: true });
  process.env[DIST_ENV] = dist;
  process.on("exit", () => rmSync(dist, { recursive: true, force: true }));
  await loadFloodgate();
  const data: RunData = {
    config,
    machine: machine(),
    speed: {},
    wall: {},
    allowed: {},
    heap: {},
    extra: {},
  };
  const wanted = (id: string) => config.only.length === 0 || config.only.includes(id);
  const started = performance.now();

  const cases = [...new Set(scenarios.flatMap((s) => s.speedCases?.(config) ?? []))].sort(
    (a, b) => CASE_ORDER(a) - CASE_ORDER(b),
  );
  const speedIds = CONTENDERS.filter((c) => !c.heapOnly && wanted(c.id)).map((c) => c.id);
  for (let round = 0; cases.length > 0 && round < config.rounds; round++) {
    for (const id of rotate(speedIds, round)) {
      log(`bench: round ${round + 1}/${config.rounds} ${id}: ${cases.join(" ")}`);
      const job: SpeedJob = {
        contender: id,
        cases,
        durationMs: config.durationMs,
        warmupMs: config.warmupMs,
      };
      let result: Record<string, CaseResult> = {};
      try {
        result = (
          await runChild<{ cases: Record<string, CaseResult> }>("memory/speed-worker.ts", job, {
            nodeArgs: ["--expose-gc"],
          })
        ).cases;
      } catch (error) {
        log(String(error));
      }
      const names = new Set([...Object.keys(result), ...cases]);
      for (const name of names) {
        const r = result[name];
        push(data.speed, id, name, r ? r.perSecond : Number.NaN);
        push(data.allowed, id, name, r ? r.allowed : Number.NaN);
        push(data.wall, id, name, r ? r.perWallSecond : Number.NaN);
      }
    }
  }

  const sizes = [...new Set(scenarios.flatMap((s) => s.heapSizes?.(config) ?? []))].sort(
    (a, b) => a - b,
  );
  const largest = sizes[sizes.length - 1];
  const heapIds = CONTENDERS.filter((c) => wanted(c.id)).map((c) => c.id);
  for (let round = 0; sizes.length > 0 && round < config.heapRounds; round++) {
    for (const keys of sizes) {
      if (round > 0 && keys !== largest) continue;
      for (const id of rotate(heapIds, round)) {
        log(`bench: heap round ${round + 1}/${config.heapRounds} ${id} at ${keys} keys`);
        const job: HeapJob = { contender: id, keys };
        let bytesPerKey = Number.NaN;
        try {
          bytesPerKey = (
            await runChild<HeapResult>("memory/heap-worker.ts", job, {
              nodeArgs: ["--expose-gc"],
            })
          ).bytesPerKey;
        } catch (error) {
          log(String(error));
        }
        push(data.heap, id, String(keys), bytesPerKey);
      }
    }
  }

  for (const s of scenarios) {
    if (s.run) data.extra[s.id] = await s.run(config);
  }

  const seconds = Math.round((performance.now() - started) / 1000);
  const command = `npm run bench${scenarios.length === SCENARIOS.length ? "" : `:${scenarios.map((s) => s.id).join("+")}`}${config.quick ? " -- --quick" : ""}`;
  write(out, data, scenarios, before, { command, seconds, date: new Date().toISOString() });
}

/**
 * reportOnly renders a saved run's JSON again with this checkout's report
 * code (tables, targets, the comparison), measuring nothing: for a report
 * that changed after the run.
 */
function reportOnly(
  out: string,
  scenarios: readonly Scenario[],
  baseline: string | undefined,
): void {
  const file = `${out}.json`;
  const saved = JSON.parse(readFileSync(file, "utf8")) as {
    command: string;
    date: string;
    seconds: number;
  };
  const run = loadBaseline(file);
  const before = baseline === undefined ? undefined : loadBaseline(baseline);
  write(out, run.data, scenarios, before, saved);
}

function write(
  out: string,
  data: RunData,
  scenarios: readonly Scenario[],
  before: ReturnType<typeof loadBaseline> | undefined,
  meta: { command: string; seconds: number; date: string },
): void {
  const { command, seconds, date } = meta;
  const config = data.config;
  const wanted = (id: string) => config.only.length === 0 || config.only.includes(id);
  const sections: [Scenario, Section][] = scenarios.map((s) => [s, s.report(data)]);
  const m = data.machine;
  const md = [
    "# floodgate benchmark results",
    "",
    `Command: \`${command}\` (${config.rounds} rounds of ${config.durationMs} ms per case, ${config.heapRounds} heap rounds; ${seconds} s in all), ${date}.`,
    `Machine: ${m.cpu}, ${m.nproc} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; load average at start ${m.loadavg.join(" ")}.`,
    "",
    "Contenders and the call measured:",
    "",
    ...CONTENDERS.filter((c) => wanted(c.id)).map((c) => `- ${c.label}: \`${c.call}\``),
    "",
    "## Targets (issues 7 and 18)",
    "",
    "A target not met says why where this run measured a reason: the floor beneath it, or the trade.",
    "",
    table(
      ["target", "measured", "met", "why not (measured in this run)"],
      sections.flatMap(([, s]) =>
        s.targets.map((t) => [
          t.target,
          t.measured,
          t.met === null ? "–" : t.met ? "yes" : "**no**",
          t.why ?? "",
        ]),
      ),
    ),
    ...sections.flatMap(([s, section]) => ["", `## ${s.title}`, "", section.markdown]),
    ...(before === undefined
      ? []
      : [
          "",
          "## Compared with the baseline",
          "",
          compare(figures(data, scenarios), before, scenarios),
        ]),
    "",
  ].join("\n");
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(`${out}.md`, md);
  writeFileSync(
    `${out}.json`,
    `${JSON.stringify(
      {
        command,
        date,
        seconds,
        ...data,
        targets: sections.flatMap(([, s]) => s.targets),
        figures: figures(data, scenarios),
      },
      (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
      2,
    )}\n`,
  );
  process.stdout.write(md);
  log(`bench: wrote ${out}.md and ${out}.json in ${seconds} s`);
}

await main();
