// The HTTP side of `floodgate serve`: POST /json (envoyproxy/ratelimit's JSON
// form), GET /check (forward auth for nginx, Caddy, Traefik, HAProxy),
// GET /metrics and GET /healthz.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { clientKey } from "../http/proxy.js";
import type { Action, DomainConfig } from "./config.js";
import type { Engine, Verdict } from "./engine.js";
import type { Entry } from "./match.js";
import { jsonResponse, RequestError, readCall } from "./protocol.js";

/** Largest POST /json body read, in bytes. */
const MAX_BODY = 64 * 1024;
const JSON_TYPE = "application/json";
const DETAIL = "Too many requests. Try again later.";

/** HttpDeps is what the HTTP front end asks of the rest of the service. */
export interface HttpDeps {
  readonly engine: Engine;
  /** Prometheus text for GET /metrics. */
  metrics(): string;
  /** Counts calls being decided, so SIGTERM can wait for them. */
  readonly tracker: Tracker;
  /** Logs one line (errors the client cannot see). */
  log(line: string): void;
}

/** Tracker counts calls in flight; `idle` resolves when none is. */
export class Tracker {
  #n = 0;
  #waiters: (() => void)[] = [];
  draining = false;

  get inFlight(): number {
    return this.#n;
  }

  enter(): void {
    this.#n++;
  }

