import { Buffer } from "node:buffer";

/** HOT_KEY is the one client of the hot-key scenarios. */
export const HOT_KEY = "203.0.113.7";

/**
 * ipKey returns the i-th client key, an IPv4 address as the default key
 * function yields it (8 to 13 characters). It is decoded from bytes so it is
 * a flat string like one read from a socket, never a concatenation (a cons
 * string would cost every contender extra heap and a flattening on lookup).
 */
export function ipKey(i: number): string {
  const text = `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  return Buffer.from(text, "latin1").toString("latin1");
}

/** ipKeys returns the first `count` client keys. */
export function ipKeys(count: number): string[] {
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) out[i] = ipKey(i);
  return out;
}
