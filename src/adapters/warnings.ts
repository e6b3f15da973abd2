// Misconfigurations that let clients share or choose their bucket, caught on
// the first request (when the framework's settings and a real request can be
// seen) and reported once as a coded warning that says how to fix them. Each
// can be switched off by code, or all at once; Node's
// --disable-warning=CODE works too, since they are process warnings.
import type { RequestReader } from "../http/index.js";
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
 * (a runtime whose address floodgate cannot read), so every client shares
 * one bucket.
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
export type WarningsOption = boolean | { readonly [code in WarningCode]?: boolean };

const CODES: readonly WarningCode[] = [
  "FLOODGATE_PERMISSIVE_TRUST_PROXY",
  "FLOODGATE_FORWARDED_NOT_TRUSTED",
  "FLOODGATE_NO_CLIENT_ADDRESS",
];

/**
 * Warnings reports each code at most once per middleware, unless switched
 * off. Route overrides share their middleware's Warnings.
 */
export class Warnings extends CodedWarnings<WarningCode> {
  /** pending is true until the first request has been inspected. */
  pending = true;

  constructor(option: unknown) {
    super(option, "warnings", CODES);
  }

  /**
   * inspect looks at a middleware's first request: when the client key is
   * the default one (`customKey` false: the socket's address, no proxy
   * trusted), it warns if there is no address or if proxy headers arrive
   * that floodgate ignores. `framework` names the adapter in messages.
   */
  inspect<Req>(
    customKey: boolean,
    reader: RequestReader<Req>,
    request: Req,
    framework: string,
    noAddressFix: string,
  ): void {
    this.pending = false;
    if (customKey) return;
    const address = reader.address(request);
    if (address === undefined) {
      this.warn(
        "FLOODGATE_NO_CLIENT_ADDRESS",
        `floodgate/${framework} keys clients by their address, but this request has none that floodgate can read, so every client shares one bucket. Fix: ${noAddressFix}.`,
      );
      return;
    }
    const via =
      reader.header(request, "x-forwarded-for") !== undefined
        ? "X-Forwarded-For"
        : reader.header(request, "forwarded") !== undefined
          ? "Forwarded"
          : undefined;
    if (via !== undefined) {
      this.warn(
        "FLOODGATE_FORWARDED_NOT_TRUSTED",
        `floodgate/${framework}: a request came with ${via}, but floodgate keys clients by the socket's address (${address}) because no proxy is trusted. Behind a proxy or load balancer, every client would share its one bucket. Fix: key: keys.ip({ trustProxy: 1${via === "Forwarded" ? ', proxyHeader: "forwarded"' : ""} }) with the number of proxies in front of this server, or their addresses (trustProxy: ["10.0.0.0/8"]). Without a proxy, a client sent the header itself and it is rightly ignored.`,
      );
    }
  }
}
