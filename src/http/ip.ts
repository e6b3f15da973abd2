// IP addresses without regular expressions or allocation: every address is
// parsed into four 32-bit words of an IPv6 address, IPv4 living in the
// IPv4-mapped range ::ffff:a.b.c.d. One CIDR matcher and one key format then
// serve both families, and an IPv4 client seen over a dual-stack socket gets
// the same key as over an IPv4 one.

/** Words holds one address as four unsigned 32-bit words, most significant first. */
export type Words = Uint32Array;

const DOT = 46;
const COLON = 58;
const PERCENT = 37;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const MAPPED = 0xffff;
/** The first 32 bits of the NAT64 prefixes 64:ff9b::/96 and 64:ff9b:1::/48. */
const NAT64 = 0x0064ff9b;

/** UNKNOWN is the key of a request without a readable client address. */
export const UNKNOWN = "unknown";

const groups = new Uint16Array(8);

/** newWords returns a zeroed address buffer. */
export function newWords(): Words {
  return new Uint32Array(4);
}

/**
 * parseIPv4 reads the dotted quad `s[start, end)` as an unsigned 32-bit
 * number, or returns -1 when it is not one. Leading zeros are refused (as by
 * node's `net.isIP`): `010.0.0.1` means 8.0.0.1 to some parsers and 10.0.0.1
 * to others, and a key must not depend on which.
 */
