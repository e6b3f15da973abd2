// The dashboard page: one HTML document with its style and script inline,
// no external resource, so it works offline and under a strict CSP (the
// server allows exactly this script and style by their hashes). The script
// polls the JSON stats endpoint once a second and draws SVG; every value
// from the server goes into the page as text, never as markup.

/** STYLE is the page's stylesheet. */
export const STYLE = `
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --bg: #f7f8fa; --card: #fff;
  --line: #d0d5dd; --ok: #12b76a; --bad: #f04438; --warn: #f79009; --shadow: #7a5af8; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #98a2b3; --bg: #11151c;
  --card: #1a202a; --line: #344054; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 1rem; padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.15rem; margin: 0; }
#status { color: var(--muted); font-size: .85rem; }
#status.err { color: var(--bad); }
main { display: grid; grid-template-columns: minmax(0, 2fr) minmax(16rem, 1fr); gap: 1rem; padding: 1rem 1.5rem; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; margin-bottom: 1rem; }
h2 { font-size: .95rem; margin: 0 0 .5rem; }
.rates { color: var(--muted); font-size: .85rem; margin-left: .5rem; font-weight: normal; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { fill: var(--muted); font-size: 10px; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .allowed { stroke: var(--ok); fill: none; stroke-width: 1.5; }
svg.chart .allowed-area { fill: var(--ok); opacity: .15; stroke: none; }
svg.chart .limited { stroke: var(--bad); fill: none; stroke-width: 1.5; }
svg.chart .shadow { stroke: var(--shadow); fill: none; stroke-width: 1.5; stroke-dasharray: 4 3; }
.legend { display: flex; gap: 1rem; font-size: .8rem; color: var(--muted); }
.legend i { display: inline-block; width: .8rem; height: .2rem; margin-right: .3rem; vertical-align: middle; }
.legend .a { background: var(--ok); } .legend .l { background: var(--bad); } .legend .s { background: var(--shadow); }
table { width: 100%; border-collapse: collapse; font-size: .85rem; }
th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid var(--line); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.key { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .8rem; color: #fff; }
.badge.closed { background: var(--ok); } .badge.open { background: var(--bad); } .badge.half-open { background: var(--warn); }
.empty { color: var(--muted); font-style: italic; }
`;

