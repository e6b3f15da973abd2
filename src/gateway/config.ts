// The gateway's configuration: envoyproxy/ratelimit's YAML format, accepted as
// is, plus floodgate's `burst` and the top-level `http_check` section. Parsing
// is pure (text in, a frozen GatewayConfig out); reading files is load.ts's job.
import { createHash } from "node:crypto";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import { FloodgateError } from "../core/errors.js";
import { type Policy, policy } from "../core/policy.js";
import { compileTrust, type Trust } from "../http/proxy.js";

/** UNITS maps envoyproxy/ratelimit's units to milliseconds (its month is 30 days, its year 365). */
export const UNITS = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 7 * 86_400_000,
  month: 30 * 86_400_000,
  year: 365 * 86_400_000,
} as const;

export type Unit = keyof typeof UNITS;

/** Rule is one `rate_limit` block. */
export interface Rule {
  /** Label shown in headers and metrics: the rule's `name`, else its descriptor path. */
  readonly label: string;
  readonly unit: Unit;
  readonly requestsPerUnit: number;
  readonly unlimited: boolean;
  readonly shadow: boolean;
  /** `replaces: [{ name }]`: names of rules this one drops when both match. */
  readonly replaces: readonly string[];
  /** `rate_limit.name`, when given. */
  readonly name: string | undefined;
  /**
   * The token bucket, named by a digest of the domain, the rule's place in
   * the tree and its numbers: a reload that leaves them alone keeps the
   * name, so its buckets keep their state. Undefined when unlimited or when
   * `requests_per_unit` is 0 (always over the limit, as in envoyproxy/ratelimit).
   */
  readonly policy: Policy | undefined;
  /** The same bucket named by `label`, for response headers. */
  readonly shown: Policy | undefined;
  /** Where the rule was written: `file:line`. */
  readonly at: string;
}

/** DescriptorNode is one entry of a `descriptors` list. */
export interface DescriptorNode {
  readonly key: string;
  readonly value: string | undefined;
  /** For a value with `*`: its pieces, matched in order against `key_value`. */
  readonly wildcard: readonly string[] | undefined;
  readonly shareThreshold: boolean;
  readonly rule: Rule | undefined;
  readonly children: Level;
}

/** Level is one descriptor list, indexed as envoyproxy/ratelimit looks it up. */
export interface Level {
  /** `key_value` -> entry with that value. */
  readonly exact: ReadonlyMap<string, DescriptorNode>;
  /** Entries whose value has a `*`, in file order. */
  readonly wildcards: readonly DescriptorNode[];
  /** `key` -> entry without a value. */
  readonly byKey: ReadonlyMap<string, DescriptorNode>;
}

/** Action is one Envoy-style action of `http_check`; each makes one descriptor entry. */
export type Action =
  | { readonly kind: "remote_address"; readonly key: string }
  | {
      readonly kind: "request_headers";
      readonly key: string;
      readonly header: string;
      readonly skipIfAbsent: boolean;
    }
  | { readonly kind: "generic_key"; readonly key: string; readonly value: string }
  | { readonly kind: "method"; readonly key: string }
  | { readonly kind: "path"; readonly key: string };

/** HttpCheck is a domain's `http_check` section: how `GET /check` builds descriptors. */
export interface HttpCheck {
  readonly actions: readonly (readonly Action[])[];
  readonly trust: Trust;
  readonly denyStatus: number;
}

export interface DomainConfig {
  readonly domain: string;
  readonly root: Level;
  readonly httpCheck: HttpCheck | undefined;
  readonly file: string;
}

/** GatewayConfig is every domain the service knows, validated whole. */
export interface GatewayConfig {
  readonly domains: ReadonlyMap<string, DomainConfig>;
}

/**
 * GatewayConfigError is one mistake in a config file: the file, the line,
 * the key, what is wrong and how to fix it, printed on one line.
 */
export class GatewayConfigError extends FloodgateError {
  override name = "GatewayConfigError" as const;
  readonly file: string;
  readonly line: number;
  readonly key: string;

  constructor(file: string, line: number, key: string, what: string, fix: string) {
    super("ERR_FLOODGATE_GATEWAY_CONFIG", `${file}:${line}: ${key} ${what}. Fix: ${fix}`);
    this.file = file;
    this.line = line;
    this.key = key;
  }
}

