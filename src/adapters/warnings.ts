// Misconfigurations that let clients share or choose their bucket, caught
// on the first requests (when the framework's settings and real requests can
// be seen) and reported once as a coded warning that says how to fix them.
// Each can be switched off by code, or all at once; Node's
// --disable-warning=CODE works too, since they are process warnings.
import type { RequestReader } from "../http/index.js";
import { socketKey, UNKNOWN } from "../http/ip.js";
import { CodedWarnings } from "../warn.js";

/**
 * WarningCode names a misconfiguration floodgate reports:
 * `FLOODGATE_PERMISSIVE_TRUST_PROXY`: the framework trusts every proxy hop
 * (Express `trust proxy: true`), so its idea of the client address is
 * whatever the client sends;
 * `FLOODGATE_FORWARDED_NOT_TRUSTED`: requests carry X-Forwarded-For or
 * Forwarded while floodgate keys by the socket, so behind a proxy every
 * client would share the proxy's bucket;
 * `FLOODGATE_NO_CLIENT_ADDRESS`: the default key found no client address
 * (a runtime whose address floodgate cannot read, or one that is no IP
 * address), so every client shares one bucket; `keys.ip` with a list of
 * proxies reports it too, for a socket without an address behind a proxy.
 */
export type WarningCode =
  | "FLOODGATE_PERMISSIVE_TRUST_PROXY"
  | "FLOODGATE_FORWARDED_NOT_TRUSTED"
  | "FLOODGATE_NO_CLIENT_ADDRESS";

/**
 * WarningsOption turns floodgate's start-up warnings on (`true`, the
 * default) or off (`false`), or some of them off by code:
 * `{ FLOODGATE_FORWARDED_NOT_TRUSTED: false }`.
 */
export type WarningsOption = boolean | { readonly [code in WarningCode]?: boolean | undefined };

const CODES: readonly WarningCode[] = [
  "FLOODGATE_PERMISSIVE_TRUST_PROXY",
  "FLOODGATE_FORWARDED_NOT_TRUSTED",
  "FLOODGATE_NO_CLIENT_ADDRESS",
];

/** shown is a setting's value as a message shows it: JSON where it can be, else its kind. */
function shown(value: unknown): string {
  if (typeof value === "function") return "a function";
  try {
    const text = JSON.stringify(value);
    if (text !== undefined) return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    // A value JSON cannot write (a BigInt, a cycle): its kind will do.
  }
  return typeof value;
}

/**
 * frameworkTrust says, for the FLOODGATE_FORWARDED_NOT_TRUSTED message, that
 * the framework's own proxy setting trusts proxies while floodgate does not
 * (so its idea of the client and floodgate's differ), or "" when it does not
 * or cannot be read. `request` is the adapter's own: Express's req, Koa's
 * ctx, Fastify's request. Runs once, when the warning is given.
 */
function frameworkTrust(framework: string, request: unknown): string {
  const r = request as {
    app?: { get?: (name: string) => unknown; proxy?: unknown };
    server?: { initialConfig?: { trustProxy?: unknown } };
  } | null;
  let setting: unknown;
  let name: string;
  let ip: string;
  if (framework === "express" && typeof r?.app?.get === "function") {
    setting = r.app.get("trust proxy");
    name = `Express's own "trust proxy" setting`;
    ip = "req.ip";
  } else if (framework === "koa") {
    setting = r?.app?.proxy;
    name = "Koa's own app.proxy";
    ip = "ctx.ip";
  } else if (framework === "fastify") {
    setting = r?.server?.initialConfig?.trustProxy;
    name = "Fastify's own trustProxy";
    ip = "request.ip";
  } else {
    return "";
  }
  if (setting === undefined || setting === false || setting === 0 || setting === null) return "";
  return ` ${name} is ${shown(setting)}, so ${ip} reads the header while floodgate's key does not: tell keys.ip the same proxies.`;
}

/**
 * Warnings reports each code at most once per middleware, unless switched
 * off. Route overrides share their middleware's Warnings.
 */
