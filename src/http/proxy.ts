// Trusted proxies: which hop of X-Forwarded-For (or Forwarded) is the client.
// Each proxy appends the address of its peer, so the chain is read from the
// right, starting at the socket, and a hop is believed only while the hop
// that wrote it is trusted. Only the one header the proxies write is read:
// a client can send any header itself, and what it sends sits left of
// everything its proxies append, so it is never the answer.
import { ConfigError } from "../core/errors.js";
import {
  formatKey,
  maskWord,
  newWords,
  parseHost,
  parseIPv4,
  parseIPv6,
  socketKey,
  type Words,
} from "./ip.js";

/**
 * ProxyHeader names the header trusted proxies append the chain to:
 * `"x-forwarded-for"` (what nginx, HAProxy, AWS and Google load balancers,
 * Cloudflare and Express's and Fastify's `trustProxy` use) or `"forwarded"`
 * (RFC 7239).
 */
export type ProxyHeader = "x-forwarded-for" | "forwarded";

/**
 * Trust is a compiled `trustProxy`: `hops` trusted hops counted from the
 * socket, or (when `ranges` is set) the hops whose address lies in one of
 * `ranges` (8 words per range: network then mask).
 */
export interface Trust {
  readonly hops: number;
  readonly ranges: Uint32Array | undefined;
}

const NAMED: Record<string, readonly string[]> = {
  loopback: ["127.0.0.0/8", "::1/128"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
  uniquelocal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
};

const MAX_HOPS = 100;
const scratch = newWords();

/** parseRange reads `address` or `address/bits` into network and mask words at `at`; false if invalid. */
function parseRange(text: string, out: Uint32Array, at: number): boolean {
  const slash = text.indexOf("/");
  const end = slash < 0 ? text.length : slash;
  const v4 = text.indexOf(":") < 0;
  if (v4) {
    const value = parseIPv4(text, 0, end);
    if (value < 0) return false;
    scratch[0] = 0;
    scratch[1] = 0;
    scratch[2] = 0xffff;
    scratch[3] = value;
  } else if (!parseIPv6(text, 0, end, scratch)) {
    return false;
  }
  let bits = v4 ? 32 : 128;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits) || Number(digits) > bits) return false;
    bits = Number(digits);
  }
  if (v4) bits += 96;
  for (let k = 0; k < 4; k++) {
    const mask = maskWord(bits, k);
    out[at + k] = ((scratch[k] as number) & mask) >>> 0;
    out[at + 4 + k] = mask;
  }
  return true;
}

/**
 * compileTrust validates `trustProxy`: `false`/`0` (default: the socket only),
 * a hop count, or proxy addresses and CIDR ranges (an array, or one string
 * separated by commas) including the names `loopback`, `linklocal` and
 * `uniquelocal`. `true` is refused: it would let any client pick its key.
 */
