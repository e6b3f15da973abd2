import { LIMITS, type ProbeOptions } from "./args.js";
import { type InferredPolicy, inferPolicy, type Observation, type RefillCheck } from "./infer.js";

export type { Observation, RefillCheck } from "./infer.js";

import { readRateLimitHeaders } from "./rate-limit-headers.js";

/** ProbeReport is everything one probe run found. */
export interface ProbeReport {
  readonly url: string;
  readonly method: string;
  readonly mode: "burst" | "rate";
  /** Rate mode only: the rate and duration actually used. */
  readonly rate: ProbeOptions["rate"];
  readonly requests: readonly Observation[];
  readonly totals: { readonly allowed: number; readonly blocked: number };
  readonly policy: InferredPolicy;
  readonly refill: RefillCheck;
  /** Rate-limit headers present but unreadable (named once each). */
  readonly invalidHeaders: readonly string[];
}

/** ProgressEvent is what the probe reports while it runs, for a progress display on stderr. */
export type ProgressEvent =
  | { readonly kind: "burst"; readonly sent: number; readonly total: number }
  | {
      readonly kind: "rate";
      readonly sent: number;
      readonly total: number;
      readonly elapsed: number;
      readonly duration: number;
      readonly allowed: number;
      readonly blocked: number;
    }
  | { readonly kind: "wait"; readonly left: number; readonly total: number }
  | { readonly kind: "refill"; readonly sent: number }
  | { readonly kind: "end" };

/** ProbeDeps is the outside world the probe touches, injected so tests control time. */
export interface ProbeDeps {
  readonly fetch: typeof fetch;
  /** Epoch milliseconds. */
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly progress: (event: ProgressEvent) => void;
}

/** ProbeError ends a probe early; `exitCode` is what the CLI exits with, the message is one line. */
export class ProbeError extends Error {
  override name = "ProbeError" as const;

  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** EXIT codes of `floodgate probe`. */
export const EXIT = { ok: 0, failed: 1, usage: 2, noHeaders: 3 } as const;

// Requests in flight at once in rate mode: bounds the probe's sockets when the server is slow.
const MAX_IN_FLIGHT = 64;
const TICK_MS = 250;
/**
 * Bytes of a body read so the connection can be reused; past this the body is
 * dropped unread (a server cannot fill the probe's memory). In rate mode up to
 * MAX_IN_FLIGHT bodies are read at once, so this bounds them all together too.
 */
export const MAX_BODY = 64 * 1024;
/** Milliseconds a body may take to arrive after its headers before it is dropped unread. */
export const DRAIN_MS = 1000;
/**
 * Most requests the refill check sends, whatever limit the headers announce:
 * the same cap as --requests, so a server announcing a huge limit (or a
 * legitimate 5000 an hour) cannot make the probe send without end.
 */
export const MAX_REFILL_CHECK = LIMITS.requests.max;

/**
 * probe runs one `floodgate probe`: a burst (or steady traffic in rate mode),
 * a wait, then a refill check that sends until the first 429. It throws
 * ProbeError when the URL cannot be reached, a request fails, or no response
 * carried rate-limit headers.
 */
export async function probe(options: ProbeOptions, deps: ProbeDeps): Promise<ProbeReport> {
  const client = new Client(options, deps);
  try {
    const requests =
      options.rate === null
        ? await client.burst(options.requests)
        : await client.steady(options.rate.perSecond, options.rate.duration);
    const withHeaders = requests.filter((o) => o.headers.found.length > 0);
    if (withHeaders.length === 0) {
      const statuses = [...new Set(requests.map((o) => o.status))].join(", ");
      throw new ProbeError(
        `${options.url.href} answered ${requests.length} requests (status ${statuses}) without rate-limit headers (X-RateLimit-*, RateLimit, RateLimit-Policy)`,
        EXIT.noHeaders,
      );
    }
    const limit = withHeaders.find((o) => o.headers.limit !== null)?.headers.limit ?? null;
    const refill = await client.refill(options.wait, limit ?? options.requests);
    const totals = {
      allowed: requests.filter((o) => o.status !== 429).length,
      blocked: requests.filter((o) => o.status === 429).length,
    };
    return {
      url: options.url.href,
      method: options.method,
      mode: options.rate === null ? "burst" : "rate",
      rate: options.rate,
      requests,
      totals,
      policy: inferPolicy(requests, refill, options.rate?.perSecond ?? null),
      refill,
      invalidHeaders: [...new Set(requests.flatMap((o) => o.headers.invalid))],
    };
  } finally {
    deps.progress({ kind: "end" });
  }
}

class Client {
  private start = 0;
  private readonly abort = new AbortController();

  constructor(
    private readonly options: ProbeOptions,
    private readonly deps: ProbeDeps,
  ) {}

  async burst(count: number): Promise<Observation[]> {
    this.start = this.deps.now();
    const out: Observation[] = [];
    for (let n = 1; n <= count; n++) {
      out.push(await this.send(n, count));
      this.deps.progress({ kind: "burst", sent: n, total: count });
    }
    return out;
  }