/**
 * Requests a middleware inspects for a proxy header before it stops: behind a
 * proxy nearly every request carries one, and the first few may be a load
 * balancer's health checks without it.
 */
const WATCHED = 100;

export class Warnings extends CodedWarnings<WarningCode> {
  /**
   * pending is true while requests still need inspecting: the first one,
   * then each one until one carries a proxy header (the forwarded warning is
   * given then, once), at most the first WATCHED (100). Adapters call `watch` while it said to, so once it
   * is false, and whenever the warning is off or the key is custom, a
   * request costs one boolean test.
   */
  pending = true;
  #first = true;
  /** Requests inspected for a proxy header so far (see WATCHED). */
  #watched = 0;
  readonly #forwarded: boolean;

  /** `name` is the option's name in a ConfigError, e.g. `config.rateLimit.warnings` for a Fastify route's. */
  constructor(option: unknown, name = "warnings") {
    super(option, name, CODES);
    this.#forwarded =
      option !== false &&
      (typeof option !== "object" ||
        option === null ||
        (option as Record<string, unknown>).FLOODGATE_FORWARDED_NOT_TRUSTED !== false);
  }

  /**
   * watch inspects a request of one limit (a middleware, or a route's
   * override sharing its Warnings) keyed by the default key, and says
   * whether that limit's later requests still need watching. A limit with a
   * custom key never calls it: its key is not the socket's, and its requests
   * must not end the watch of the limits sharing this Warnings that key by
   * the socket. Adapters hold the answer in a boolean of their own.
   */
  watch<Req>(
    reader: RequestReader<Req>,
    request: Req,
    framework: string,
    noAddressFix: string,
  ): boolean {
    if (this.pending) this.inspect(false, reader, request, framework, noAddressFix);
    return this.pending;
  }

  /**
   * inspect looks at a middleware's requests while `pending`: when the
   * client key is the default one (`customKey` false: the socket's address,
   * no proxy trusted), it warns if the first request has no readable
   * address, and on the first request that brings a proxy header floodgate
   * ignores (whichever request that is: the first is often a load
   * balancer's health check without one). `framework` names the adapter in
   * messages.
   */
  inspect<Req>(
    customKey: boolean,
    reader: RequestReader<Req>,
    request: Req,
    framework: string,
    noAddressFix: string,
  ): void {
    if (this.#first) {
      this.#first = false;
      if (customKey || !this.#forwarded) this.pending = false;
      if (customKey) return;
      const address: unknown = reader.address(request);
      if (socketKey(address, 128) === UNKNOWN) {
        this.pending = false;
        const got = address === undefined ? "" : ` (the runtime's address was ${shown(address)})`;
        this.warn(
          "FLOODGATE_NO_CLIENT_ADDRESS",
          `floodgate/${framework} keys clients by their address, but this request has none that floodgate can read${got}, so every client shares one bucket. Fix: ${noAddressFix}.`,
        );
        return;
      }
      if (!this.pending) return;
    }
    const via =
      reader.header(request, "x-forwarded-for") !== undefined
        ? "X-Forwarded-For"
        : reader.header(request, "forwarded") !== undefined
          ? "Forwarded"
          : undefined;
    if (via === undefined) {
      // Reading the headers costs every request something: after WATCHED
      // requests without one, a proxy in front is taken to be absent.
      if (++this.#watched >= WATCHED) this.pending = false;
      return;
    }
    this.pending = false;
    const address = reader.address(request);
    this.warn(
      "FLOODGATE_FORWARDED_NOT_TRUSTED",
      `floodgate/${framework}: a request came with ${via}, but floodgate keys clients by the socket's address (${address}) because no proxy is trusted. Behind a proxy or load balancer, every client would share its one bucket.${frameworkTrust(framework, request)} Fix: key: keys.ip({ trustProxy: 1${via === "Forwarded" ? ', proxyHeader: "forwarded"' : ""} }) with the number of proxies in front of this server, or their addresses (trustProxy: ["10.0.0.0/8"]). Without a proxy, a client sent the header itself and it is rightly ignored.`,
    );
  }
}
