import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { ConfigError } from "../core/errors.js";
import { checkInteger, checkOptions } from "../core/options.js";
import { ownCopy } from "../core/own-copy.js";
import type { Outcome } from "../events.js";
import type { BreakerState, LimiterStats, RateLimiter } from "../limiter.js";
import type { TopKey } from "../top-keys.js";
import { page, SCRIPT, STYLE } from "./dashboard-page.js";
import { DecisionSeries, type PolicySeries } from "./series.js";

/** DashboardRequest is what the dashboard reads of a request, whatever the framework. */
export interface DashboardRequest {
  readonly method: string;
  /** The path and query as the client sent them, e.g. `/ratelimit/stats.json`. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders | Readonly<Record<string, string | string[] | undefined>>;
  /** The socket's peer address (not a forwarded header). */
  readonly remoteAddress: string | undefined;
}

/** DashboardResponse is the dashboard's answer, for the adapter to send as is. */
export interface DashboardResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface DashboardOptions {
  /** The limiter to show: its decisions from now on, its top limited clients, its store. */
  limiter: RateLimiter;
  /**
   * Who may see the page and its stats (client keys are on it): required.
   * `loopbackOnly` admits local clients; or check a session, a token, a VPN range.
   * Requests it refuses get 403.
   */
  guard: (request: DashboardRequest) => boolean | Promise<boolean>;
  /** Where the page is mounted: `path` serves the page, `path + "/stats.json"` the data. Default `"/ratelimit"`. */
  path?: string | undefined;
  /** Seconds of history the chart shows: 60 to 3600. Default 300. */
  history?: number | undefined;
  /** Top limited clients listed: 1 to 100. Default 10. */
  top?: number | undefined;
  /** The page's title. Default `"floodgate"`. */
  title?: string | undefined;
}

/** DashboardStore is the store's health as the page shows it. */
export interface DashboardStore extends Omit<LimiterStats, "breaker"> {
  /** The store's class name, e.g. `"MemoryStore"`, `"RedisStore"`. */
  kind: string;
  /** True for a network store (it has a timeout): calls, errors and the breaker apply. */
  remote: boolean;
  breaker: BreakerState;
  trackedKeys?: number;
  evictions?: { full: number; active: number; throttled: number };
}

/** BlockedClient is a key kept out by a block (a policy's blockFor, or limiter.block). */
export interface BlockedClient {
  key: string;
  /** Epoch ms the block ends, by the store's clock. */
  until: number;
  /** The policy whose blockFor started it; undefined for a block made by hand. */
  policy?: string;
}

/** DashboardStats is the JSON the stats endpoint serves. */
export interface DashboardStats {
  /** Epoch ms of the snapshot, by the limiter's clock. */
  now: number;
  /** Seconds each series covers, one entry a second. */
  seconds: number;
  /** Decisions per second by policy, oldest first; the last entry is the second under way. */
  series: Record<string, PolicySeries>;
  /** Decisions by outcome since the dashboard was created. */
  totals: Record<Outcome, number>;
  top: TopKey[];
  /** Blocks in force, the latest ending first, at most `top` of them. */
  blocked: BlockedClient[];
  store: DashboardStore;
  policies: { name: string; capacity: number; refillRate: number; interval: number }[];
}