const DOMAIN_KEYS = new Set(["domain", "descriptors", "http_check"]);
const DESCRIPTOR_KEYS = new Set([
  "key",
  "value",
  "rate_limit",
  "shadow_mode",
  "descriptors",
  "detailed_metric",
  "value_to_metric",
  "share_threshold",
  "quota_mode",
]);
const RATE_LIMIT_KEYS = new Set([
  "unit",
  "requests_per_unit",
  "name",
  "unlimited",
  "burst",
  "replaces",
]);
const HTTP_CHECK_KEYS = new Set(["actions", "trust_proxy", "deny_status"]);
const LABEL = /[^A-Za-z0-9_-]+/g;
const MAX_COUNT = 1e9;
/** Deepest descriptor nesting: a request carries at most 16 entries (see protocol.ts). */
const MAX_DEPTH = 16;

/** Parser walks one file's YAML with the line of every node at hand. */
class Parser {
  readonly #file: string;
  readonly #lines: LineCounter;

  constructor(file: string, lines: LineCounter) {
    this.#file = file;
    this.#lines = lines;
  }

  line(node: Node | null | undefined): number {
    const offset = node?.range?.[0];
    return offset === undefined ? 1 : this.#lines.linePos(offset).line;
  }

  fail(node: Node | null | undefined, key: string, what: string, fix: string): never {
    throw new GatewayConfigError(this.#file, this.line(node), key, what, fix);
  }

  at(node: Node | null | undefined): string {
    return `${this.#file}:${this.line(node)}`;
  }

  map(node: unknown, key: string, fix: string): YAMLMap<unknown, unknown> {
    if (!isMap(node)) this.fail(node as Node, key, "must be a mapping", fix);
    return node as YAMLMap<unknown, unknown>;
  }

  /** entries lists a mapping's keys and value nodes, refusing keys not in `allowed`. */
  entries(map: YAMLMap<unknown, unknown>, path: string, allowed: Set<string>): Map<string, Node> {
    const out = new Map<string, Node>();
    for (const pair of map.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!allowed.has(k)) {
        this.fail(
          pair.key as Node,
          `${path}${k}`,
          "is not a known setting",
          `use one of ${[...allowed].join(", ")} (check the spelling and the indentation)`,
        );
      }
      out.set(k, pair.value as Node);
    }
    return out;
  }

  string(node: Node | undefined, key: string, fix: string): string {
    if (!isScalar(node) || node.value === null || typeof node.value === "object") {
      this.fail(node, key, "must be a string", fix);
    }
    // As written: `value: 1.0` is the text "1.0" (as in envoyproxy/ratelimit), not the number 1.
    const text =
      node.type === "PLAIN" && typeof node.source === "string" ? node.source : String(node.value);
    if (text === "") this.fail(node, key, "must not be empty", fix);
    return text;
  }

  boolean(node: Node | undefined, key: string): boolean {
    if (node === undefined || (isScalar(node) && node.value === null)) return false;
    if (!isScalar(node) || typeof node.value !== "boolean") {
      this.fail(node, key, "must be true or false", `write ${key.split(".").pop()}: true`);
    }
    return node.value as boolean;
  }

  count(node: Node | undefined, key: string, min: number, fix: string): number {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > MAX_COUNT) {
      this.fail(node, key, `must be a whole number from ${min} to ${MAX_COUNT}`, fix);
    }
    return v;
  }
}

/**
 * parseConfigFile validates one file's text and returns its domain. Every
 * mistake is a GatewayConfigError naming the file, the line and the key.
 */
export function parseConfigFile(file: string, text: string): DomainConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const p = new Parser(file, lines);
  const error = doc.errors[0];
  if (error !== undefined) {
    const line = lines.linePos(error.pos[0]).line;
    throw new GatewayConfigError(
      file,
      line,
      "(yaml)",
      `is not valid YAML: ${error.message.split("\n")[0]}`,
      "fix the YAML syntax on that line (indent with spaces, quote values with ':' or '#')",
    );
  }
  const top = p.map(doc.contents, "(top level)", "start the file with domain: and descriptors:");
  const fields = p.entries(top, "", DOMAIN_KEYS);
  if (!fields.has("domain")) p.fail(top, "domain", "is required", "add domain: my_domain");
  const domain = p.string(
    fields.get("domain"),
    "domain",
    "add domain: <a name for this set of limits>",
  );
  const rules: Rule[] = [];
  const root = level(p, fields.get("descriptors"), "descriptors", domain, [], rules);
  checkReplaces(p, rules, top);
  const httpCheck = fields.has("http_check")
    ? parseHttpCheck(p, fields.get("http_check") as Node)
    : undefined;
  return Object.freeze({ domain, root, httpCheck, file });
}

