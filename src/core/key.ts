import { createHash } from "node:crypto";

/** Longest key, in UTF-8 bytes, kept as it is; longer ones are held as a digest. */
export const MAX_KEY_BYTES = 64;

/**
 * The digest's first 6 bytes: they encode to the text `sha256__`, so a held
 * key reads as a digest in stats, events and the dashboard. Putting them in
 * the encoded buffer (6 bytes = 8 base64url characters, so the digest's
 * characters start on a boundary) makes the result one flat string, where
 * `"sha256__" + digest` would keep a concatenation node and two strings.
 */
const PREFIX = Buffer.from("sha256__", "base64url");
/** A byte that never occurs in UTF-8: marks keys hashed as UTF-16 code units. */
const UTF16 = Buffer.from([0xff]);

/**
 * boundKey is the key floodgate holds for a client key: the key itself when
 * it is at most 64 UTF-8 bytes, else `sha256__` and the 43 base64url
 * characters of its SHA-256 (51 bytes). Every in-memory structure (stores,
 * denial cache, fallback limiter, top-K, dashboard) then holds at most 64
 * bytes a key, whatever clients send, and the same client gets the same
 * digest everywhere. A cryptographic hash, so no one can choose two keys that
 * share a bucket. Idempotent: a digest is short, so it comes back unchanged.
 * Keys of up to 21 characters (at most 63 bytes) cost one comparison.
 * A value that is not a string is returned as it is, for the caller's check.
 */
export function boundKey(key: string): string {
  // Keep this module imported only by modules the limiter's own bundle holds:
  // imported from another package entry too (the dashboard's), tsup puts it
  // in a chunk of its own, V8 no longer inlines it, and a hot key's decision
  // costs a fifth more (bench/memory: 13 -> 10.5 M/s).
  // Small enough for V8 to inline anywhere (a decision's hot path calls it once).
  return typeof key !== "string" || key.length <= 21 ? key : boundLong(key);
}

/** boundLong is boundKey for a key of more than 21 characters. */
function boundLong(key: string): string {
  if (key.length <= MAX_KEY_BYTES && Buffer.byteLength(key, "utf8") <= MAX_KEY_BYTES) return key;
  const hash = createHash("sha256");
  // UTF-8 turns every lone surrogate into the same U+FFFD: such keys are
  // hashed as UTF-16 code units instead, after a byte UTF-8 never has.
  if ((key as { isWellFormed?: () => boolean }).isWellFormed?.() === false) {
    hash.update(UTF16).update(Buffer.from(key, "utf16le"));
  } else {
    hash.update(key, "utf8");
  }
  return Buffer.concat([PREFIX, hash.digest()]).toString("base64url");
}

/** assertKey throws a TypeError naming the type when a client key is not a string. */
export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== "string") {
    throw new TypeError(`floodgate: the client key must be a string, got ${typeof key}`);
  }
}
