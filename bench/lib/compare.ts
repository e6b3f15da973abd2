import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { median } from "./stats.js";
import { table } from "./table.js";
import type { Figure, RunData, Scenario } from "./types.js";

/** A figure that moved more than this share against the baseline is flagged (issue 18, point 4). */
export const MOVED = 0.03;

/** Baseline is a previous run's JSON (bench/results/*.json): its raw data, re-reported here. */
export interface Baseline {
  /** Where it came from: a file, or `<ref>:bench/results/latest.json`. */
  source: string;
  date: string;
  command: string;
  data: RunData;
}

/**
 * loadBaseline reads a previous run's JSON: `spec` is a file, or else a git
 * ref whose committed bench/results/latest.json is read (`main`, `43d90c0`).
 */
export function loadBaseline(spec: string): Baseline {
  let source = spec;
  let text: string;
  if (existsSync(spec)) {
    text = readFileSync(spec, "utf8");
  } else {
    source = `${spec}:bench/results/latest.json`;
    try {
      text = execFileSync("git", ["show", source], {
        encoding: "utf8",
        maxBuffer: 64 * 2 ** 20,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch {
      throw new Error(
        `bench: --baseline ${spec}: neither a file nor a git ref with bench/results/latest.json`,
      );
    }
  }
  const json = JSON.parse(text) as RunData & { date?: string; command?: string };
  return {
    source,
    date: json.date ?? "?",
    command: json.command ?? "?",
    data: {
      config: json.config,
      machine: json.machine,
      speed: json.speed ?? {},
      wall: json.wall ?? {},
      allowed: json.allowed ?? {},
      heap: json.heap ?? {},
      extra: json.extra ?? {},
    },
  };
}

/** JSON turns NaN into null; the report code expects NaN for a missing round. */
function nulls(runs: Record<string, Record<string, (number | null)[]>>) {
  const out: Record<string, Record<string, number[]>> = {};
  for (const [id, byName] of Object.entries(runs)) {
    const o: Record<string, number[]> = {};
    out[id] = o;
    for (const [name, list] of Object.entries(byName)) o[name] = list.map((v) => v ?? Number.NaN);
  }
  return out;
}

/**
 * figures lists every figure of one run by a stable name: the in-memory
 * decision rates and heap bytes of every contender (data.speed, data.heap:
 * the memory, heap and scaling scenarios), then what each scenario's report
 * lists in `figures` (HTTP, Redis, allocation per decision, ...).
 */
export function figures(data: RunData, scenarios: readonly Scenario[]): Figure[] {
  const out: Figure[] = [];
  for (const [id, byName] of Object.entries(nulls(data.speed))) {
    for (const [name, list] of Object.entries(byName)) {
      out.push({
        name: `in-memory ${name} ${id} (decisions/CPU-s)`,
        value: median(list),
        better: "higher",
      });
    }
  }
  for (const [id, byKeys] of Object.entries(nulls(data.heap))) {
    for (const [keys, list] of Object.entries(byKeys)) {
      out.push({ name: `heap ${keys} keys ${id} (B/key)`, value: median(list), better: "lower" });
    }
  }
  for (const s of scenarios) {
    try {
      out.push(...(s.report(data).figures ?? []));
    } catch {
      // A baseline from an older suite may lack what this report reads: no figures from it.
    }
  }
  return out;
}

function pct(change: number): string {
  return `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%`;
}

function num(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (Math.abs(value) >= 100) return value.toFixed(0);
  return value.toFixed(2);
}

/**
 * compare renders this run's figures against the baseline's, by name: the
 * ratio this ÷ baseline, and a flag when a figure moved more than MOVED
 * (better or worse, by the figure's direction). Figures only one side has
 * are counted, not listed.
 */
export function compare(
  current: readonly Figure[],
  baseline: Baseline,
  scenarios: readonly Scenario[],
): string {
  const before = new Map(figures(baseline.data, scenarios).map((f) => [f.name, f]));
  const rows: string[][] = [];
  let worse = 0;
  let better = 0;
  let only = 0;
  for (const f of current) {
    const b = before.get(f.name);
    if (
      b === undefined ||
      !Number.isFinite(b.value) ||
      !Number.isFinite(f.value) ||
      b.value === 0
    ) {
      only++;
      continue;
    }
    const r = f.value / b.value;
    const change = r - 1;
    const improved = f.better === "higher" ? change > 0 : change < 0;
    let flag = "";
    if (Math.abs(change) > MOVED) {
      flag = improved ? `better (${pct(change)})` : `**worse (${pct(change)})**`;
      if (improved) better++;
      else worse++;
    }
    rows.push([f.name, num(b.value), num(f.value), `${r.toFixed(3)}x`, flag]);
  }
  return [
    `Baseline: \`${baseline.source}\` (\`${baseline.command}\`, ${baseline.date}). Every figure both runs`,
    `have, this run ÷ baseline; moved more than ${MOVED * 100}% flagged: ${worse} worse, ${better} better, of ${rows.length}`,
    `(${only} figures only one run has). Peers and floors moving alike mean the machine moved, not`,
    "floodgate: read floodgate's rows beside them.",
    "",
    table(["figure", "baseline", "this run", "this ÷ baseline", "moved > 3%"], rows),
  ].join("\n");
}