function level(
  p: Parser,
  node: Node | undefined,
  path: string,
  domain: string,
  trail: readonly string[],
  rules: Rule[],
): Level {
  const exact = new Map<string, DescriptorNode>();
  const wildcards: DescriptorNode[] = [];
  const byKey = new Map<string, DescriptorNode>();
  if (node === undefined || (isScalar(node) && node.value === null)) {
    return { exact, wildcards, byKey };
  }
  if (!isSeq(node)) {
    p.fail(node, path, "must be a list", `write ${path}: followed by "- key: ..." entries`);
  }
  if (trail.length >= MAX_DEPTH) {
    p.fail(
      node,
      path,
      `nests deeper than ${MAX_DEPTH} levels`,
      "no request carries that many entries: flatten the descriptors",
    );
  }
  node.items.forEach((item, i) => {
    const here = `${path}[${i}]`;
    const map = p.map(item, here, 'each descriptor is a mapping such as "- key: remote_address"');
    const f = p.entries(map, `${here}.`, DESCRIPTOR_KEYS);
    if (!f.has("key")) p.fail(map, `${here}.key`, "is required", "add key: <descriptor key>");
    const key = p.string(f.get("key"), `${here}.key`, "give the descriptor's key");
    const valueNode = f.get("value");
    const value =
      valueNode === undefined
        ? undefined
        : p.string(valueNode, `${here}.value`, "give a value or leave value out");
    const id = value === undefined ? key : `${key}_${value}`;
    const wildcard = value?.includes("*") ? id.split("*") : undefined;
    const shareThreshold = p.boolean(f.get("share_threshold"), `${here}.share_threshold`);
    if (shareThreshold && wildcard === undefined) {
      p.fail(
        f.get("share_threshold"),
        `${here}.share_threshold`,
        "applies only to a value with a wildcard",
        "give a value ending in * (e.g. files/*), or remove share_threshold",
      );
    }
    const shadow = p.boolean(f.get("shadow_mode"), `${here}.shadow_mode`);
    for (const flag of ["detailed_metric", "value_to_metric", "quota_mode"]) {
      p.boolean(f.get(flag), `${here}.${flag}`);
    }
    const next = [...trail, value === undefined ? key : `${key}=${value}`];
    const rule = f.has("rate_limit")
      ? parseRule(p, f.get("rate_limit") as Node, `${here}.rate_limit`, domain, next, shadow)
      : undefined;
    if (rule !== undefined) rules.push(rule);
    const children = level(p, f.get("descriptors"), `${here}.descriptors`, domain, next, rules);
    const entry: DescriptorNode = { key, value, wildcard, shareThreshold, rule, children };
    const taken =
      value === undefined
        ? byKey.has(key)
        : exact.has(id) || wildcards.some((w) => w.value === value && w.key === key);
    if (taken) {
      p.fail(
        f.get("key"),
        here,
        `repeats the descriptor ${JSON.stringify(id)} of this list`,
        "merge the two entries into one (one entry per key and value in a list)",
      );
    }
    if (value === undefined) byKey.set(key, entry);
    else if (wildcard !== undefined) wildcards.push(entry);
    else exact.set(id, entry);
  });
  return { exact, wildcards, byKey };
}

