import { ConfigError } from "../core/errors.js";
import { checkInteger, checkOptions } from "../core/options.js";
import { CodedWarnings } from "../warn.js";
import { socketKey, UNKNOWN } from "./ip.js";
import { clientKey, compileTrust, type ProxyHeader } from "./proxy.js";

/**
 * RequestReader is the little an adapter must tell floodgate about its
 * framework's request: the socket's peer address and a header. Each adapter
 * implements it once; client keys read requests only through it, so
 * `keys.ip` behaves identically in every framework.
 */
export interface RequestReader<Req> {
  /**
   * address is the socket's peer address, or undefined when there is none
   * (a closed socket, a Unix socket's, a Fetch Request). What is no IP
   * address (`""`, `"localhost"`, a path) is keyed like a missing one.
   */
  address(request: Req): string | undefined;
  /** header is the request header `name` (given in lower case), repeated fields joined with ", "; undefined when absent. */
  header(request: Req, name: string): string | undefined;
  /**
   * method is the request method in upper case, as the client sent it.
   * Every adapter implements it; a reader without it never has a request
   * taken for a CORS preflight.
   */
  method?(request: Req): string | undefined;
}

/**
 * KeyFunction names the client a request is counted against: an IP, an API
 * key, a user id. It gets the framework's own request and the adapter's
 * reader, so a custom key can fall back to a built-in one:
 * `(req, reader) => req.user?.id ?? byIp(req, reader)`.
 */
export type KeyFunction<Req> = (
  request: Req,
  reader: RequestReader<Req>,
) => string | Promise<string>;

/** Key is a built-in key function: it works with every framework's request. */
export type Key = <Req>(request: Req, reader: RequestReader<Req>) => string;

/** IpKeyOptions configure `keys.ip`. */
export interface IpKeyOptions {
  /**
   * Which proxies to believe about the client's address. Default `false`:
   * the socket's address only, and X-Forwarded-For and Forwarded are ignored.
   * A number trusts that many hops from the socket (1 behind one load
   * balancer); addresses and CIDR ranges (an array, or a comma-separated
   * string; also `loopback`, `linklocal`, `uniquelocal`) trust the hops they
   * match. The chain is walked from the right. `true` is refused, and so is
   * a list that covers every IPv4 or every public IPv6 address.
   */
  trustProxy?: false | number | string | readonly string[] | undefined;
  /**
   * The header your proxies append the chain to, the only one read: default
   * `"x-forwarded-for"`, as Express's and Fastify's own `trustProxy` read;
   * `"forwarded"` for proxies that write RFC 7239's Forwarded. Whatever a
   * client sends in the other one, or in X-Real-IP, is ignored.
   */
  proxyHeader?: ProxyHeader | undefined;
  /**
   * Prefix length in bits (1 to 128) that groups IPv6 clients into one key.
   * Default 64. Addresses of the NAT64 prefix 64:ff9b::/96 are IPv4 clients
   * and keyed by their IPv4 address, those of 64:ff9b:1::/48 whole.
   */
  ipv6Subnet?: number | undefined;
  /**
   * Turns off (`false`, or `{ FLOODGATE_NO_CLIENT_ADDRESS: false }`) the
   * warning that a request came through a proxy to a socket without an
   * address (a server on a Unix socket) while `trustProxy` lists addresses,
   * which cannot vouch for it: every such client is keyed "unknown".
   */
  warnings?: boolean | { readonly FLOODGATE_NO_CLIENT_ADDRESS?: boolean | undefined } | undefined;
}

type IpWarningCode = "FLOODGATE_NO_CLIENT_ADDRESS";

