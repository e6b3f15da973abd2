import { parseArgs } from "node:util";

/** ProbeOptions is a validated `floodgate probe` command line. Durations are in seconds. */
export interface ProbeOptions {
  readonly url: URL;
  /** Requests in the burst. */
  readonly requests: number;
  /** Seconds to wait before the refill check. */
  readonly wait: number;
  readonly method: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly json: boolean;
  /** Seconds before one request is given up. */
  readonly timeout: number;
  /** Rate mode: steady traffic instead of a burst; null for a burst. */
  readonly rate: { readonly perSecond: number; readonly duration: number } | null;
  /** Path of the HTML report to write (rate mode only); null for none. */
  readonly html: string | null;
}

/** ParsedArgs is a command line and the notices (caps applied) to show the user. */
export interface ParsedArgs {
  readonly options: ProbeOptions;
  readonly notices: readonly string[];
}

/** UsageError is a bad command line; its message is one line saying what to fix. */
export class UsageError extends Error {
  override name = "UsageError" as const;
}

/** Defaults and caps of the probe's options, shown in the help text. */
export const LIMITS = {
  requests: { default: 15, max: 1000 },
  wait: { default: 3, max: 300 },
  timeout: { default: 10, max: 120 },
  rate: { max: 200 },
  duration: { default: 10, max: 120 },
} as const;

/** HELP is the probe's usage text. */
export const HELP = `Usage: floodgate probe URL [options]

Sends a burst of requests to URL and shows how it is rate limited: per request
the status and the rate-limit headers, the totals, the policy the headers
announce, and how many requests pass again after waiting.

Burst mode (the default):
  -n, --requests N     requests in the burst (default ${LIMITS.requests.default}, at most ${LIMITS.requests.max})
  -w, --wait S         seconds to wait before the refill check (default ${LIMITS.wait.default}, at most ${LIMITS.wait.max})

Rate mode:
  -r, --rate R         send R requests per second instead of a burst (at most ${LIMITS.rate.max})
  -d, --duration S     for S seconds (default ${LIMITS.duration.default}, at most ${LIMITS.duration.max})
      --html FILE      also write the report as a self-contained HTML page

Both:
  -X, --method M       HTTP method (default GET)
  -H, --header "K: V"  add a request header; repeatable
  -t, --timeout S      seconds before a request is given up (default ${LIMITS.timeout.default})
      --json           print one JSON object on stdout instead of the table
  -h, --help           show this help

Exit codes: 0 done, 1 URL unreachable or a request failed, 2 bad command line,
3 the URL answered without rate-limit headers.
`;

/**
 * parseProbeArgs validates the arguments after `probe`. It throws UsageError
 * for anything it cannot use, and caps values above the maxima in LIMITS
 * (saying so in `notices`) so a typo cannot flood a server.
 */
export function parseProbeArgs(argv: readonly string[]): ParsedArgs {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    // node:util explains some mistakes over several lines; the CLI promises one.
    throw new UsageError((error as Error).message.replace(/\s*\n\s*/g, " "));
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "missing URL: floodgate probe http://127.0.0.1:8000/data"
        : `expected one URL, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  const url = parseUrl(positionals[0] as string);
  const notices: string[] = [];
  const number = (
    flag: string,
    raw: string | undefined,
    fallback: number,
    max: number,
    opts: { integer?: boolean; zero?: boolean } = {},
  ): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    const ok =
      raw.trim() !== "" &&
      Number.isFinite(value) &&
      (opts.zero ? value >= 0 : value > 0) &&
      (!opts.integer || Number.isInteger(value));
    if (!ok) {
      const kind = opts.integer ? "a whole number" : "a number";
      throw new UsageError(
        `--${flag} must be ${kind} ${opts.zero ? ">= 0" : "> 0"}, got ${JSON.stringify(raw)}`,
      );
    }
    if (value > max) {
      notices.push(`--${flag} ${raw} is above the maximum; using ${max}`);
      return max;
    }
    return value;
  };

  const requests = number(
    "requests",
    values.requests,
    LIMITS.requests.default,
    LIMITS.requests.max,
    {
      integer: true,
    },
  );
  const wait = number("wait", values.wait, LIMITS.wait.default, LIMITS.wait.max, { zero: true });
  const timeout = number("timeout", values.timeout, LIMITS.timeout.default, LIMITS.timeout.max);

  let rate: ProbeOptions["rate"] = null;
  if (values.rate !== undefined) {
    if (values.requests !== undefined) {
      throw new UsageError("--requests is for a burst; with --rate give --duration instead");
    }
    rate = {
      perSecond: number("rate", values.rate, 0, LIMITS.rate.max),
      duration: number("duration", values.duration, LIMITS.duration.default, LIMITS.duration.max),
    };
  } else if (values.duration !== undefined) {
    throw new UsageError("--duration needs --rate, e.g. --rate 5 --duration 10");
  }
  if (values.html !== undefined && rate === null) {
    throw new UsageError(
      "--html needs --rate: the page charts a steady run, e.g. --rate 5 --html probe.html",
    );
  }
  if (values.html === "") throw new UsageError("--html needs a file name");

  const method = (values.method ?? "GET").toUpperCase();
  if (!/^[A-Z]+$/.test(method)) {
    throw new UsageError(
      `--method must be an HTTP method such as GET, got ${JSON.stringify(values.method)}`,
    );
  }
  // fetch refuses these outright; say so here rather than as an unreachable URL.
  if (method === "CONNECT" || method === "TRACE" || method === "TRACK") {
    throw new UsageError(
      `--method ${method} cannot be sent by the probe; use GET, HEAD, POST or another method`,
    );
  }

  return {
    options: {
      url,
      requests,
      wait,
      method,
      headers: (values.header ?? []).map(parseHeader),
      json: values.json ?? false,
      timeout,
      rate,
      html: values.html ?? null,
    },
    notices,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      requests: { type: "string", short: "n" },
      wait: { type: "string", short: "w" },
      method: { type: "string", short: "X" },
      header: { type: "string", short: "H", multiple: true },
      timeout: { type: "string", short: "t" },
      json: { type: "boolean" },
      rate: { type: "string", short: "r" },
      duration: { type: "string", short: "d" },
      html: { type: "string" },
    },
  });
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(raw)} (try http://127.0.0.1:8000/data)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(
      `only http and https URLs can be probed, got ${url.protocol} (try http://127.0.0.1:8000/data)`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    // fetch refuses a URL with credentials; never echo the password back.
    throw new UsageError(
      `the URL must not hold a user or password; send them as a header instead: --header "Authorization: Basic ..."`,
    );
  }
  return url;
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** parseHeader reads `--header "Name: value"`. */
export function parseHeader(raw: string): readonly [string, string] {
  const colon = raw.indexOf(":");
  const name = colon < 0 ? "" : raw.slice(0, colon).trim();
  if (!HEADER_NAME.test(name)) {
    throw new UsageError(`--header must look like "Name: value", got ${JSON.stringify(raw)}`);
  }
  const value = raw.slice(colon + 1).trim();
  // fetch refuses these: a line break or NUL would end the header early, and
  // a header value is bytes (Latin-1), not any Unicode text.
  if (/[\0\r\n]/.test(value)) {
    throw new UsageError(
      `--header ${name} has a line break or NUL in its value; give the value on one line`,
    );
  }
  if (/[\u0100-\uffff]/.test(value)) {
    throw new UsageError(
      `--header ${name} has a character that is not Latin-1 in its value; percent-encode it`,
    );
  }
  return [name, value];
}