function parseRule(
  p: Parser,
  node: Node,
  path: string,
  domain: string,
  trail: readonly string[],
  shadow: boolean,
): Rule {
  const map = p.map(node, path, "write rate_limit: { unit: second, requests_per_unit: 10 }");
  const f = p.entries(map, `${path}.`, RATE_LIMIT_KEYS);
  const unlimited = p.boolean(f.get("unlimited"), `${path}.unlimited`);
  const nameNode = f.get("name");
  const name =
    nameNode === undefined
      ? undefined
      : p.string(nameNode, `${path}.name`, "give the limit a name");
  const replaces: string[] = [];
  const rep = f.get("replaces");
  if (rep !== undefined) {
    if (!isSeq(rep))
      p.fail(rep, `${path}.replaces`, "must be a list", "write replaces: [{ name: other_limit }]");
    rep.items.forEach((item, i) => {
      const m = p.map(item, `${path}.replaces[${i}]`, "write - name: other_limit");
      const rf = p.entries(m, `${path}.replaces[${i}].`, new Set(["name"]));
      replaces.push(
        p.string(rf.get("name"), `${path}.replaces[${i}].name`, "name the limit to replace"),
      );
    });
  }
  const label = labelOf(name, trail);
  const at = p.at(node);
  if (unlimited) {
    for (const k of ["unit", "requests_per_unit", "burst"]) {
      if (f.has(k)) {
        p.fail(
          f.get(k),
          `${path}.${k}`,
          "cannot be set on an unlimited limit",
          `remove ${k}, or remove unlimited: true`,
        );
      }
    }
    return Object.freeze({
      label,
      unit: "second",
      requestsPerUnit: 0,
      unlimited,
      shadow,
      replaces,
      name,
      policy: undefined,
      shown: undefined,
      at,
    });
  }
  const unitNode = f.get("unit");
  const unitText = isScalar(unitNode) ? String(unitNode.value).toLowerCase() : undefined;
  if (unitText === undefined || !(unitText in UNITS)) {
    p.fail(
      unitNode ?? map,
      `${path}.unit`,
      unitNode === undefined
        ? "is required"
        : `is ${JSON.stringify(unitNode && isScalar(unitNode) ? unitNode.value : "")}, not a unit`,
      `use one of ${Object.keys(UNITS).join(", ")}`,
    );
  }
  const unit = unitText as Unit;
  if (!f.has("requests_per_unit")) {
    p.fail(map, `${path}.requests_per_unit`, "is required", "add requests_per_unit: 10");
  }
  const rpu = p.count(
    f.get("requests_per_unit"),
    `${path}.requests_per_unit`,
    0,
    "give the requests allowed per unit, e.g. requests_per_unit: 10 (0 blocks every request)",
  );
  const burst = f.has("burst")
    ? p.count(
        f.get("burst"),
        `${path}.burst`,
        1,
        "give the most requests allowed at once, e.g. burst: 20",
      )
    : undefined;
  if (rpu === 0) {
    if (burst !== undefined)
      p.fail(
        f.get("burst"),
        `${path}.burst`,
        "cannot be set when requests_per_unit is 0",
        "remove burst",
      );
    return Object.freeze({
      label,
      unit,
      requestsPerUnit: 0,
      unlimited,
      shadow,
      replaces,
      name,
      policy: undefined,
      shown: undefined,
      at,
    });
  }
  const interval = UNITS[unit];
  const capacity = burst ?? rpu;
  const id = createHash("sha256")
    .update(`${domain}\0${trail.join("\0")}\0${unit}\0${rpu}\0${capacity}`)
    .digest("base64url")
    .slice(0, 22);
  const bucket = policy({ name: `g${id}`, capacity, refillRate: rpu, interval });
  const shown = policy({ name: label, capacity, refillRate: rpu, interval });
  return Object.freeze({
    label,
    unit,
    requestsPerUnit: rpu,
    unlimited,
    shadow,
    replaces,
    name,
    policy: bucket,
    shown,
    at,
  });
}

/** labelOf is a rule's label: its name, else its descriptor path, as letters, digits, '_' and '-'. */
function labelOf(name: string | undefined, trail: readonly string[]): string {
  const raw = name ?? trail.join("_");
  const clean = raw
    .replace(LABEL, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 64);
  return clean === "" ? "limit" : clean;
}

function checkReplaces(p: Parser, rules: readonly Rule[], top: Node): void {
  const names = new Set(rules.map((r) => r.name).filter((n) => n !== undefined));
  for (const r of rules) {
    for (const n of r.replaces) {
      if (!names.has(n)) {
        p.fail(
          top,
          `replaces: ${n} (at ${r.at})`,
          "names no rate_limit of this domain",
          `give a rate_limit name: ${n}, or fix the name`,
        );
      }
    }
  }
}

