// The gateway's decisions: a request's descriptors matched to rules, every
// enforced rule charged in one atomic decision (all or none), shadow rules
// decided apart (counted, never denying), the answer as protocol-neutral data
// that the gRPC, JSON and forward-auth front ends each format once.
import { createHash } from "node:crypto";
import { type Decision, decide } from "../core/decision.js";
import type { Policy } from "../core/policy.js";
import { headerList, type PolicySet, policySet } from "../http/headers.js";
import type { RateLimiter } from "../limiter.js";
import { type GatewayConfig, type Rule, UNITS } from "./config.js";
import { type Entry, type Match, match } from "./match.js";
import type { GatewayMetrics } from "./metrics.js";

export type Code = "OK" | "OVER_LIMIT";

/** MAX_UINT32 is what envoyproxy/ratelimit reports as `limit_remaining` of an unlimited descriptor. */
export const MAX_UINT32 = 4_294_967_295;

/** DescriptorStatus is the answer for one descriptor of a request. */
export interface DescriptorStatus {
  readonly code: Code;
  /** The matched rule; undefined when none matched (or it was replaced). */
  readonly rule: Rule | undefined;
  readonly remaining: number;
  /** Milliseconds until the bucket refills (when over the limit: until this request could pass). */
  readonly untilReset: number;
}

/** Verdict is the answer to one request. */
export interface Verdict {
  readonly code: Code;
  readonly statuses: readonly DescriptorStatus[];
  /** Response headers as `[name, value, name, value, ...]`: RateLimit-Policy, RateLimit, Retry-After when over. */
  readonly headers: readonly string[];
  /** Milliseconds until the request could pass; 0 when OK. */
  readonly retryAfter: number;
}

export interface EngineOptions {
  /** Decide every rule in shadow mode: count, never deny (envoyproxy/ratelimit's SHADOW_MODE). */
  readonly shadow: boolean;
  /**
   * The store answers synchronously (the memory store): a request's buckets
   * are then checked and charged in one turn of the event loop, each under
   * its own key, which is atomic. A network store gets one call with every
   * bucket under the domain's key (one Lua script, one Cluster slot).
   */
  readonly local: boolean;
}

/** Planned is a matched, enforceable descriptor: its bucket policy and key. */
interface Planned {
  readonly rule: Rule;
  readonly policy: Policy;
  readonly key: string;
  /** Indexes of the request's descriptors answered by this bucket (identical descriptors share one). */
  readonly at: number[];
}

const OK_EMPTY: DescriptorStatus = Object.freeze({
  code: "OK",
  rule: undefined,
  remaining: 0,
  untilReset: 0,
});
const NO_HEADERS: readonly string[] = Object.freeze([]);
/** Most cached policy lists and header sets; past it the cache starts over. */
const MAX_CACHED = 10_000;

/** Engine decides requests against the current config; `swap` replaces the config at once. */
export class Engine {
  readonly #limiter: RateLimiter;
  readonly #options: EngineOptions;
  readonly #metrics: GatewayMetrics;
  #config: GatewayConfig;
  readonly #sets = new Map<string, PolicySet>();
  readonly #buckets = new Map<string, Policy>();
  readonly #lists = new Map<string, readonly Policy[]>();

  constructor(
    limiter: RateLimiter,
    config: GatewayConfig,
    options: EngineOptions,
    metrics: GatewayMetrics,
  ) {
    this.#limiter = limiter;
    this.#config = config;
    this.#options = options;
    this.#metrics = metrics;
  }

  get config(): GatewayConfig {
    return this.#config;
  }

  /** swap makes `config` the one every later request is decided by. Buckets of unchanged rules keep their state. */
  swap(config: GatewayConfig): void {
    this.#config = config;
    this.#sets.clear();
    this.#buckets.clear();
    this.#lists.clear();
  }

