import { remainingLine, timeBuckets } from "./chart-data.js";
import type { InferredPolicy } from "./infer.js";
import type { ProbeReport } from "./probe.js";

/** Style paints text for a terminal; the plain style leaves it alone. */
export interface Style {
  readonly allowed: (s: string) => string;
  readonly blocked: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly bold: (s: string) => string;
}

const same = (s: string) => s;
/** PLAIN is the style for pipes, files and NO_COLOR. */
export const PLAIN: Style = { allowed: same, blocked: same, dim: same, bold: same };
/** COLOR is the style for a terminal. */
export const COLOR: Style = {
  allowed: (s) => `\x1b[32m${s}\x1b[39m`,
  blocked: (s) => `\x1b[31m${s}\x1b[39m`,
  dim: (s) => `\x1b[2m${s}\x1b[22m`,
  bold: (s) => `\x1b[1m${s}\x1b[22m`,
};

const BAR_WIDTH = 40;
const LINE_WIDTH = 60;
const LINE_HEIGHT = 6;
const BLOCKS = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/** renderText lays a report out for a terminal: a table (burst) or charts (rate), then the summary. */
export function renderText(report: ProbeReport, style: Style = PLAIN): string {
  const lines: string[] = [];
  const head =
    report.rate === null
      ? `${report.requests.length} requests`
      : `${num(report.rate.perSecond)} req/s for ${num(report.rate.duration)} s (${report.requests.length} requests)`;
  lines.push(style.bold(`floodgate probe: ${report.method} ${report.url}, ${head}`), "");
  if (report.rate === null) lines.push(...table(report, style));
  else lines.push(...charts(report, style));
  lines.push("", ...summary(report, style));
  return `${lines.join("\n")}\n`;
}

function table(report: ProbeReport, style: Style): string[] {
  const rows = [["n", "status", "remaining", "reset", "retry-after"]];
  for (const o of report.requests) {
    rows.push([
      String(o.n),
      String(o.status),
      o.remaining === null ? "-" : num(o.remaining),
      o.reset === null ? "-" : `${num(o.reset)}s`,
      o.retryAfter === null ? "-" : `${num(o.retryAfter)}s`,
    ]);
  }
  const widths = (rows[0] as string[]).map((_, c) =>
    Math.max(...rows.map((r) => (r[c] as string).length)),
  );
  return rows.map((r, i) => {
    const text = `  ${r.map((cell, c) => cell.padStart(widths[c] as number)).join("  ")}`;
    if (i === 0) return style.dim(text);
    return report.requests[i - 1]?.status === 429 ? style.blocked(text) : text;
  });
}

function charts(report: ProbeReport, style: Style): string[] {
  const duration = report.rate?.duration ?? 0;
  const buckets = timeBuckets(report.requests, duration);
  const most = Math.max(1, ...buckets.map((b) => b.allowed + b.blocked));
  const scale = Math.min(1, BAR_WIDTH / most);
  const unit = buckets[0]?.length === 1 ? "second" : `${buckets[0]?.length} seconds`;
  const lines = [
    `${style.bold("allowed vs blocked")} per ${unit}  ${style.allowed("█")} allowed  ${style.blocked("░")} blocked`,
    style.dim(`  ${"time".padStart(5)}  ${"".padEnd(BAR_WIDTH)}  allowed  blocked  remaining`),
  ];
  for (const b of buckets) {
    const a = Math.round(b.allowed * scale);
    const k = Math.round(b.blocked * scale);
    const bar = style.allowed("█".repeat(a)) + style.blocked("░".repeat(k));
    const remaining =
      b.firstRemaining === null ? "-" : `${num(b.firstRemaining)} → ${num(b.lastRemaining ?? 0)}`;
    lines.push(
      `  ${`${b.start}s`.padStart(5)}  ${bar}${" ".repeat(Math.max(0, BAR_WIDTH - a - k))}  ${String(b.allowed).padStart(7)}  ${String(b.blocked).padStart(7)}  ${remaining}`,
    );
  }
  const values = remainingLine(report.requests, duration, LINE_WIDTH);
  const top = Math.max(report.policy.limit ?? 0, ...values.map((v) => v ?? 0));
  if (values.some((v) => v !== null) && top > 0) {
    lines.push("", style.bold("remaining tokens seen"));
    const label = String(num(top)).length;
    for (let row = LINE_HEIGHT - 1; row >= 0; row--) {
      const cells = values.map((v) => {
        if (v === null) return " ";
        const eighths = Math.round((v / top) * LINE_HEIGHT * 8) - row * 8;
        return BLOCKS[Math.max(0, Math.min(8, eighths))] as string;
      });
      const axis = row === LINE_HEIGHT - 1 ? num(top) : row === 0 ? "0" : "";
      lines.push(`  ${axis.padStart(label)} ┤${cells.join("")}`.trimEnd());
    }
    const end = `${num(duration)}s`;
    lines.push(
      `  ${"".padStart(label)} └${"─".repeat(LINE_WIDTH)}`,
      `  ${"".padStart(label)}  0s${end.padStart(LINE_WIDTH - 2)}`,
    );
  }
  return lines;
}