/** SCRIPT is the page's script; it reads the stats URL from `data-stats` on the body. */
export const SCRIPT = `
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 640, H = 170, L = 44, R = 8, T = 8, B = 22;
  var url = document.body.getAttribute("data-stats");
  var charts = document.getElementById("charts");
  var status = document.getElementById("status");
  // Keyed by policy name: no prototype, so "constructor" or "toString" finds no panel it did not make.
  var panels = Object.create(null);
  var timer = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fmt(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
    if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n * 10) / 10);
  }
  function nice(max) {
    if (max <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(max)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= max) return steps[i] * p;
    return 10 * p;
  }
  function panel(name) {
    var s = el("section", "policy");
    var h = el("h2", "", "Policy " + name);
    var rates = el("span", "rates");
    h.appendChild(rates);
    s.appendChild(h);
    var svg = sv("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "decisions per second for policy " + name, "data-policy": name });
    var grid = sv("g", {});
    var area = sv("polygon", { "class": "allowed-area", points: "" });
    var allowed = sv("polyline", { "class": "allowed", points: "" });
    var limited = sv("polyline", { "class": "limited", points: "" });
    var shadow = sv("polyline", { "class": "shadow", points: "" });
    svg.appendChild(grid); svg.appendChild(area); svg.appendChild(allowed);
    svg.appendChild(shadow); svg.appendChild(limited);
    s.appendChild(svg);
    var legend = el("div", "legend");
    [["a", "allowed"], ["l", "limited"], ["s", "shadow-limited (let through)"]].forEach(function (x) {
      var item = el("span", "");
      item.appendChild(el("i", x[0]));
      item.appendChild(document.createTextNode(x[1]));
      legend.appendChild(item);
    });
    s.appendChild(legend);
    charts.appendChild(s);
    return { rates: rates, grid: grid, area: area, allowed: allowed, limited: limited, shadow: shadow };
  }
  function points(values, max) {
    var n = values.length, out = [];
    for (var i = 0; i < n; i++) {
      var x = L + (n === 1 ? 0 : (i * (W - L - R)) / (n - 1));
      var y = T + (H - T - B) * (1 - values[i] / max);
      out.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    return out;
  }
  function avg(values, n) {
    // The last entry is the second still running, so average the n before it.
    var end = values.length - 1, sum = 0, count = 0;
    for (var i = Math.max(0, end - n); i < end; i++) { sum += values[i]; count++; }
    return count ? sum / count : 0;
  }
  function draw(p, s, seconds) {
    var max = 0;
    for (var i = 0; i < s.allowed.length; i++) {
      max = Math.max(max, s.allowed[i], s.limited[i], s.shadow[i]);
    }
    max = nice(max);
    while (p.grid.firstChild) p.grid.removeChild(p.grid.firstChild);
    [0, 0.5, 1].forEach(function (f) {
      var y = T + (H - T - B) * (1 - f);
      p.grid.appendChild(sv("line", { "class": "grid", x1: L, x2: W - R, y1: y, y2: y }));
      var label = sv("text", { x: L - 6, y: y + 3, "text-anchor": "end" });
      label.textContent = fmt(max * f) + "/s";
      p.grid.appendChild(label);
    });
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var x = L + f * (W - L - R);
      var ago = seconds * (1 - f);
      var label = sv("text", { x: x, y: H - 6, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" });
      label.textContent = f === 1 ? "now" : seconds <= 120 ? "-" + fmt(ago) + " s" : "-" + fmt(ago / 60) + " min";
      p.grid.appendChild(label);
    });
    var a = points(s.allowed, max);
    p.allowed.setAttribute("points", a.join(" "));
    p.area.setAttribute("points", (L + "," + (H - B)) + " " + a.join(" ") + " " + ((W - R) + "," + (H - B)));
    p.limited.setAttribute("points", points(s.limited, max).join(" "));
    var anyShadow = s.shadow.some(function (v) { return v > 0; });
    p.shadow.setAttribute("points", anyShadow ? points(s.shadow, max).join(" ") : "");
    p.rates.textContent = "last 10 s: " + fmt(avg(s.allowed, 10)) + " allowed/s, " +
      fmt(avg(s.limited, 10)) + " limited/s" + (anyShadow ? ", " + fmt(avg(s.shadow, 10)) + " shadow/s" : "");
  }
  function row(cells, classes) {
    var tr = el("tr", "");
    cells.forEach(function (c, i) { tr.appendChild(el("td", classes[i] || "", c)); });
    return tr;
  }
  function renderTop(top) {
    var body = document.getElementById("top");
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!top.length) {
      var tr = el("tr", "");
      var td = el("td", "empty", "nobody limited in the last minutes");
      td.setAttribute("colspan", "2");
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    top.forEach(function (t) {
      body.appendChild(row([t.key, fmt(t.count) + (t.error ? " (\\u00b1" + fmt(t.error) + ")" : "")], ["key", "n"]));
    });
  }
  function renderBlocked(blocked, now) {
    var body = document.getElementById("blocked");
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!blocked.length) {
      var tr = el("tr", "");
      var td = el("td", "empty", "nobody blocked");
      td.setAttribute("colspan", "3");
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    blocked.forEach(function (b) {
      var left = Math.max(0, Math.ceil((b.until - now) / 1000));
      body.appendChild(row([b.key, b.policy === undefined ? "by hand" : b.policy, fmt(left) + " s"], ["key", "", "n"]));
    });
  }
  function renderStore(store) {
    var badge = document.getElementById("breaker");
    badge.textContent = store.remote ? "breaker " + store.breaker : "in-process";
    badge.className = "badge " + store.breaker;
    document.getElementById("store-kind").textContent = store.kind;
    var body = document.getElementById("store");
    while (body.firstChild) body.removeChild(body.firstChild);
    // An in-process store cannot fail: only a network store has calls, errors and a breaker to show.
    var rows = store.remote ? [["store calls", store.storeCalls], ["errors", store.storeErrors],
      ["timeouts", store.storeTimeouts], ["late replies", store.lateReplies],
      ["decided by fallback", store.fallbacks], ["denials answered from cache", store.cached],
      ["breaker opened", store.breakerOpens]] : [];
    if (store.trackedKeys !== undefined) rows.push(["tracked buckets", store.trackedKeys]);
    if (store.evictions) {
      rows.push(["evicted: full", store.evictions.full]);
      rows.push(["evicted: active", store.evictions.active]);
      rows.push(["evicted: throttled", store.evictions.throttled]);
    }
    rows.forEach(function (r) { body.appendChild(row([r[0], fmt(r[1])], ["", "n"])); });
  }
  function render(data) {
    var names = Object.keys(data.series);
    if (!names.length && !charts.querySelector(".empty")) {
      charts.appendChild(el("p", "empty", "no decisions yet"));
    }
    names.forEach(function (name) {
      var empty = charts.querySelector(".empty");
      if (empty) charts.removeChild(empty);
      if (!panels[name]) panels[name] = panel(name);
      draw(panels[name], data.series[name], data.seconds);
    });
    renderTop(data.top);
    renderBlocked(data.blocked || [], data.now);
    renderStore(data.store);
    status.className = "";
    status.textContent = "updated " + new Date(data.now).toLocaleTimeString();
    document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
  }
  function tick() {
    fetch(url, { cache: "no-store", headers: { accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(render)
      .then(undefined, function (e) {
        status.className = "err";
        status.textContent = "stats unavailable (" + e.message + "); retrying";
      })
      .then(function () { timer = setTimeout(tick, 1000); });
  }
  document.addEventListener("visibilitychange", function () {
    clearTimeout(timer);
    if (!document.hidden) tick();
  });
  tick();
})();
`;

const escapes: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** escapeHtml makes `text` safe inside an HTML attribute or element. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c] as string);
}

/** page renders the dashboard document polling `statsUrl`. */
export function page(statsUrl: string, title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-stats="${escapeHtml(statsUrl)}">
<header><h1>${escapeHtml(title)}</h1><span id="status">loading…</span></header>
<main>
<div id="charts"></div>
<div>
<section><h2>Top limited clients</h2>
<table><thead><tr><th>client key</th><th class="n">limited</th></tr></thead><tbody id="top"></tbody></table>
</section>
<section><h2>Blocked clients</h2>
<table><thead><tr><th>client key</th><th>policy</th><th class="n">ends in</th></tr></thead><tbody id="blocked"></tbody></table>
</section>
<section><h2>Store <span id="store-kind"></span> <span id="breaker" class="badge">…</span></h2>
<table><tbody id="store"></tbody></table>
</section>
</div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