export function compileTrust(value: unknown, option = "trustProxy"): Trust {
  if (value === undefined || value === false || value === 0) {
    return { hops: 0, ranges: undefined };
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0 || value > MAX_HOPS) {
      throw new ConfigError(
        option,
        value,
        `must be a whole number of proxy hops from 0 to ${MAX_HOPS}`,
        "count the proxies in front of this server, e.g. trustProxy: 1 behind one load balancer",
      );
    }
    return { hops: value, ranges: undefined };
  }
  if (value === true) {
    throw new ConfigError(
      option,
      value,
      "would trust every hop, so any client could choose its own key by sending X-Forwarded-For",
      'give the number of proxies in front of this server (trustProxy: 1) or their addresses (trustProxy: ["10.0.0.0/8"])',
    );
  }
  if (typeof value === "string") refuseLookalike(value, option);
  const list = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(list)) {
    throw new ConfigError(
      option,
      value,
      "must be false, a hop count, or a list of proxy addresses and CIDR ranges",
      'e.g. trustProxy: 1, or trustProxy: ["10.0.0.0/8", "loopback"]',
    );
  }
  const texts: string[] = [];
  list.forEach((entry: unknown, i: number) => {
    const text = typeof entry === "string" ? entry.trim() : entry;
    const named = typeof text === "string" ? NAMED[text] : undefined;
    if (named !== undefined) texts.push(...named);
    else if (typeof text === "string" && parseRange(text, new Uint32Array(8), 0)) texts.push(text);
    else {
      const count = hopCount(text);
      throw new ConfigError(
        Array.isArray(value) ? `${option}[${i}]` : option,
        Array.isArray(value) ? entry : value,
        "must hold IP addresses, CIDR ranges or the names loopback, linklocal, uniquelocal",
        count === undefined
          ? 'write addresses like "10.0.0.7", ranges like "10.0.0.0/8" or "fd00::/8"'
          : `a hop count is a number on its own, not an entry of a list: trustProxy: ${count}`,
      );
    }
  });
  if (texts.length === 0) return { hops: 0, ranges: undefined };
  const ranges = new Uint32Array(8 * texts.length);
  for (let i = 0; i < texts.length; i++) parseRange(texts[i] as string, ranges, 8 * i);
  const family = everyAddressOf(ranges);
  if (family !== undefined) {
    throw new ConfigError(
      option,
      value,
      `trusts every ${family} address as a proxy, so any client could choose its own key by sending X-Forwarded-For`,
      "give the number of proxies in front of this server instead (trustProxy: 1 behind one load balancer), or only their addresses",
    );
  }
  return { hops: 0, ranges };
}

/** hopCount is the number a list entry spells (`7`, `"1"`), or undefined. Runs once, when built. */
function hopCount(entry: unknown): number | undefined {
  if (typeof entry === "number") return Number.isInteger(entry) ? entry : undefined;
  return typeof entry === "string" && /^\d{1,9}$/.test(entry) ? Number(entry) : undefined;
}

/**
 * refuseLookalike refuses a string `trustProxy` that means a number or a
 * boolean, as an environment variable gives them (`TRUST_PROXY=1`), with a
 * fix that names the value to write. Express and Fastify read
 * `trust proxy: "1"` as the IP address 0.0.0.1, so it trusts nothing there,
 * and accepting it as one hop here would make the two settings disagree
 * without a word.
 */
function refuseLookalike(value: string, option: string): void {
  const text = value.trim();
  const count = hopCount(text);
  if (count !== undefined) {
    throw new ConfigError(
      option,
      value,
      "is a hop count written as a string (from an environment variable?), which would read as an address",
      `write the number: trustProxy: ${count}, e.g. trustProxy: Number(process.env.TRUST_PROXY). Express's and Fastify's own trustProxy read such a string as an IP address ("1" as 0.0.0.1), not as hops: give them the number too`,
    );
  }
  const lower = text.toLowerCase();
  if (lower === "true") {
    throw new ConfigError(
      option,
      value,
      "would trust every hop, so any client could choose its own key by sending X-Forwarded-For",
      'give the number of proxies in front of this server (trustProxy: 1) or their addresses (trustProxy: ["10.0.0.0/8"])',
    );
  }
  if (lower === "false") {
    throw new ConfigError(
      option,
      value,
      "is a boolean written as a string",
      "leave trustProxy out, or write trustProxy: false, to trust no proxy",
    );
  }
}

/** The address spaces a trust list must not cover whole: all of IPv4 (held IPv4-mapped, or NAT64), all public IPv6. */
const FAMILIES: readonly (readonly [string, bigint, bigint])[] = [
  ["IPv4", 0xffff_0000_0000n, 0xffff_ffff_ffffn],
  ["public IPv6 (2000::/3)", 0x2000n << 112n, (0x4000n << 112n) - 1n],
  // Every IPv4 client of an IPv6-only server behind a NAT64/SIIT translator.
  ["NAT64 (64:ff9b::/96)", 0x64ff9bn << 96n, (0x64ff9bn << 96n) | 0xffff_ffffn],
];