  leave(): void {
    if (--this.#n === 0 && this.#waiters.length > 0) {
      for (const w of this.#waiters.splice(0)) w();
    }
  }

  idle(): Promise<void> {
    return this.#n === 0
      ? Promise.resolve()
      : new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** createHttpServer builds the server (not listening yet). */
export function createHttpServer(deps: HttpDeps): Server {
  // Node enforces headersTimeout and requestTimeout only when it sweeps its
  // connections, every 30 s by default: a client sending its headers a byte at
  // a time (slowloris) would hold a connection for 35 s, not 5. Sweep every second.
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (path === "/check") return track(deps, res, () => check(deps, req, res, url, q));
    if (path === "/json") {
      if (req.method !== "POST")
        return send(res, 405, { error: "use POST /json" }, ["allow", "POST"]);
      return track(deps, res, () => json(deps, req, res));
    }
    if (path === "/healthz") {
      const ok = !deps.tracker.draining;
      return send(res, ok ? 200 : 503, { status: ok ? "ok" : "draining" });
    }
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(deps.metrics());
      return;
    }
    send(res, 404, { error: "not found: use /check, POST /json, /metrics or /healthz" });
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 65_000;
  return server;
}

function track(deps: HttpDeps, res: ServerResponse, work: () => void | Promise<void>): void {
  deps.tracker.enter();
  let done = false;
  const leave = () => {
    if (done) return;
    done = true;
    deps.tracker.leave();
  };
  res.once("finish", leave);
  res.once("close", leave);
  try {
    const r = work();
    if (r instanceof Promise) {
      r.catch((error: unknown) => fail(deps, res, error));
    }
  } catch (error) {
    fail(deps, res, error);
  }
}

function fail(deps: HttpDeps, res: ServerResponse, error: unknown): void {
  if (error instanceof RequestError) {
    send(res, 400, { error: error.message });
    return;
  }
  deps.log(`request failed: ${error instanceof Error ? error.message : String(error)}`);
  if (!res.headersSent) send(res, 500, { error: "internal error" });
  else res.destroy();
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: readonly string[] = [],
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  const h: string[] = [
    "content-type",
    JSON_TYPE,
    "content-length",
    String(Buffer.byteLength(text)),
    ...headers,
  ];
  res.writeHead(status, h);
  res.end(text);
}

function json(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        send(res, 413, { error: `the body must be at most ${MAX_BODY} bytes` }, [
          "connection",
          "close",
        ]);
        req.destroy();
        resolve();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => resolve());
    req.on("end", () => {
      if (size > MAX_BODY) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        send(res, 400, { error: "the body is not JSON" });
        resolve();
        return;
      }
      try {
        const call = readCall(body);
        const v = deps.engine.decide(call.domain, call.descriptors, call.cost);
        const answer = (verdict: Verdict) => {
          send(res, verdict.code === "OK" ? 200 : 429, jsonResponse(verdict), verdict.headers);
          resolve();
        };
        if (v instanceof Promise) v.then(answer, reject);
        else answer(v);
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** domainOf picks the domain a /check call is decided in: `?domain=`, else the only one with http_check. */
function domainOf(deps: HttpDeps, req: IncomingMessage, url: string, q: number): DomainConfig {
  const domains = deps.engine.config.domains;
  let name = q < 0 ? null : queryDomain(url.slice(q + 1));
  name ??= header(req, "x-floodgate-domain") ?? null;
  if (name !== null) {
    const d = domains.get(name);
    if (d?.httpCheck === undefined) {
      throw new RequestError(
        `no config file has domain ${JSON.stringify(name.slice(0, 100))} with an http_check section`,
      );
    }
    return d;
  }
  let only: DomainConfig | undefined;
  for (const d of domains.values()) {
    if (d.httpCheck === undefined) continue;
    if (only !== undefined)
      throw new RequestError("several domains have http_check: name one with /check?domain=NAME");
    only = d;
  }
  if (only === undefined)
    throw new RequestError("no config file has an http_check section: add one to use /check");
  return only;
}

let lastQuery = "";
let lastName: string | null = null;

/** queryDomain reads `domain=` from a query string; a proxy sends the same one every time, so the last is kept. */
function queryDomain(query: string): string | null {
  if (query !== lastQuery) {
    lastName = new URLSearchParams(query).get("domain");
    lastQuery = query;
  }
  return lastName;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(", ") : v;
}

/** entry is one action's descriptor entry for this request, or undefined to skip the descriptor. */
function entry(a: Action, req: IncomingMessage, d: DomainConfig): Entry | undefined {
  switch (a.kind) {
    case "remote_address": {
      const trust = (d.httpCheck as NonNullable<DomainConfig["httpCheck"]>).trust;
      const value = clientKey(
        trust,
        "x-forwarded-for",
        64,
        req.socket.remoteAddress,
        header(req, "x-forwarded-for"),
      );
      return { key: a.key, value };
    }
    case "generic_key":
      return { key: a.key, value: a.value };
    // Values are used whole (the request's head is bounded by Node's 16 KiB):
    // a cut one could miss a wildcard such as "*.png" and go unlimited.
    case "method": {
      const m = header(req, "x-original-method") ?? header(req, "x-forwarded-method") ?? req.method;
      return m === undefined ? undefined : { key: a.key, value: m };
    }
    case "path": {
      const uri = header(req, "x-original-uri") ?? header(req, "x-forwarded-uri");
      if (uri === undefined) return undefined;
      const q = uri.indexOf("?");
      return { key: a.key, value: q < 0 ? uri : uri.slice(0, q) };
    }
    case "request_headers": {
      const v = header(req, a.header);
      return v === undefined ? undefined : { key: a.key, value: v };
    }
  }
}

function check(
  deps: HttpDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  q: number,
): void | Promise<void> {
  const d = domainOf(deps, req, url, q);
  const http = d.httpCheck as NonNullable<DomainConfig["httpCheck"]>;
  const descriptors: Entry[][] = [];
  // As in Envoy: an action that finds nothing (a missing header) drops its whole descriptor.
  outer: for (const actions of http.actions) {
    const list: Entry[] = [];
    for (const a of actions) {
      const e = entry(a, req, d);
      if (e === undefined) continue outer;
      list.push(e);
    }
    descriptors.push(list);
  }
  req.resume();
  const v = deps.engine.decide(d.domain, descriptors, 1);
  const answer = (verdict: Verdict) => {
    if (verdict.code === "OK") {
      res.writeHead(200, [...verdict.headers, "content-length", "0"]);
      res.end();
      return;
    }
    send(res, http.denyStatus, { detail: DETAIL, ...jsonResponse(verdict) }, verdict.headers);
  };
  if (v instanceof Promise) return v.then(answer);
  answer(v);
}
