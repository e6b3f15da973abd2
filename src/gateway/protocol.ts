// The Envoy rate limit request and response as plain data, shared by the gRPC
// service and POST /json: one reader of what a client sends (bounded, never
// trusting its shape) and one writer of the answer.
import type { Unit } from "./config.js";
import type { DescriptorStatus, Verdict } from "./engine.js";
import type { Entry } from "./match.js";

/** RateLimitCall is a validated RateLimitRequest. */
export interface RateLimitCall {
  readonly domain: string;
  readonly descriptors: readonly (readonly Entry[])[];
  /** `hits_addend`; 0 means 1. */
  readonly cost: number;
}

/**
 * Bounds on what one request may carry, so no client can make a call cost
 * without bound. They apply to what Envoy's config decides (how many
 * descriptors, entries, the keys and the domain), never to a value: a value
 * is client text (a header, a path, a query parameter), and refusing it would
 * be an error that Envoy's default `failure_mode_deny: false` lets through.
 * Values are bounded by the message (gRPC 1 MiB, POST /json 64 KiB) and
 * decided whole; a long one is kept as a digest wherever a bucket is named.
 */
export const LIMITS = Object.freeze({
  descriptors: 64,
  entries: 16,
  text: 4096,
});

const UNIT_NAMES: Record<Unit, string> = {
  second: "SECOND",
  minute: "MINUTE",
  hour: "HOUR",
  day: "DAY",
  week: "WEEK",
  month: "MONTH",
  year: "YEAR",
};

/** RequestError is a request floodgate cannot decide; its message says what is wrong. */
export class RequestError extends Error {
  override name = "RequestError" as const;
}

function text(value: unknown, what: string, bounded = true): string {
  if (typeof value !== "string") throw new RequestError(`${what} must be a string`);
  if (bounded && value.length > LIMITS.text)
    throw new RequestError(`${what} is longer than ${LIMITS.text} characters`);
  return value;
}

/**
 * MAX_COST is where a cost saturates: far above any bucket (capacities stop at
 * 1e9), so a larger `hits_addend` is over every limit, exactly as it would be
 * unsaturated, and never reaches the limiter's arithmetic.
 */
export const MAX_COST = Number.MAX_SAFE_INTEGER;
/** The largest value of a uint64 field (per-descriptor `hits_addend`). */
const MAX_UINT64 = 2 ** 64;

function count(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  // protojson writes 64-bit integers as strings; wrappers arrive as { value }.
  const raw = typeof value === "object" ? (value as { value?: unknown }).value : value;
  const n = typeof raw === "string" && /^\d{1,20}$/.test(raw) ? Number(raw) : raw;
  // Envoy's hits_addend is a uint32 (a uint64 per descriptor): any such value
  // is a cost. One above every capacity is over the limit, not a bad request
  // (an error would let Envoy's default failure_mode_deny: false pass it).
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > MAX_UINT64) {
    throw new RequestError(`${what} must be a whole number from 0 to 2^64 - 1`);
  }
  return Math.min(n, MAX_COST);
}

/**
 * readCall validates a RateLimitRequest as decoded from protobuf or JSON
 * (snake_case or protojson's camelCase field names).
 */
export function readCall(body: unknown): RateLimitCall {
  if (typeof body !== "object" || body === null)
    throw new RequestError("the request must be an object");
  const b = body as Record<string, unknown>;
  const domain = text(b.domain ?? "", "domain");
  if (domain === "") throw new RequestError("domain is required");
  const list = b.descriptors ?? [];
  if (!Array.isArray(list)) throw new RequestError("descriptors must be a list");
  if (list.length > LIMITS.descriptors) {
    throw new RequestError(`a request may hold at most ${LIMITS.descriptors} descriptors`);
  }
  let cost = count(b.hits_addend ?? b.hitsAddend, "hits_addend") ?? 0;
  let each: number | undefined;
  const descriptors = list.map((d: unknown, i: number) => {
    const entries = (d as { entries?: unknown } | null)?.entries;
    if (!Array.isArray(entries) || entries.length === 0) {
      throw new RequestError(`descriptors[${i}].entries must be a non-empty list`);
    }
    if (entries.length > LIMITS.entries) {
      throw new RequestError(`descriptors[${i}] may hold at most ${LIMITS.entries} entries`);
    }
    const own = count(
      (d as Record<string, unknown>).hits_addend ?? (d as Record<string, unknown>).hitsAddend,
      `descriptors[${i}].hits_addend`,
    );
    if (own !== undefined) {
      if (each !== undefined && each !== own) {
        throw new RequestError(
          "descriptors with different hits_addend cannot be decided together; send one request per cost",
        );
      }
      each = own;
    }
    return entries.map((e: unknown, j: number): Entry => {
      const entry = (e ?? {}) as Record<string, unknown>;
      const key = text(entry.key, `descriptors[${i}].entries[${j}].key`);
      if (key === "")
        throw new RequestError(`descriptors[${i}].entries[${j}].key must not be empty`);
      const value = text(entry.value ?? "", `descriptors[${i}].entries[${j}].value`, false);
      return { key, value };
    });
  });
  if (each !== undefined) cost = each;
  return { domain, descriptors, cost };
}

/** Seconds and nanos of a google.protobuf.Duration. */
export function duration(ms: number): { seconds: number; nanos: number } {
  const whole = Math.max(0, Math.round(ms));
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 };
}

/** limitOf is a status's `current_limit`, or undefined when no rule (or an unlimited one) decided it. */
function limitOf(s: DescriptorStatus) {
  const r = s.rule;
  if (r === undefined || r.unlimited) return undefined;
  return { name: r.name ?? "", requests_per_unit: r.requestsPerUnit, unit: UNIT_NAMES[r.unit] };
}

/** headerPairs turns `[name, value, ...]` into HeaderValue messages. */
export function headerPairs(headers: readonly string[]): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    out.push({ key: headers[i] as string, value: headers[i + 1] as string });
  }
  return out;
}

/** grpcResponse is a verdict as a RateLimitResponse for @grpc/proto-loader (snake_case, enum names). */
export function grpcResponse(v: Verdict) {
  return {
    overall_code: v.code,
    statuses: v.statuses.map((s) => {
      const limit = limitOf(s);
      return {
        code: s.code,
        ...(limit === undefined ? {} : { current_limit: limit }),
        limit_remaining: s.remaining,
        ...(s.rule === undefined || s.rule.unlimited
          ? {}
          : { duration_until_reset: duration(s.untilReset) }),
      };
    }),
    response_headers_to_add: headerPairs(v.headers),
  };
}

/**
 * jsonResponse is a verdict in protojson's form, as envoyproxy/ratelimit's
 * `/json` endpoint answers it (camelCase, durations as "1.5s").
 */
export function jsonResponse(v: Verdict) {
  return {
    overallCode: v.code,
    statuses: v.statuses.map((s) => {
      const limit = limitOf(s);
      return {
        code: s.code,
        ...(limit === undefined
          ? {}
          : {
              currentLimit: {
                ...(limit.name === "" ? {} : { name: limit.name }),
                requestsPerUnit: limit.requests_per_unit,
                unit: limit.unit,
              },
            }),
        ...(s.remaining === 0 ? {} : { limitRemaining: s.remaining }),
        ...(s.rule === undefined || s.rule.unlimited
          ? {}
          : { durationUntilReset: `${Math.max(0, Math.round(s.untilReset)) / 1000}s` }),
      };
    }),
    ...(v.headers.length === 0 ? {} : { responseHeadersToAdd: headerPairs(v.headers) }),
  };
}