/** Dashboard serves the page and its stats; mount `node`, `fetch` or `handle` in any framework. */
export interface Dashboard {
  /** The path the dashboard answers under. */
  readonly path: string;
  /** handle answers a request under `path`, and returns undefined for any other URL (pass it on). */
  handle(request: DashboardRequest): Promise<DashboardResponse | undefined>;
  /** node answers a node:http (or Express, Koa `ctx.req`/`ctx.res`) request under `path`; false: not ours, pass it on. */
  node(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** fetch answers a Fetch API request under `path` (Hono, Bun, Deno); undefined: not ours. */
  fetch(request: Request, remoteAddress: string | undefined): Promise<Response | undefined>;
  /** stats returns what the stats endpoint serves now. */
  stats(): DashboardStats;
  /** stop stops counting decisions. */
  stop(): void;
}

/** Blocks remembered at most (keys are already bounded by the limiter's digest of long keys). */
const MAX_BLOCKED = 1000;
const PATH = /^\/(?:[A-Za-z0-9._~-]+\/)*[A-Za-z0-9._~-]+$/;
const OPTIONS = new Set(["limiter", "guard", "path", "history", "top", "title"]);
const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
/** The page may run its own script and style, fetch its stats, and nothing else. */
const CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
const COMMON = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** loopbackOnly is a guard admitting clients on this machine (127.0.0.0/8, ::1), by the socket's address only. */
export function loopbackOnly(request: DashboardRequest): boolean {
  const a = request.remoteAddress;
  if (a === undefined) return false;
  const v4 = a.startsWith("::ffff:") ? a.slice(7) : a;
  return a === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * dashboard builds a live page for `options.limiter`: decisions per second
 * (allowed vs limited) per policy over the last minutes, the top limited
 * clients, and the store's health and breaker. It is self-contained (no CDN,
 * no network beyond its own stats) and answers only requests `guard`
 * admits. Nothing is served until an adapter mounts it.
 */
export function dashboard(options: DashboardOptions): Dashboard {
  checkOptions(options, OPTIONS, {
    name: "options",
    kind: "dashboard",
    prefix: "",
    example: "dashboard({ limiter, guard: loopbackOnly })",
  });
  const { limiter, guard, path = "/ratelimit", title = "floodgate" } = options;
  if (typeof limiter !== "object" || limiter === null || typeof limiter.topLimited !== "function") {
    throw new ConfigError(
      "limiter",
      limiter,
      "must be a RateLimiter",
      "dashboard({ limiter, guard }) with the limiter your middleware uses",
    );
  }
  if (typeof guard !== "function") {
    throw new ConfigError(
      "guard",
      guard,
      "must be a function deciding who may see the dashboard (client keys are on it)",
      "pass guard: loopbackOnly, or (request) => isAdmin(request)",
    );
  }
  if (typeof path !== "string" || !PATH.test(path)) {
    throw new ConfigError(
      "path",
      path,
      "must be an absolute URL path without a trailing slash, e.g. /ratelimit",
      'pass path: "/ratelimit" or "/admin/ratelimit"',
    );
  }
  if (typeof title !== "string" || title.length > 200) {
    throw new ConfigError(
      "title",
      title,
      "must be a string of at most 200 characters",
      'pass title: "api rate limits"',
    );
  }
  const history = checkInteger(
    "history",
    options.history ?? 300,
    60,
    3600,
    "pass history: 300 (five minutes)",
  );
  const topN = checkInteger("top", options.top ?? 10, 1, 100, "pass top: 10");

  const series = new DecisionSeries(history);
  const totals: Record<Outcome, number> = {
    allowed: 0,
    limited: 0,
    shadow_limited: 0,
    fallback_allowed: 0,
    fallback_limited: 0,
  };
  const offDecision = limiter.events.on("decision", (outcome, decision) => {
    totals[outcome]++;
    // The decision's own instant: no second clock read per request.
    series.add(decision.policy, outcome, decision.now);
  });
  // Blocks as they start; those that ended drop out when read or when the list is full.
  const blocks = new Map<string, BlockedClient>();
  const forgetEnded = (now: number) => {
    for (const [key, b] of blocks) if (b.until <= now) blocks.delete(key);
  };
  const offBlock = limiter.events.on("block", (key, until, policy) => {
    const known = blocks.get(key);
    if (known !== undefined && known.until >= until) return;
    blocks.delete(key);
    if (blocks.size >= MAX_BLOCKED) forgetEnded(limiter.clock());
    // Still full: the block remembered longest goes.
    if (blocks.size >= MAX_BLOCKED) blocks.delete(blocks.keys().next().value as string);
    // A copy: the limiter's key may be a view into the whole header it was cut from.
    const own = ownCopy(key);
    blocks.set(own, policy === undefined ? { key: own, until } : { key: own, until, policy });
  });
  const off = () => {
    offDecision();
    offBlock();
  };
  const html = page(`${path}/stats.json`, title);

  const blocked = (now: number): BlockedClient[] => {
    forgetEnded(now);
    return [...blocks.values()]
      .sort((a, b) => b.until - a.until)
      .slice(0, topN)
      .map((b) => ({ ...b }));
  };

  const stats = (): DashboardStats => {
    const now = limiter.clock();
    const s = limiter.stats();
    const store: DashboardStore = {
      ...s,
      kind: limiter.store.constructor?.name ?? "Store",
      remote: limiter.store.timeout !== undefined,
    };
    const memory = (limiter.store as { stats?: () => unknown }).stats?.() as
      | { trackedKeys?: unknown; evictions?: DashboardStore["evictions"] }
      | undefined;
    if (typeof memory?.trackedKeys === "number") store.trackedKeys = memory.trackedKeys;
    if (typeof memory?.evictions === "object") store.evictions = { ...memory.evictions };
    return {
      now,
      seconds: history,
      series: series.snapshot(now),
      totals: { ...totals },
      top: limiter.topLimited(topN),
      blocked: blocked(now),
      store,
      policies: limiter.policies.map((p) => ({
        name: p.name,
        capacity: p.capacity,
        refillRate: p.refillRate,
        interval: p.interval,
      })),
    };
  };

  // A guard that throws or rejects refuses: a request it cannot judge (a
  // header missing, a session store down) gets 403, never an error that the
  // docs' `await board.node(req, res)` would leave unhandled, killing the process.
  const admits = async (request: DashboardRequest): Promise<boolean> => {
    try {
      return Boolean(await guard(request));
    } catch {
      return false;
    }
  };

  const handle = async (request: DashboardRequest): Promise<DashboardResponse | undefined> => {
    const q = request.url.indexOf("?");
    const pathname = q < 0 ? request.url : request.url.slice(0, q);
    const which =
      pathname === path || pathname === `${path}/`
        ? "page"
        : pathname === `${path}/stats.json`
          ? "stats"
          : undefined;
    if (which === undefined) return undefined;
    if (!(await admits(request))) {
      return {
        status: 403,
        headers: { ...COMMON, "content-type": "text/plain; charset=utf-8" },
        body: "Forbidden\n",
      };
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return {
        status: 405,
        headers: { ...COMMON, allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" },
        body: "Method Not Allowed\n",
      };
    }
    if (which === "stats") {
      return {
        status: 200,
        headers: { ...COMMON, "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify(stats()),
      };
    }
    return {
      status: 200,
      headers: {
        ...COMMON,
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": CSP,
        "x-frame-options": "DENY",
      },
      body: html,
    };
  };

  return {
    path,
    handle,
    stats,
    stop: off,
    async node(req, res) {
      // Express strips its mount path from req.url; originalUrl keeps what the client asked.
      const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? "/";
      const answer = await handle({
        method: req.method ?? "GET",
        url,
        headers: req.headers,
        remoteAddress: req.socket?.remoteAddress,
      });
      if (answer === undefined) return false;
      res.writeHead(answer.status, {
        ...answer.headers,
        "content-length": String(Buffer.byteLength(answer.body)),
      });
      res.end(req.method === "HEAD" ? undefined : answer.body);
      return true;
    },
    async fetch(request, remoteAddress) {
      const u = new URL(request.url);
      const headers: Record<string, string> = {};
      request.headers.forEach((value, name) => {
        headers[name] = value;
      });
      const answer = await handle({
        method: request.method,
        url: u.pathname + u.search,
        headers,
        remoteAddress,
      });
      if (answer === undefined) return undefined;
      return new Response(request.method === "HEAD" ? null : answer.body, {
        status: answer.status,
        headers: answer.headers,
      });
    },
  };
}

export type { PolicySeries } from "./series.js";