const IP_OPTIONS = new Set(["trustProxy", "proxyHeader", "ipv6Subnet", "warnings"]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * ip keys requests by client IP address: IPv4-mapped IPv6 becomes IPv4, and
 * IPv6 is grouped by its /64 (see `ipv6Subnet`), NAT64 addresses keyed as
 * the IPv4 client they carry. Behind proxies, set `trustProxy`. A request
 * without a socket address, or with one that is no IP address, gets the key
 * "unknown".
 * It never throws on what a client sends. Options are checked when called:
 * bad ones throw ConfigError.
 */
function ip(options: IpKeyOptions = {}): Key {
  checkOptions(options, IP_OPTIONS, {
    name: "keys.ip(options)",
    kind: "keys.ip",
    prefix: "keys.ip.",
    example: "call keys.ip() or keys.ip({ trustProxy: 1 })",
    hints: {
      header:
        'name the header your proxies write with proxyHeader: "forwarded" (X-Forwarded-For is the default)',
    },
  });
  const prefix = checkInteger(
    "keys.ip.ipv6Subnet",
    options.ipv6Subnet ?? 64,
    1,
    128,
    "leave it at 64 (one key per IPv6 subnet), or 128 to key each address",
    "a prefix length",
  );
  const proxyHeader = options.proxyHeader ?? "x-forwarded-for";
  if (proxyHeader !== "x-forwarded-for" && proxyHeader !== "forwarded") {
    throw new ConfigError(
      "keys.ip.proxyHeader",
      proxyHeader,
      'must be "x-forwarded-for" or "forwarded"',
      'leave it out for X-Forwarded-For, or pass "forwarded" if your proxies write RFC 7239 Forwarded',
    );
  }
  const trust = compileTrust(options.trustProxy, "keys.ip.trustProxy");
  const warnings = new CodedWarnings<IpWarningCode>(options.warnings, "keys.ip.warnings", [
    "FLOODGATE_NO_CLIENT_ADDRESS",
  ]);
  if (trust.hops === 0 && trust.ranges === undefined) {
    return function ipKey(request, reader) {
      return socketKey(reader.address(request), prefix);
    };
  }
  if (trust.ranges !== undefined) {
    let watching = true;
    return function ipKeyBehindProxies(request, reader) {
      const chain = reader.header(request, proxyHeader);
      const key = clientKey(trust, proxyHeader, prefix, reader.address(request), chain);
      if (watching && key === UNKNOWN && chain !== undefined) {
        watching = false;
        warnings.warn(
          "FLOODGATE_NO_CLIENT_ADDRESS",
          `keys.ip: a request came with ${proxyHeader === "forwarded" ? "Forwarded" : "X-Forwarded-For"} to a socket without an address (a server listening on a Unix socket, or a connection already closed). trustProxy lists proxy addresses, which cannot vouch for a socket without one, so its clients are keyed "unknown" and share one bucket. Fix: behind a proxy that connects over a Unix socket, give the number of proxies instead: keys.ip({ trustProxy: 1${proxyHeader === "forwarded" ? ', proxyHeader: "forwarded"' : ""} }) behind one.`,
        );
      }
      return key;
    };
  }
  return function ipKeyBehindProxy(request, reader) {
    return clientKey(
      trust,
      proxyHeader,
      prefix,
      reader.address(request),
      reader.header(request, proxyHeader),
    );
  };
}

/** HeaderKeyOptions configure `keys.header`. */
export interface HeaderKeyOptions<Req> {
  /** The key of a request without the header (or with it empty). Default `keys.ip()`. */
  fallback?: KeyFunction<Req> | undefined;
}

/**
 * header keys requests by a request header such as an API key, as
 * `name=value` (an IP key never contains "=", so a client cannot send
 * someone's IP as its API key to drain their bucket). Requests without the
 * header fall back to `options.fallback`, by default the client IP. The
 * header is not validated: check API keys before rate limiting by them, or
 * a client can rotate through invented ones. X-Forwarded-For and Forwarded
 * are refused (ConfigError): use `keys.ip({ trustProxy })` for them. The
 * value is taken as the framework presents it (no case folding or Unicode
 * normalization: API keys and tokens are compared byte for byte).
 */
function header(name: string): Key;
function header<Req>(name: string, options: HeaderKeyOptions<Req>): KeyFunction<Req>;
function header<Req>(name: string, options: HeaderKeyOptions<Req> = {}): KeyFunction<Req> {
  if (typeof name !== "string" || !TOKEN.test(name)) {
    throw new ConfigError(
      "keys.header(name)",
      name,
      "must be a header name",
      'pass the header to key by, e.g. keys.header("x-api-key")',
    );
  }
  checkOptions(options, ["fallback"], {
    name: "keys.header(options)",
    kind: "keys.header",
    prefix: "keys.header.",
    example: "pass { fallback: keys.ip() } or nothing",
  });
  const fallback = options.fallback ?? ip();
  if (typeof fallback !== "function") {
    throw new ConfigError(
      "keys.header.fallback",
      fallback,
      "must be a key function",
      "pass a function of the request, e.g. fallback: keys.ip({ trustProxy: 1 })",
    );
  }
  const lower = name.toLowerCase();
  if (lower === "x-forwarded-for" || lower === "forwarded") {
    // The whole chain as a key: any client prepends a new hop to every
    // request and gets a fresh bucket each time.
    throw new ConfigError(
      "keys.header(name)",
      name,
      "is a proxy chain that every client can extend, so keying by its whole value gives each request a fresh bucket",
      `key by the client address your proxies vouch for: keys.ip({ trustProxy: 1${lower === "forwarded" ? ', proxyHeader: "forwarded"' : ""} }) behind one proxy, or their addresses`,
    );
  }
  const prefix = `${lower}=`;
  return function headerKey(request, reader) {
    const value = reader.header(request, lower);
    return value === undefined || value === "" ? fallback(request, reader) : prefix + value;
  };
}

/** keys builds client key functions: `keys.ip(...)` (the default) and `keys.header(name)`. */
export const keys = Object.freeze({ ip, header });