/**
 * everyAddressOf names the family whose every address `ranges` trust
 * together (`0.0.0.0/0`, `::/0`, `::ffff:0:0/96`, `0.0.0.0/1` with
 * `128.0.0.0/1`, `2000::/3`, ...), or undefined. Runs once, when built.
 */
function everyAddressOf(ranges: Uint32Array): string | undefined {
  const spans: [bigint, bigint][] = [];
  for (let at = 0; at < ranges.length; at += 8) {
    let low = 0n;
    let high = 0n;
    for (let k = 0; k < 4; k++) {
      const network = BigInt(ranges[at + k] as number);
      const host = BigInt(~(ranges[at + 4 + k] as number) >>> 0);
      low = (low << 32n) | network;
      high = (high << 32n) | network | host;
    }
    spans.push([low, high]);
  }
  spans.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, first, last] of FAMILIES) {
    let next = first;
    for (const [low, high] of spans) {
      if (low > next) break;
      if (high >= next) next = high + 1n;
      if (next > last) return name;
    }
  }
  return undefined;
}

function inRanges(ranges: Uint32Array, w: Words): boolean {
  for (let at = 0; at < ranges.length; at += 8) {
    if (
      ((w[0] as number) & (ranges[at + 4] as number)) >>> 0 === ranges[at] &&
      ((w[1] as number) & (ranges[at + 5] as number)) >>> 0 === ranges[at + 1] &&
      ((w[2] as number) & (ranges[at + 6] as number)) >>> 0 === ranges[at + 2] &&
      ((w[3] as number) & (ranges[at + 7] as number)) >>> 0 === ranges[at + 3]
    ) {
      return true;
    }
  }
  return false;
}

/**
 * forwardedFor reads the `for=` of each element of a Forwarded header (RFC
 * 7239), in order, unquoted (`for="[2001:db8::1]:4711"` gives
 * `[2001:db8::1]:4711`); an element without exactly one `for` gives "", which
 * no address parser accepts. Never throws.
 */
