import { timeBuckets } from "./chart-data.js";
import type { ProbeReport } from "./probe.js";
import { toJson } from "./render-json.js";

const W = 800;
const H = 240;
const M = { top: 16, right: 16, bottom: 36, left: 48 };
const ALLOWED = "#2e7d32";
const BLOCKED = "#c62828";
const LINE = "#1565c0";

/**
 * renderHtml writes a report as one self-contained page: inline CSS and SVG,
 * no script, nothing fetched, so it opens from disk or an air-gapped machine.
 */
export function renderHtml(report: ProbeReport, generatedAt: Date): string {
  const { totals, policy, refill } = report;
  const o = policy.observed;
  const title = `floodgate probe: ${report.method} ${report.url}`;
  const rate = report.rate;
  const rows: [string, string][] = [
    ["URL", `${report.method} ${report.url}`],
    [
      "Traffic",
      rate === null
        ? `${report.requests.length} requests back to back`
        : `${fmt(rate.perSecond)} req/s for ${fmt(rate.duration)} s (${report.requests.length} requests)`,
    ],
    ["Allowed / blocked", `${totals.allowed} / ${totals.blocked}`],
    ["Limit (headers)", policy.limit === null ? "not announced" : fmt(policy.limit)],
    ["Window (headers)", policy.window === null ? "not announced" : `${fmt(policy.window)} s`],
    [
      "Refill (headers)",
      policy.refillPerSecond === null
        ? "not announced"
        : `${fmt(policy.refillPerSecond)} per second`,
    ],
    [
      "Burst (observed)",
      o.burst === null ? "never blocked" : `${o.burst} allowed before the first 429`,
    ],
    ["Capacity (observed)", o.capacity === null ? "unknown" : `≈ ${o.capacity}`],
    [
      "Refill (observed)",
      o.refillPerSecond === null ? "unknown" : `≈ ${fmt(o.refillPerSecond)} per second`,
    ],
    [
      "Refill check",
      `after ${fmt(refill.waited)} s: ${refill.allowed} allowed, ${refill.blocked} blocked`,
    ],
  ];
  for (const p of policy.policies) {
    rows.push([
      `Policy "${p.name}"`,
      `limit ${fmt(p.limit)}${p.window === null ? "" : `, window ${fmt(p.window)} s`}`,
    ]);
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${esc(title)}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 860px; padding: 0 1rem; color: #1a1a1a; }
h1 { font-size: 1.3rem; word-break: break-all; }
h2 { font-size: 1.05rem; margin-top: 2rem; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .2rem .8rem .2rem 0; vertical-align: top; }
th { font-weight: 600; }
svg { width: 100%; height: auto; background: #fafafa; border: 1px solid #ddd; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.key span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; vertical-align: -.05em; }
pre { background: #f4f4f4; padding: 1rem; overflow: auto; max-height: 30rem; font-size: 12px; }
footer { color: #777; font-size: 12px; margin-top: 2rem; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<table>
${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("\n")}
</table>
<h2>Allowed vs blocked per ${bucketUnit(report)}</h2>
<p class="key"><span style="background:${ALLOWED}"></span>allowed<span style="background:${BLOCKED}"></span>blocked (429)</p>
${barChart(report)}
<h2>Remaining tokens seen</h2>
<p class="key"><span style="background:${LINE}"></span>remaining after each request<span style="background:${BLOCKED}"></span>a 429</p>
${lineChart(report)}
<h2>Raw data</h2>
<details><summary>JSON (as <code>--json</code> prints it)</summary>
<pre>${esc(JSON.stringify(toJson(report), null, 2))}</pre>
</details>
<footer>Written by floodgate probe at ${esc(generatedAt.toISOString())}.</footer>
</body>
</html>
`;
}

function duration(report: ProbeReport): number {
  return report.rate?.duration ?? Math.max(1, ...report.requests.map((r) => r.t / 1000));
}

function bucketUnit(report: ProbeReport): string {
  const length = timeBuckets(report.requests, duration(report))[0]?.length ?? 1;
  return length === 1 ? "second" : `${length} seconds`;
}

function barChart(report: ProbeReport): string {
  const buckets = timeBuckets(report.requests, duration(report));
  const most = Math.max(1, ...buckets.map((b) => b.allowed + b.blocked));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, slot * 0.8);
  const y = (v: number) => M.top + plotH - (v / most) * plotH;
  const parts: string[] = [axes(most, plotH, y)];
  buckets.forEach((b, i) => {
    const x = M.left + i * slot + (slot - barW) / 2;
    const ya = y(b.allowed);
    const yb = y(b.allowed + b.blocked);
    parts.push(
      `<rect x="${r(x)}" y="${r(ya)}" width="${r(barW)}" height="${r(M.top + plotH - ya)}" fill="${ALLOWED}"><title>${b.start}s: ${b.allowed} allowed</title></rect>`,
      `<rect x="${r(x)}" y="${r(yb)}" width="${r(barW)}" height="${r(ya - yb)}" fill="${BLOCKED}"><title>${b.start}s: ${b.blocked} blocked</title></rect>`,
    );
    if (buckets.length <= 30 || i % Math.ceil(buckets.length / 30) === 0) {
      parts.push(
        `<text x="${r(x + barW / 2)}" y="${H - M.bottom + 14}" text-anchor="middle">${b.start}s</text>`,
      );
    }
  });
  return svg("Allowed and blocked requests over time", parts);
}

function lineChart(report: ProbeReport): string {
  const seen = report.requests.filter((o) => o.remaining !== null);
  const top = Math.max(1, report.policy.limit ?? 0, ...seen.map((o) => o.remaining ?? 0));
  const end = Math.max(1, duration(report) * 1000, ...report.requests.map((o) => o.t));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (t: number) => M.left + (t / end) * plotW;
  const y = (v: number) => M.top + plotH - (v / top) * plotH;
  const parts: string[] = [axes(top, plotH, y)];
  if (seen.length > 0) {
    const points = seen.map((o) => `${r(x(o.t))},${r(y(o.remaining ?? 0))}`).join(" ");
    parts.push(
      `<polyline points="${points}" fill="none" stroke="${LINE}" stroke-width="1.5" stroke-linejoin="round"/>`,
    );
  }
  for (const o of report.requests) {
    if (o.status !== 429) continue;
    parts.push(
      `<circle cx="${r(x(o.t))}" cy="${r(y(o.remaining ?? 0))}" r="2.5" fill="${BLOCKED}"><title>request ${o.n} at ${fmt(o.t / 1000)} s: 429</title></circle>`,
    );
  }
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const t = (end * i) / ticks;
    parts.push(
      `<text x="${r(x(t))}" y="${H - M.bottom + 14}" text-anchor="middle">${fmt(t / 1000)}s</text>`,
    );
  }
  return svg("Remaining tokens over time", parts);
}

function axes(top: number, plotH: number, y: (v: number) => number): string {
  const parts = [
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="#999"/>`,
    `<line x1="${M.left}" y1="${M.top + plotH}" x2="${W - M.right}" y2="${M.top + plotH}" stroke="#999"/>`,
  ];
  for (const v of [0, Math.round(top / 2), top]) {
    parts.push(
      `<text x="${M.left - 6}" y="${r(y(v) + 4)}" text-anchor="end">${fmt(v)}</text>`,
      `<line x1="${M.left}" y1="${r(y(v))}" x2="${W - M.right}" y2="${r(y(v))}" stroke="#e4e4e4"/>`,
    );
  }
  return parts.join("");
}

function svg(label: string, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}">${parts.join("")}</svg>`;
}

function r(v: number): string {
  return String(Math.round(v * 10) / 10);
}

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** esc makes text safe inside HTML elements and attribute values. */
export function esc(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}