  async steady(perSecond: number, duration: number): Promise<Observation[]> {
    const total = Math.max(1, Math.round(perSecond * duration));
    const gap = 1000 / perSecond;
    const out: Observation[] = new Array(total);
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let allowed = 0;
    let blocked = 0;
    // The first request runs alone, so an unreachable URL fails once, not
    // once per request already in flight.
    this.start = this.deps.now();
    out[0] = await this.send(1, total);
    if (out[0].status === 429) blocked++;
    else allowed++;
    for (let i = 1; i < total && failure === undefined; i++) {
      const due = this.start + i * gap;
      const early = due - this.deps.now();
      if (early > 0) await this.deps.sleep(early);
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      if (failure !== undefined) break;
      const task = this.send(i + 1, total).then(
        (o) => {
          out[i] = o;
          if (o.status === 429) blocked++;
          else allowed++;
        },
        (error: unknown) => {
          failure ??= error;
          this.abort.abort();
        },
      );
      const tracked = task.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      this.deps.progress({
        kind: "rate",
        sent: i + 1,
        total,
        elapsed: (this.deps.now() - this.start) / 1000,
        duration,
        allowed,
        blocked,
      });
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    return out;
  }

  async refill(wait: number, limit: number): Promise<RefillCheck> {
    const total = wait * 1000;
    const begin = this.deps.now();
    for (;;) {
      const left = total - (this.deps.now() - begin);
      this.deps.progress({ kind: "wait", left: Math.max(0, left) / 1000, total: wait });
      if (left <= 0) break;
      await this.deps.sleep(Math.min(left, TICK_MS));
    }
    // Sending past a full bucket proves nothing more: stop one over the limit,
    // and never send more than a burst may (the limit is the server's word).
    const most = Math.floor(Math.min(Math.max(0, limit), MAX_REFILL_CHECK)) + 1;
    let allowed = 0;
    let blocked = 0;
    for (let n = 1; n <= most; n++) {
      const o = await this.send(n, most, "refill check");
      this.deps.progress({ kind: "refill", sent: n });
      if (o.status === 429) {
        blocked++;
        break;
      }
      allowed++;
    }
    return { waited: wait, allowed, blocked };
  }

  private async send(n: number, total: number, phase = "request"): Promise<Observation> {
    const sentAt = this.deps.now();
    const { url, method, headers, timeout } = this.options;
    let response: Response;
    try {
      response = await this.deps.fetch(url, {
        method,
        headers: headers.map(([k, v]): [string, string] => [k, v]),
        redirect: "manual",
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeout * 1000)]),
      });
    } catch (error) {
      const reason = describeFailure(error, timeout);
      if (n === 1 && phase === "request") {
        throw new ProbeError(`cannot reach ${url.href}: ${reason}`, EXIT.failed);
      }
      throw new ProbeError(
        `${phase} ${n} of ${total} to ${url.href} failed: ${reason}`,
        EXIT.failed,
      );
    }
    // The status and headers are what the probe reads; the body is only
    // drained so the connection is reused for the next request.
    await drain(response);
    const parsed = readRateLimitHeaders(response.headers, this.deps.now());
    return {
      n,
      t: sentAt - this.start,
      status: response.status,
      remaining: parsed.remaining,
      reset: parsed.reset,
      retryAfter: parsed.retryAfter,
      headers: parsed,
    };
  }
}

/**
 * drain reads and drops at most MAX_BODY bytes of a response's body, for at
 * most DRAIN_MS, so a short body leaves the connection open for the next
 * request. A longer body, one that breaks off (a reset) or one still coming
 * after DRAIN_MS is cancelled: it says nothing about the rate limit, and
 * waiting for it or holding it would let a server stall the probe or fill
 * its memory. Never throws.
 */
export async function drain(response: Response, ms = DRAIN_MS): Promise<void> {
  const body = response.body;
  if (body === null) return;
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  try {
    reader = body.getReader();
  } catch {
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  let read = 0;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), late]);
      if (next === "late" || next.done) break;
      read += next.value.byteLength;
      if (read > MAX_BODY) break;
    }
  } catch {
    // Reset or aborted mid-body: the answer's status and headers already came.
  } finally {
    clearTimeout(timer);
  }
  await reader.cancel().catch(() => {});
}

/** describeFailure turns a fetch rejection into a few words: the system error code when there is one. */
export function describeFailure(error: unknown, timeout: number): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `no answer within ${timeout} s`;
  }
  if (error instanceof DOMException && error.name === "AbortError") return "aborted";
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === "string") {
    const detail = typeof cause.message === "string" ? cause.message : "";
    return detail.includes(cause.code) ? detail : `${cause.code} ${detail}`.trim();
  }
  if (cause && typeof cause.message === "string") return cause.message;
  return error instanceof Error ? error.message : String(error);
}