export function forwardedFor(header: string): string[] {
  const out: string[] = [];
  const n = header.length;
  let value: string | undefined;
  let broken = false;
  let i = 0;
  for (;;) {
    while (i < n && isSpace(header.charCodeAt(i))) i++;
    const nameStart = i;
    while (i < n) {
      const c = header.charCodeAt(i);
      if (c === 61 || c === 59 || c === 44) break;
      i++;
    }
    let nameEnd = i;
    while (nameEnd > nameStart && isSpace(header.charCodeAt(nameEnd - 1))) nameEnd--;
    if (i < n && header.charCodeAt(i) === 61) {
      i++;
      let text: string;
      if (i < n && header.charCodeAt(i) === 34) {
        text = "";
        i++;
        let closed = false;
        while (i < n) {
          const c = header.charCodeAt(i);
          if (c === 34) {
            closed = true;
            i++;
            break;
          }
          if (c === 92 && i + 1 < n) i++;
          text += header[i];
          i++;
        }
        if (!closed) broken = true;
      } else {
        const start = i;
        while (i < n) {
          const c = header.charCodeAt(i);
          if (c === 59 || c === 44) break;
          i++;
        }
        text = header.slice(start, i).trim();
      }
      if (isFor(header, nameStart, nameEnd)) {
        if (value !== undefined) broken = true;
        value = text;
      }
    } else if (nameEnd > nameStart) {
      broken = true;
    }
    while (i < n && isSpace(header.charCodeAt(i))) i++;
    if (i < n && header.charCodeAt(i) === 59) {
      i++;
      continue;
    }
    if (i < n && header.charCodeAt(i) !== 44) {
      // Text after a quoted value, such as for="a"b: this element is unusable.
      broken = true;
      while (i < n && header.charCodeAt(i) !== 44) i++;
    }
    out.push(broken || value === undefined ? "" : value);
    value = undefined;
    broken = false;
    if (i >= n) return out;
    i++;
  }
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

function isFor(s: string, start: number, end: number): boolean {
  return (
    end - start === 3 &&
    (s.charCodeAt(start) | 32) === 102 &&
    (s.charCodeAt(start + 1) | 32) === 111 &&
    (s.charCodeAt(start + 2) | 32) === 114
  );
}

/** A right-to-left reader of one header's hops: 1 = parsed into `out`, 0 = not an address, -1 = no more. */
interface Hops {
  next(out: Words): number;
}

class ForwardedForHops implements Hops {
  #pos: number;
  constructor(readonly header: string) {
    this.#pos = header.length === 0 ? -1 : header.length;
  }
  next(out: Words): number {
    const end = this.#pos;
    if (end < 0) return -1;
    const comma = end > 0 ? this.header.lastIndexOf(",", end - 1) : -1;
    this.#pos = comma;
    return parseHost(this.header, comma + 1, end, out) ? 1 : 0;
  }
}

/**
 * ForwardedHops reads Forwarded elements from the right. Elements are split
 * at commas outside quoted strings, found scanning leftwards, so the
 * elements the proxies appended are read whole whatever the client wrote to
 * their left: an unclosed quote of the client's (`for="1.2.3.4`) swallows no
 * element of theirs, as a left-to-right reading of the joined header would.
 */
class ForwardedHops implements Hops {
  #pos: number;
  constructor(readonly header: string) {
    this.#pos = header.length;
  }
  next(out: Words): number {
    const end = this.#pos;
    if (end < 0) return -1;
    const h = this.header;
    let quoted = false;
    let i = end - 1;
    for (; i >= 0; i--) {
      const c = h.charCodeAt(i);
      if (c === 34) {
        let slashes = 0;
        while (i - 1 - slashes >= 0 && h.charCodeAt(i - 1 - slashes) === 92) slashes++;
        if (slashes % 2 === 0) quoted = !quoted;
      } else if (c === 44 && !quoted) {
        break;
      }
    }
    this.#pos = i;
    if (quoted) return 0;
    const values = forwardedFor(h.slice(i + 1, end));
    const value = values[0] as string;
    return values.length === 1 && parseHost(value, 0, value.length, out) ? 1 : 0;
  }
}

const current = newWords();
const hop = newWords();

/**
 * clientKey finds the client behind trusted proxies and returns its key.
 * `chain` is the header the proxies write (`proxyHeader`), as received.
 * Starting at the socket, it steps one hop left while the current hop is
 * trusted (by count, or by address), and stops, keeping the last address it
 * can vouch for, at a hop that is not an address. The socket's address, or
 * "unknown" when there is none (or none that is an IP address), is the
 * answer whenever no step is taken. A hop count also trusts a socket without
 * an address (a server on a Unix socket behind a proxy); a list of addresses
 * cannot. Every step consumes a hop of the header, so the walk ends within
 * the header's length.
 */
export function clientKey(
  trust: Trust,
  proxyHeader: ProxyHeader,
  prefix: number,
  socket: string | undefined,
  chain: string | undefined,
): string {
  const ranges = trust.ranges;
  if (chain === undefined) return socketKey(socket, prefix);
  if (ranges !== undefined) {
    // A socket without an address (a closed one, a Unix socket's) is never
    // a trusted proxy: the list cannot vouch for it. Only a hop count can.
    if (
      typeof socket !== "string" ||
      !parseHost(socket, 0, socket.length, current) ||
      !inRanges(ranges, current)
    ) {
      return socketKey(socket, prefix);
    }
  } else if (trust.hops < 1) {
    return socketKey(socket, prefix);
  }
  const hops: Hops =
    proxyHeader === "forwarded" ? new ForwardedHops(chain) : new ForwardedForHops(chain);
  let steps = 0;
  while (hops.next(hop) > 0) {
    current.set(hop);
    steps++;
    if (ranges !== undefined ? !inRanges(ranges, current) : steps >= trust.hops) break;
  }
  return steps === 0 ? socketKey(socket, prefix) : formatKey(current, prefix);
}