export function parseIPv4(s: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * parseIPv6 reads `s[start, end)` as an IPv6 address (`::` compression, an
 * embedded IPv4 suffix, a `%zone` that is ignored) into `out`; false when it
 * is not one, leaving `out` unspecified.
 */
export function parseIPv6(s: string, start: number, end: number, out: Words): boolean {
  for (let i = start; i < end; i++) {
    if (s.charCodeAt(i) === PERCENT) {
      if (i === end - 1) return false;
      end = i;
      break;
    }
  }
  if (end - start < 2) return false;
  let n = 0;
  let gap = -1;
  let i = start;
  if (s.charCodeAt(i) === COLON) {
    if (s.charCodeAt(i + 1) !== COLON) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    if (n === 8) return false;
    let value = 0;
    let digits = 0;
    let j = i;
    for (; j < end; j++) {
      const h = hex(s.charCodeAt(j));
      if (h < 0) break;
      if (++digits > 4) return false;
      value = value * 16 + h;
    }
    if (j < end && s.charCodeAt(j) === DOT) {
      if (n > 6) return false;
      const v4 = parseIPv4(s, i, end);
      if (v4 < 0) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      break;
    }
    if (digits === 0) return false;
    groups[n++] = value;
    if (j === end) break;
    if (s.charCodeAt(j) !== COLON) return false;
    j++;
    if (j < end && s.charCodeAt(j) === COLON) {
      if (gap >= 0) return false;
      gap = n;
      j++;
    } else if (j === end) {
      return false;
    }
    i = j;
  }
  if (gap < 0) {
    if (n !== 8) return false;
  } else {
    // "::" stands for at least one group of zeros.
    if (n > 7) return false;
    const tail = n - gap;
    for (let k = tail - 1; k >= 0; k--) groups[8 - tail + k] = groups[gap + k] as number;
    for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  }
  for (let k = 0; k < 4; k++) {
    out[k] = (((groups[2 * k] as number) << 16) | (groups[2 * k + 1] as number)) >>> 0;
  }
  return true;
}

function setIPv4(out: Words, v4: number): void {
  out[0] = 0;
  out[1] = 0;
  out[2] = MAPPED;
  out[3] = v4;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

function isPort(s: string, colon: number, end: number): boolean {
  const digits = end - colon - 1;
  if (s.charCodeAt(colon) !== COLON || digits < 1 || digits > 5) return false;
  for (let i = colon + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * parseHost reads one address as proxies write it into `out`: surrounding
 * spaces are ignored, and so is a port (`1.2.3.4:80`, `[::1]:443`); brackets
 * around IPv6 are optional. False when `s[start, end)` is not an address
 * (`unknown`, an obfuscated `_id`, a host name, garbage).
 */
export function parseHost(s: string, start: number, end: number, out: Words): boolean {
  while (start < end && isSpace(s.charCodeAt(start))) start++;
  while (end > start && isSpace(s.charCodeAt(end - 1))) end--;
  if (start >= end) return false;
  if (s.charCodeAt(start) === OPEN_BRACKET) {
    let close = start + 1;
    while (close < end && s.charCodeAt(close) !== CLOSE_BRACKET) close++;
    if (close >= end) return false;
    if (close + 1 < end && !isPort(s, close + 1, end)) return false;
    return parseIPv6(s, start + 1, close, out);
  }
  let colons = 0;
  let lastColon = -1;
  for (let i = start; i < end; i++) {
    if (s.charCodeAt(i) === COLON) {
      colons++;
      lastColon = i;
    }
  }
  if (colons === 0 || (colons === 1 && isPort(s, lastColon, end))) {
    const v4 = parseIPv4(s, start, colons === 0 ? end : lastColon);
    if (v4 < 0) return false;
    setIPv4(out, v4);
    return true;
  }
  return parseIPv6(s, start, end, out);
}

/** isIPv4 tells whether `w` is an IPv4 address (held IPv4-mapped). */
export function isIPv4(w: Words): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === MAPPED;
}

/** sameAddress tells whether two parsed addresses are equal. */
export function sameAddress(a: Words, b: Words): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/** maskWord is the 32-bit mask of word `k` (0 to 3) for a prefix of `bits` (0 to 128). */
export function maskWord(bits: number, k: number): number {
  const b = bits - 32 * k;
  if (b <= 0) return 0;
  if (b >= 32) return 0xffffffff;
  return (0xffffffff << (32 - b)) >>> 0;
}

function formatIPv4(v4: number): string {
  return `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
}

/** formatIPv6 writes `w` in RFC 5952's canonical text: lower case, the longest zero run as `::`. */
export function formatIPv6(w: Words): string {
  for (let k = 0; k < 4; k++) {
    groups[2 * k] = (w[k] as number) >>> 16;
    groups[2 * k + 1] = (w[k] as number) & 0xffff;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += "::";
      i += bestLength - 1;
      continue;
    }
    if (text !== "" && !text.endsWith(":")) text += ":";
    text += (groups[i] as number).toString(16);
  }
  return text;
}

/**
 * formatKey is the client key of a parsed address: IPv4 (also IPv4-mapped
 * IPv6) as a dotted quad, IPv6 cut to its first `prefix` bits and written as
 * `network/prefix` (the whole address, without `/128`, when `prefix` is 128),
 * so one host cannot rotate through its subnet to get fresh buckets.
 */
export function formatKey(w: Words, prefix: number): string {
  if (isIPv4(w)) return formatIPv4(w[3] as number);
  if (w[0] === NAT64) {
    // 64:ff9b::/96 (RFC 6052): an IPv4 client of the internet behind a
    // NAT64/SIIT translator. Grouped by /64 like native IPv6, every such
    // client would share one bucket; keyed by its IPv4 address, it is the
    // same client as when it comes directly.
    if (w[1] === 0 && w[2] === 0) return formatIPv4(w[3] as number);
    // 64:ff9b:1::/48 (RFC 8215, local use): the same, at a prefix length
    // (/48 to /96) the operator chose and the address does not tell, which
    // places the IPv4 address. The whole address is one translated client
    // in every format; a subnet of it would be many.
    if ((w[1] as number) >>> 16 === 1) return formatIPv6(w);
  }
  if (prefix >= 128) return formatIPv6(w);
  const masked = maskScratch;
  for (let k = 0; k < 4; k++) masked[k] = ((w[k] as number) & maskWord(prefix, k)) >>> 0;
  return `${formatIPv6(masked)}/${prefix}`;
}

const maskScratch = newWords();
const keyScratch = newWords();

/**
 * addressKey is the client key of an address as a socket or a runtime
 * reports it. Canonical IPv4 (the common case) is returned as is, after a
 * scan that allocates nothing; anything else is parsed as an address, with
 * the port, brackets, spaces and IPv6 zone id (`fe80::1%eth0`) a runtime may
 * add ignored. What is no IP address at all (`""`, `"localhost"`, a Unix
 * socket's path) is "unknown", the key of a missing address: floodgate
 * cannot tell its clients apart, and a key that is not an address could
 * collide with a `keys.header` key (`name=value`). Never throws.
 */
export function addressKey(address: string, prefix: number): string {
  if (address.indexOf(":") < 0 && parseIPv4(address, 0, address.length) >= 0) return address;
  // "::ffff:1.2.3.4": an IPv4 client of a dual-stack server.
  if (address.startsWith("::ffff:") && parseIPv4(address, 7, address.length) >= 0) {
    return address.slice(7);
  }
  return parseHost(address, 0, address.length, keyScratch)
    ? formatKey(keyScratch, prefix)
    : UNKNOWN;
}

/**
 * socketKey is the client key of `address` as a RequestReader returns it:
 * "unknown" when it is missing, or not even a string (a runtime's null).
 */
export function socketKey(address: unknown, prefix: number): string {
  return typeof address === "string" ? addressKey(address, prefix) : UNKNOWN;
}
