import { createRequire } from "node:module";
import type { Decision } from "../core/decision.js";
import { ConfigError, FloodgateError } from "../core/errors.js";
import { checkOptions } from "../core/options.js";
import { type AdjustOperation, OUTCOMES, type Outcome } from "../events.js";
import type { RateLimiter } from "../limiter.js";

/**
 * RegistryLike is the part of a prom-client `Registry` floodgate uses. Typed
 * by shape, so that importing `floodgate/prometheus` needs prom-client only
 * when `prometheusMetrics` is called.
 */
export interface RegistryLike {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

const OPTIONS = ["registry", "prefix", "nearLimitRatio", "durationBuckets"];

export interface PrometheusOptions {
  /** The prom-client Registry to register on. Default: prom-client's global `register`. */
  registry?: RegistryLike | undefined;
  /** Prepended to every metric name, like prom-client's own `prefix`: `"api_"` gives `api_floodgate_decisions_total`. Default `""`. */
  prefix?: string | undefined;
  /** A policy counts a near-limit decision when an allowed request leaves it under this share of its capacity. Default 0.2. */
  nearLimitRatio?: number | undefined;
  /** Upper bounds in seconds of the store call duration buckets. */
  durationBuckets?: readonly number[] | undefined;
}

/** PrometheusMetrics is what `prometheusMetrics` registered; serve `metrics()` as `contentType`. */
export interface PrometheusMetrics {
  readonly registry: RegistryLike;
  /** contentType is the registry's exposition format, for the Content-Type header. */
  readonly contentType: string;
  /** metrics renders every metric of the registry (not only floodgate's) for a scrape. */
  metrics(): Promise<string>;
  /** stop removes floodgate's listeners and unregisters its metrics. */
  stop(): void;
}

/** Policies tracked by name; further names are counted under OTHER so the series stay bounded. */
const MAX_POLICIES = 256;
const OTHER = "_other";
/** The policy label of a block made by hand (`limiter.block`), which no policy started. */
const BY_HAND = "_by_hand";
const OPERATIONS: readonly AdjustOperation[] = ["refund", "settle", "block"];
const NEAR = OUTCOMES.length;
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

interface Metric {
  reset(): void;
}
interface LabeledCounter extends Metric {
  inc(labels: Record<string, string>, value: number): void;
}
interface PlainGauge extends Metric {
  set(value: number): void;
}
interface PlainHistogram extends Metric {
  observe(value: number): void;
}
interface MetricConfig {
  name: string;
  help: string;
  labelNames?: string[];
  buckets?: number[];
  registers: unknown[];
  collect?: () => void;
}
interface PromClient {
  register: RegistryLike;
  Counter: new (config: MetricConfig) => LabeledCounter;
  Gauge: new (config: MetricConfig) => PlainGauge;
  Histogram: new (config: MetricConfig) => PlainHistogram;
}

/** MemoryStats is what a store with `stats()` (MemoryStore) reports. */
interface MemoryStats {
  trackedKeys: number;
  evictions: Record<string, number>;
}

let promClient: PromClient | undefined;

/** loadPromClient requires prom-client on first use, from where floodgate is installed. */
function loadPromClient(): PromClient {
  if (promClient !== undefined) return promClient;
  // The CommonJS build gets import.meta.url from tsup's shim.
  try {
    promClient = createRequire(import.meta.url)("prom-client") as PromClient;
  } catch (error) {
    throw new FloodgateError(
      "ERR_FLOODGATE_PROM_CLIENT",
      `floodgate: prometheusMetrics needs the prom-client package, which could not be loaded (${(error as Error).message}). Fix: npm install prom-client`,
      { cause: error },
    );
  }
  return promClient;
}

/**
 * prometheusMetrics registers floodgate's metrics for `limiter` on a
 * prom-client registry: `floodgate_decisions_total{policy, outcome}`,
 * `floodgate_near_limit_total{policy}`, `floodgate_store_duration_seconds`,
 * `floodgate_store_errors_total{kind}`, `floodgate_fallback_decisions_total`,
 * `floodgate_breaker_open`, `floodgate_tracked_keys`,
 * `floodgate_evictions_total{kind}`, and for charges after the fact
 * `floodgate_refunds_total`, `floodgate_refunded_tokens_total`,
 * `floodgate_settled_tokens_total{direction}` (charged, refunded),
 * `floodgate_debt_dropped_tokens_total`, `floodgate_blocks_total{policy}`
 * and `floodgate_settle_errors_total{operation}`. Labels never carry a client key.
 * Decisions count from this call on; store and memory figures are read from
 * the limiter at each scrape. Throws ConfigError when prom-client is missing.
 */
export function prometheusMetrics(
  limiter: RateLimiter,
  options: PrometheusOptions = {},
): PrometheusMetrics {
  if (typeof limiter !== "object" || limiter === null || typeof limiter.events !== "object") {
    throw new ConfigError(
      "limiter",
      limiter,
      "must be a RateLimiter",
      "prometheusMetrics(new RateLimiter({ policy }), { registry })",
    );
  }
  checkOptions(options, OPTIONS, {
    name: "options",
    kind: "prometheusMetrics",
    prefix: "",
    example: "prometheusMetrics(limiter, { registry })",
  });
  const { prefix = "", nearLimitRatio = 0.2 } = options;
  if (typeof prefix !== "string" || (prefix !== "" && !METRIC_NAME.test(prefix))) {
    throw new ConfigError(
      "prefix",
      prefix,
      "must be a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)",
      'pass prefix: "myapp_"',
    );
  }
  if (typeof nearLimitRatio !== "number" || !(nearLimitRatio > 0 && nearLimitRatio < 1)) {
    throw new ConfigError(
      "nearLimitRatio",
      nearLimitRatio,
      "must be a number between 0 and 1",
      "pass nearLimitRatio: 0.2 (remaining under 20% of capacity)",
    );
  }
  const buckets = [...(options.durationBuckets ?? DURATION_BUCKETS)];
  if (
    buckets.length === 0 ||
    buckets.some(
      (b, i) => !(b > 0 && Number.isFinite(b)) || (i > 0 && b <= (buckets[i - 1] as number)),
    )
  ) {
    throw new ConfigError(
      "durationBuckets",
      options.durationBuckets,
      "must be increasing finite numbers of seconds > 0 (prom-client adds the +Inf bucket itself)",
      "pass durationBuckets: [0.001, 0.005, 0.025, 0.1]",
    );
  }
  const client = loadPromClient();
  const registry = options.registry ?? client.register;
  const registers = [registry];
  const name = (n: string) => `${prefix}floodgate_${n}`;
  const names = [
    "decisions_total",
    "near_limit_total",
    "store_duration_seconds",
    "store_errors_total",
    "fallback_decisions_total",
    "breaker_open",
    "tracked_keys",
    "evictions_total",
    "refunds_total",
    "refunded_tokens_total",
    "settled_tokens_total",
    "debt_dropped_tokens_total",
    "blocks_total",
    "settle_errors_total",
  ].map(name);
  // Checked before registering any: prom-client would throw at the first name
  // taken, leaving the metrics registered before it in the registry for good.
  const taken = names.find((n) => registry.getSingleMetric(n) !== undefined);
  if (taken !== undefined) {
    throw new ConfigError(
      options.registry === undefined
        ? "registry (default: prom-client's global register)"
        : "registry",
      taken,
      "already holds this metric (prometheusMetrics was called on it before, for this limiter or another)",
      'call stop() on the earlier one first, or give each limiter its own registry or prefix: prometheusMetrics(limiter, { registry: new Registry() }) or { prefix: "api_" }',
    );
  }

  // Per-request counts stay in plain arrays (no label hashing on the hot path)
  // and are copied into prom-client's counters when scraped.
  const tallies = new Map<string, Float64Array>();
  const tally = (policy: string): Float64Array => {
    let t = tallies.get(policy);
    if (t === undefined) {
      if (tallies.size >= MAX_POLICIES && policy !== OTHER) return tally(OTHER);
      t = new Float64Array(OUTCOMES.length + 1);
      tallies.set(policy, t);
    }
    return t;
  };
  const index = new Map<Outcome, number>(OUTCOMES.map((o, i) => [o, i]));
  const count = (policy: string, i: number): void => {
    const t = tally(policy);
    t[i] = (t[i] as number) + 1;
  };
  const onDecision = (outcome: Outcome, d: Decision): void => {
    count(d.policy, index.get(outcome) as number);
    if (!d.allowed) return;
    for (const p of d.policies) if (p.remaining < p.limit * nearLimitRatio) count(p.name, NEAR);
  };

  // Charges after the fact: refunds, settles, blocks (few, so counted as they come).
  const after = { refunds: 0, refunded: 0, charged: 0, given: 0, dropped: 0 };
  const blocks = new Map<string, number>();
  const settleErrors = new Map<AdjustOperation, number>(OPERATIONS.map((o) => [o, 0]));
  const onRefund = (_key: string, tokens: number): void => {
    after.refunds++;
    after.refunded += tokens;
  };
  const onSettle = (_key: string, extra: number, dropped: number): void => {
    if (extra >= 0) after.charged += extra;
    else after.given -= extra;
    after.dropped += dropped;
  };
  const onBlock = (_key: string, _until: number, policy: string | undefined): void => {
    let label = policy ?? BY_HAND;
    if (!blocks.has(label) && blocks.size >= MAX_POLICIES) label = OTHER;
    blocks.set(label, (blocks.get(label) ?? 0) + 1);
  };
  const onSettleError = (_error: unknown, operation: AdjustOperation): void => {
    settleErrors.set(operation, (settleErrors.get(operation) ?? 0) + 1);
  };

  const memory = (): MemoryStats | undefined => {
    const store = limiter.store as { stats?: () => unknown };
    if (typeof store.stats !== "function") return undefined;
    const s = store.stats() as Partial<MemoryStats> | undefined;
    return typeof s?.trackedKeys === "number" && typeof s.evictions === "object"
      ? (s as MemoryStats)
      : undefined;
  };

  new client.Counter({
    name: name("decisions_total"),
    help: "Rate limit decisions by the most restrictive policy and outcome (allowed, limited, shadow_limited, fallback_allowed, fallback_limited).",
    labelNames: ["policy", "outcome"],
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      for (const [policy, t] of tallies) {
        OUTCOMES.forEach((outcome, i) => {
          this.inc({ policy, outcome }, t[i] as number);
        });
      }
    },
  });
  new client.Counter({
    name: name("near_limit_total"),
    help: `Allowed decisions that left a policy under ${nearLimitRatio * 100}% of its capacity.`,
    labelNames: ["policy"],
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      for (const [policy, t] of tallies) this.inc({ policy }, t[NEAR] as number);
    },
  });
  const duration = new client.Histogram({
    name: name("store_duration_seconds"),
    help: "Time the store took to answer a decision, in seconds.",
    buckets,
    registers,
  });
  new client.Counter({
    name: name("store_errors_total"),
    help: "Store calls that failed (kind error) or missed their deadline (kind timeout); onStoreError decided those requests.",
    labelNames: ["kind"],
    registers,
    collect(this: LabeledCounter) {
      const s = limiter.stats();
      this.reset();
      this.inc({ kind: "error" }, s.storeErrors);
      this.inc({ kind: "timeout" }, s.storeTimeouts);
    },
  });
  new client.Counter({
    name: name("fallback_decisions_total"),
    help: "Decisions made by onStoreError (insurance, allow or deny) while the store failed.",
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      this.inc({}, limiter.stats().fallbacks);
    },
  });
  new client.Gauge({
    name: name("breaker_open"),
    help: "1 while the circuit breaker keeps calls away from the store (open or probing), else 0.",
    registers,
    collect(this: PlainGauge) {
      this.set(limiter.stats().breaker === "closed" ? 0 : 1);
    },
  });
  new client.Gauge({
    name: name("tracked_keys"),
    help: "Buckets the memory store holds, over all policies (full buckets are not kept).",
    registers,
    collect(this: PlainGauge) {
      this.set(memory()?.trackedKeys ?? 0);
    },
  });
  new client.Counter({
    name: name("evictions_total"),
    help: "Buckets dropped: by the memory store, kind full (invisible to clients), active, or throttled (that client got a fresh burst: raise maxKeys); kind store, a throttled bucket the network store lost (Redis maxmemory eviction).",
    labelNames: ["kind"],
    registers,
    collect(this: LabeledCounter) {
      const s = memory();
      this.reset();
      for (const kind of ["full", "active", "throttled"]) {
        this.inc({ kind }, s?.evictions[kind] ?? 0);
      }
      this.inc({ kind: "store" }, limiter.stats().storeEvictions);
    },
  });

  new client.Counter({
    name: name("refunds_total"),
    help: "Refunds applied to the store (limiter.refund, or the HTTP refund option returning true).",
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      this.inc({}, after.refunds);
    },
  });
  new client.Counter({
    name: name("refunded_tokens_total"),
    help: "Tokens those refunds gave back (a bucket never goes above capacity, so some may have changed nothing).",
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      this.inc({}, after.refunded);
    },
  });
  new client.Counter({
    name: name("settled_tokens_total"),
    help: "Tokens reservations settled beyond their estimate (direction charged, including any dropped beyond maxDebt) or gave back below it (direction refunded).",
    labelNames: ["direction"],
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      this.inc({ direction: "charged" }, after.charged);
      this.inc({ direction: "refunded" }, after.given);
    },
  });
  new client.Counter({
    name: name("debt_dropped_tokens_total"),
    help: "Tokens settles did not charge because they would have taken a bucket deeper than its policy's maxDebt.",
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      this.inc({}, after.dropped);
    },
  });
  new client.Counter({
    name: name("blocks_total"),
    help: `Blocks started, by the policy whose blockFor started it (${BY_HAND}: limiter.block by hand).`,
    labelNames: ["policy"],
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      for (const [policy, n] of blocks) this.inc({ policy }, n);
    },
  });
  new client.Counter({
    name: name("settle_errors_total"),
    help: "Refunds, settles and blocks the store failed or missed the deadline of (never retried).",
    labelNames: ["operation"],
    registers,
    collect(this: LabeledCounter) {
      this.reset();
      for (const [operation, n] of settleErrors) this.inc({ operation }, n);
    },
  });

  const offs = [
    limiter.events.on("decision", onDecision),
    limiter.events.on("store-call", (seconds) => duration.observe(seconds)),
    limiter.events.on("refund", onRefund),
    limiter.events.on("settle", onSettle),
    limiter.events.on("block", onBlock),
    limiter.events.on("settle-error", onSettleError),
  ];
  let stopped = false;
  return {
    registry,
    get contentType() {
      return registry.contentType;
    },
    metrics: () => registry.metrics(),
    stop() {
      // Once: a second stop must not remove what a later call registered under the same names.
      if (stopped) return;
      stopped = true;
      for (const off of offs) off();
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}