  /**
   * decide answers one request of `domain` with its descriptors, charging
   * `cost` (envoy's `hits_addend`, 0 meaning 1) to every matched bucket.
   */
  decide(
    domain: string,
    descriptors: readonly (readonly Entry[])[],
    cost: number,
  ): Verdict | Promise<Verdict> {
    const c = cost === 0 ? 1 : cost;
    const config = this.#config.domains.get(domain);
    const statuses: DescriptorStatus[] = new Array(descriptors.length).fill(OK_EMPTY);
    if (config === undefined) {
      this.#metrics.request(domain, false, "OK");
      return { code: "OK", statuses, headers: NO_HEADERS, retryAfter: 0 };
    }
    const matches: (Match | undefined)[] = descriptors.map((d) => match(config, d));
    let replaced: Set<string> | undefined;
    for (const m of matches) {
      if (m === undefined || m.rule.replaces.length === 0) continue;
      replaced ??= new Set();
      for (const n of m.rule.replaces) replaced.add(n);
    }
    const enforced: Planned[] = [];
    const shadowed: Planned[] = [];
    let blocked: Rule | undefined;
    for (let i = 0; i < matches.length; i++) {
      const m = matches[i];
      if (m === undefined) continue;
      const rule = m.rule;
      if (replaced !== undefined && rule.name !== undefined && replaced.has(rule.name)) {
        matches[i] = undefined;
        continue;
      }
      if (rule.unlimited) {
        statuses[i] = { code: "OK", rule, remaining: MAX_UINT32, untilReset: 0 };
        this.#metrics.decision(rule.label, "allowed");
        continue;
      }
      const shadow = rule.shadow || this.#options.shadow;
      const p = rule.policy;
      if (p === undefined || c > p.capacity) {
        // requests_per_unit 0, or a cost no bucket of this size can ever hold.
        const status: DescriptorStatus = {
          code: shadow ? "OK" : "OVER_LIMIT",
          rule,
          remaining: 0,
          untilReset: UNITS[rule.unit],
        };
        statuses[i] = status;
        this.#metrics.decision(rule.label, shadow ? "shadow_limited" : "limited");
        if (!shadow) blocked ??= rule;
        continue;
      }
      const list = shadow ? shadowed : enforced;
      const key = this.#options.local ? `${domain}\u0000${m.bucket}` : domain;
      const policy = this.#options.local ? p : this.#bucket(p, m.bucket);
      // By name: the bucket cache may start over between two identical descriptors of one request.
      const same = list.find((x) => x.policy.name === policy.name && x.key === key);
      if (same !== undefined) same.at.push(i);
      else list.push({ rule, policy, key, at: [i] });
    }
    if (blocked !== undefined) {
      // Nothing is charged when a rule refuses the request outright.
      return this.#finish(domain, statuses, enforced, undefined, shadowed, c, blocked);
    }
    const main = enforced.length === 0 ? undefined : this.#check(enforced, c);
    if (main instanceof Promise) {
      return main.then((d) => this.#finish(domain, statuses, enforced, d, shadowed, c, undefined));
    }
    return this.#finish(domain, statuses, enforced, main, shadowed, c, undefined);
  }

  /** finish decides the shadow rules (after the enforced ones) and writes the verdict. */
  #finish(
    domain: string,
    statuses: DescriptorStatus[],
    enforced: readonly Planned[],
    decision: Decision | undefined,
    shadowed: readonly Planned[],
    cost: number,
    blocked: Rule | undefined,
  ): Verdict | Promise<Verdict> {
    if (shadowed.length === 0) return this.#verdict(domain, statuses, enforced, decision, blocked);
    const shadow = this.#check(shadowed, cost);
    const done = (d: Decision): Verdict => {
      this.#fill(statuses, shadowed, d, cost, true);
      return this.#verdict(domain, statuses, enforced, decision, blocked);
    };
    return shadow instanceof Promise ? shadow.then(done) : done(shadow);
  }