function summary(report: ProbeReport, style: Style): string[] {
  const { totals, refill, policy } = report;
  const lines = [
    `totals    ${style.allowed(`${totals.allowed} allowed`)}, ${style.blocked(`${totals.blocked} blocked`)}`,
    `policy    ${announced(policy)}`,
  ];
  if (policy.policies.length > 1) {
    for (const p of policy.policies) {
      const window = p.window === null ? "" : `, window ${num(p.window)} s`;
      lines.push(`            "${p.name}": limit ${num(p.limit)}${window}`);
    }
  }
  lines.push(`observed  ${observed(report)}`);
  lines.push(
    `refill    after ${num(refill.waited)} s: ${refill.allowed} allowed, ${refill.blocked} blocked`,
  );
  if (report.invalidHeaders.length > 0) {
    lines.push(
      style.dim(`note      ignored unreadable headers: ${report.invalidHeaders.join(", ")}`),
    );
  }
  return lines;
}

function announced(policy: InferredPolicy): string {
  if (policy.limit === null) return "the headers name no limit";
  const parts = [`limit ${num(policy.limit)}`];
  if (policy.window !== null) parts.push(`window ${num(policy.window)} s`);
  if (policy.refillPerSecond !== null) parts.push(`refill ≈ ${num(policy.refillPerSecond)}/s`);
  return `${parts.join(", ")} (from the headers)`;
}

function observed(report: ProbeReport): string {
  const o = report.policy.observed;
  if (o.burst === null) {
    return report.rate === null
      ? `never blocked in ${report.requests.length} requests: the capacity is above that; try --requests ${Math.min(1000, report.requests.length * 4)}`
      : `never blocked at ${num(report.rate.perSecond)} req/s: the refill keeps up; try a higher --rate`;
  }
  const parts: string[] = [];
  if (report.rate === null) {
    parts.push(
      o.capacity === null
        ? "blocked from the first request: the bucket was already empty"
        : `capacity ${o.capacity} (allowed before the first 429)`,
    );
    if (o.refillPerSecond !== null) {
      parts.push(
        `refill ≈ ${num(o.refillPerSecond)}/s (${report.refill.allowed} back after ${num(report.refill.waited)} s)`,
      );
    } else if (o.capacity !== null && report.refill.allowed >= o.capacity) {
      parts.push(
        `refill ≥ ${num(o.capacity / Math.max(report.refill.waited, 0.001))}/s (full again after ${num(report.refill.waited)} s)`,
      );
    }
  } else {
    const first = report.requests.find((r) => r.status === 429);
    parts.push(
      o.capacity === null
        ? "blocked from the first request: the bucket was already empty"
        : `capacity ≈ ${o.capacity} (${o.burst} allowed before the first 429 at ${num((first?.t ?? 0) / 1000)} s)`,
    );
    parts.push(
      o.refillPerSecond === null
        ? "refill unknown (too few 429s; run longer)"
        : `refill ≈ ${num(o.refillPerSecond)}/s (tokens back per second while blocked)`,
    );
  }
  return parts.join(", ");
}

/** num prints a number with at most two decimals. */
function num(value: number): string {
  return String(Math.round(value * 100) / 100);
}
