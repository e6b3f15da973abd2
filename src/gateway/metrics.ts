// GET /metrics of `floodgate serve`: Prometheus text with floodgate's names
// (DESIGN.md, Metrics) plus per-domain counts. Labels come from the config
// (rule labels, domain names), never from what a client sends, so their
// number is bounded by the config.
import type { LimiterStats } from "../limiter.js";

export type Outcome = "allowed" | "limited" | "shadow_limited";

const OUTCOMES: readonly Outcome[] = ["allowed", "limited", "shadow_limited"];
/** The key of requests naming a domain no file defines (never the name a client sent). */
const UNKNOWN = "\u0000unknown";

/** GatewayMetrics counts the service's decisions and answers. */
export class GatewayMetrics {
  /** Rule label -> counts by outcome, in OUTCOMES order. */
  readonly #decisions = new Map<string, number[]>();
  /** Domain -> [OK, OVER_LIMIT] answers. */
  readonly #requests = new Map<string, number[]>();
  #reloads = 0;
  #reloadErrors = 0;

  /** decision counts one rule's outcome in one request. */
  decision(label: string, outcome: Outcome): void {
    let counts = this.#decisions.get(label);
    if (counts === undefined) {
      counts = [0, 0, 0];
      this.#decisions.set(label, counts);
    }
    (counts[OUTCOMES.indexOf(outcome)] as number)++;
  }

  /** request counts one answer of a domain (`known` false: a domain no file defines). */
  request(domain: string, known: boolean, code: "OK" | "OVER_LIMIT"): void {
    const name = known ? domain : UNKNOWN;
    let counts = this.#requests.get(name);
    if (counts === undefined) {
      counts = [0, 0];
      this.#requests.set(name, counts);
    }
    (counts[code === "OK" ? 0 : 1] as number)++;
  }

  reloaded(ok: boolean): void {
    if (ok) this.#reloads++;
    else this.#reloadErrors++;
  }

  /** render is the Prometheus text exposition of everything counted. */
  render(stats: LimiterStats, inFlight: number): string {
    const out: string[] = [];
    const counter = (name: string, help: string, rows: Iterable<[string, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [labels, v] of rows) out.push(`${name}${labels === "" ? "" : `{${labels}}`} ${v}`);
    };
    const decisions: [string, number][] = [];
    for (const [label, counts] of this.#decisions) {
      OUTCOMES.forEach((o, i) => {
        const n = counts[i] as number;
        if (n !== 0) decisions.push([`policy="${label}",outcome="${o}"`, n]);
      });
    }
    counter("floodgate_decisions_total", "Rule decisions by policy and outcome.", decisions);
    const requests: [string, number][] = [];
    for (const [domain, counts] of this.#requests) {
      const d = domain === UNKNOWN ? "(unknown)" : labelValue(domain);
      const [ok = 0, over = 0] = counts;
      if (ok !== 0) requests.push([`domain="${d}",code="OK"`, ok]);
      if (over !== 0) requests.push([`domain="${d}",code="OVER_LIMIT"`, over]);
    }
    counter(
      "floodgate_gateway_requests_total",
      "Rate-limit requests answered, by domain and overall code.",
      requests,
    );
    counter("floodgate_store_errors_total", "Store calls that failed or timed out.", [
      ["", stats.storeErrors + stats.storeTimeouts],
    ]);
    counter("floodgate_fallback_decisions_total", "Decisions made while the store failed.", [
      ["", stats.fallbacks],
    ]);
    counter("floodgate_cached_denials_total", "Denials answered without asking the store.", [
      ["", stats.cached],
    ]);
    counter("floodgate_gateway_reloads_total", "Config reloads, by result.", [
      ['result="ok"', this.#reloads],
      ['result="error"', this.#reloadErrors],
    ]);
    out.push(
      "# HELP floodgate_breaker_open 1 while the store's circuit breaker is open.",
      "# TYPE floodgate_breaker_open gauge",
      `floodgate_breaker_open ${stats.breaker === "closed" ? 0 : 1}`,
      "# HELP floodgate_gateway_in_flight Calls being decided now.",
      "# TYPE floodgate_gateway_in_flight gauge",
      `floodgate_gateway_in_flight ${inFlight}`,
    );
    return `${out.join("\n")}\n`;
  }
}

function labelValue(text: string): string {
  return text.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}