  #verdict(
    domain: string,
    statuses: DescriptorStatus[],
    enforced: readonly Planned[],
    decision: Decision | undefined,
    blocked: Rule | undefined,
  ): Verdict {
    let headers = NO_HEADERS;
    let retryAfter = 0;
    let code: Code = "OK";
    if (decision !== undefined) {
      this.#fill(statuses, enforced, decision, 0, false);
      const limited = !decision.allowed;
      if (limited) {
        code = "OVER_LIMIT";
        retryAfter = decision.retryAfter;
      }
      headers = headerList(this.#set(enforced), decision, false, true, limited);
    }
    if (blocked !== undefined) {
      code = "OVER_LIMIT";
      retryAfter = Math.max(retryAfter, UNITS[blocked.unit]);
      if (decision === undefined) {
        headers = ["retry-after", String(Math.ceil(UNITS[blocked.unit] / 1000))];
      }
    }
    this.#metrics.request(domain, true, code);
    return { code, statuses, headers, retryAfter };
  }

  /** fill writes each planned descriptor's status from its bucket in `d`. */
  #fill(
    statuses: DescriptorStatus[],
    planned: readonly Planned[],
    d: Decision,
    cost: number,
    shadow: boolean,
  ): void {
    const outcome = d.allowed ? "allowed" : shadow ? "shadow_limited" : "limited";
    for (let j = 0; j < planned.length; j++) {
      const p = planned[j] as Planned;
      const s = d.policies[j] as Decision["policies"][number];
      const over = !d.allowed && s.retryAfter > 0 && (cost === 0 || s.remaining < cost);
      const status: DescriptorStatus = {
        code: over && !shadow ? "OVER_LIMIT" : "OK",
        rule: p.rule,
        remaining: Math.max(0, s.remaining),
        untilReset: over ? s.retryAfter : Math.max(0, s.resetAt - d.now),
      };
      for (const i of p.at) statuses[i] = status;
      this.#metrics.decision(p.rule.label, outcome);
    }
  }

  /**
   * check charges `cost` to every planned bucket, all or none. With a
   * synchronous store each bucket is looked at, then all are charged, in one
   * turn of the event loop; otherwise one store call holds them all.
   */
  #check(planned: readonly Planned[], cost: number): Decision | Promise<Decision> {
    const limiter = this.#limiter;
    const first = planned[0] as Planned;
    if (!this.#options.local) return limiter.check(first.key, cost, true, this.#list(planned));
    if (planned.length === 1) {
      return limiter.check(first.key, cost, true, [first.policy]) as Decision;
    }
    const looks = planned.map((p) => limiter.check(p.key, cost, false, [p.policy]) as Decision);
    const allowed = looks.every((d) => d.allowed);
    const final = allowed
      ? planned.map((p) => limiter.check(p.key, cost, true, [p.policy]) as Decision)
      : looks;
    // One decision over all the buckets, by the same rule as a multi-policy store call.
    const now = (final[0] as Decision).now;
    const reply: number[] = [now, allowed ? 1 : 0];
    const list: Policy[] = [];
    for (let j = 0; j < planned.length; j++) {
      const s = (final[j] as Decision).policies[0] as Decision["policies"][number];
      reply.push(s.remaining, s.resetAt - s.policy.interval);
      list.push((planned[j] as Planned).policy);
    }
    return decide(list, reply, cost, (final[0] as Decision).reason);
  }

  /**
   * list is the same array for the same buckets every time: the store keeps
   * its per-list plan, and the limiter answers a repeated denial from its
   * cache, only for a list it has seen.
   */
  #list(planned: readonly Planned[]): readonly Policy[] {
    const id =
      planned.length === 1
        ? (planned[0] as Planned).policy.name
        : planned.map((p) => p.policy.name).join(",");
    let list = this.#lists.get(id);
    if (list === undefined) {
      if (this.#lists.size >= MAX_CACHED) this.#lists.clear();
      list = Object.freeze(planned.map((p) => p.policy));
      this.#lists.set(id, list);
    }
    return list;
  }

  /** set is the header text of the planned rules, named by their labels. */
  #set(planned: readonly Planned[]): PolicySet {
    const id = planned.map((p) => p.rule.policy?.name).join(",");
    let set = this.#sets.get(id);
    if (set === undefined) {
      if (this.#sets.size >= MAX_CACHED) this.#sets.clear();
      set = policySet(planned.map((p) => p.rule.shown as Policy));
      this.#sets.set(id, set);
    }
    return set;
  }

  /** bucket is bucketPolicy, cached. */
  #bucket(rule: Policy, bucket: string): Policy {
    const id = `${rule.name}\u0000${bucket}`;
    let p = this.#buckets.get(id);
    if (p === undefined) {
      if (this.#buckets.size >= MAX_CACHED) this.#buckets.clear();
      p = bucketPolicy(rule, bucket);
      this.#buckets.set(id, p);
    }
    return p;
  }
}

/**
 * bucketPolicy is, for a network store, the policy of one bucket of a rule:
 * the rule's numbers under a name made of the rule and the descriptor's
 * values, so all buckets of a domain live under the domain's key (one Cluster
 * slot, as an atomic multi-key script needs) and no two share a name. 22
 * base64url characters of SHA-256 (132 bits): no client can aim at a collision.
 */
export function bucketPolicy(rule: Policy, bucket: string): Policy {
  const digest = createHash("sha256").update(`${rule.name}\u0000${bucket}`).digest("base64url");
  return Object.freeze({ ...rule, name: `b${digest.slice(0, 22)}` });
}