function parseHttpCheck(p: Parser, node: Node): HttpCheck {
  const map = p.map(
    node,
    "http_check",
    "write http_check: { actions: [[{ remote_address: {} }]] }",
  );
  const f = p.entries(map, "http_check.", HTTP_CHECK_KEYS);
  const actionsNode = f.get("actions");
  if (!isSeq(actionsNode) || actionsNode.items.length === 0) {
    p.fail(
      actionsNode ?? map,
      "http_check.actions",
      "must be a non-empty list of descriptors",
      "write actions: [[{ remote_address: {} }]]",
    );
  }
  const actions = actionsNode.items.map((d, i) => {
    const path = `http_check.actions[${i}]`;
    if (!isSeq(d) || d.items.length === 0) {
      p.fail(
        d as Node,
        path,
        "must be a non-empty list of actions",
        "write - [{ remote_address: {} }]",
      );
    }
    return d.items.map((a, j) => parseAction(p, a as Node, `${path}[${j}]`));
  });
  let trust: Trust;
  const trustNode = f.get("trust_proxy");
  try {
    trust = compileTrust(
      trustNode === undefined ? false : (trustNode.toJSON() as unknown),
      "http_check.trust_proxy",
    );
  } catch (error) {
    p.fail(
      trustNode,
      "http_check.trust_proxy",
      (error as Error).message.replace(/^floodgate: /, ""),
      "give a hop count (1) or proxy addresses/CIDRs (loopback, 10.0.0.0/8)",
    );
  }
  let denyStatus = 429;
  if (f.has("deny_status")) {
    const node = f.get("deny_status");
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 400 || v > 599) {
      p.fail(
        node,
        "http_check.deny_status",
        "must be an HTTP status from 400 to 599",
        "use 429 (the default), or 403 for nginx auth_request",
      );
    }
    denyStatus = v;
  }
  return Object.freeze({ actions, trust, denyStatus });
}

function parseAction(p: Parser, node: Node, path: string): Action {
  const fix =
    "use one of remote_address: {}, request_headers: { header_name, descriptor_key }, generic_key: { descriptor_value }, method: {}, path: {}";
  const map = p.map(node, path, fix);
  if (map.items.length !== 1) p.fail(node, path, "must hold exactly one action", fix);
  const pair = map.items[0] as { key: unknown; value: unknown };
  const kind = isScalar(pair.key) ? String(pair.key.value) : "";
  const body = pair.value as Node | null;
  const opts =
    body === null || (isScalar(body) && body.value === null)
      ? new Map<string, Node>()
      : p.entries(
          p.map(body, `${path}.${kind}`, fix),
          `${path}.${kind}.`,
          new Set(["header_name", "descriptor_key", "descriptor_value", "skip_if_absent"]),
        );
  const keyOf = (dflt: string) => {
    const k = opts.get("descriptor_key");
    return k === undefined
      ? dflt
      : p.string(k, `${path}.${kind}.descriptor_key`, "name the descriptor key");
  };
  switch (kind) {
    case "remote_address":
      return { kind, key: "remote_address" };
    case "method":
      return { kind, key: keyOf("method") };
    case "path":
      return { kind, key: keyOf("path") };
    case "generic_key":
      return {
        kind,
        key: keyOf("generic_key"),
        value: p.string(
          opts.get("descriptor_value"),
          `${path}.generic_key.descriptor_value`,
          "write generic_key: { descriptor_value: my_limit }",
        ),
      };
    case "request_headers": {
      const header = p
        .string(
          opts.get("header_name"),
          `${path}.request_headers.header_name`,
          "write request_headers: { header_name: x-api-key, descriptor_key: api_key }",
        )
        .toLowerCase();
      const key = p.string(
        opts.get("descriptor_key"),
        `${path}.request_headers.descriptor_key`,
        "write request_headers: { header_name: x-api-key, descriptor_key: api_key }",
      );
      const skipIfAbsent = p.boolean(
        opts.get("skip_if_absent"),
        `${path}.request_headers.skip_if_absent`,
      );
      return { kind, key, header, skipIfAbsent };
    }
    default:
      return p.fail(pair.key as Node, `${path}.${kind}`, "is not an action floodgate knows", fix);
  }
}

/**
 * buildConfig joins the files' domains into one config, refusing a domain
 * defined in two files.
 */
export function buildConfig(files: readonly DomainConfig[]): GatewayConfig {
  const domains = new Map<string, DomainConfig>();
  for (const d of files) {
    const other = domains.get(d.domain);
    if (other !== undefined) {
      throw new GatewayConfigError(
        d.file,
        1,
        "domain",
        `repeats the domain ${JSON.stringify(d.domain)} of ${other.file}`,
        "give each file its own domain, or merge the two files",
      );
    }
    domains.set(d.domain, d);
  }
  return Object.freeze({ domains });
}
