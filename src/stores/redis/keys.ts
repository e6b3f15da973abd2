import { createHash } from "node:crypto";
import { boundKey } from "../../core/key.js";

/** Longest client identifier kept verbatim in a key; longer ones are hashed. */
const MAX_ID = 44;
/** Longest policy name kept verbatim in a key; longer ones are hashed. */
const MAX_NAME = 24;
/** Longest prefix accepted, so a key stays under 100 bytes: 20 + 2 + 44 + 2 + 24 = 92. */
export const MAX_PREFIX = 20;

/**
 * keyId is the part of a Redis key that names a client, the text inside the
 * `{hash tag}`. Short printable ASCII identifiers are kept as they are, so keys
 * stay readable in `redis-cli`. Anything else is replaced by `#` and 27
 * base64url characters of its SHA-256 (160 bits): empty identifiers (an empty
 * tag `{}` would not pin a slot), long ones (keys must not grow with input),
 * ones with braces (a hostile `}` could choose the Cluster slot), control
 * characters, NUL, non-ASCII, and ones starting with `#` (which could
 * otherwise pose as another client's hash). A key longer than 64 bytes is
 * first bounded as everywhere else (boundKey), so a client reaches the same
 * Redis key through a RateLimiter and through the store called directly.
 */
export function keyId(id: string): string {
  id = boundKey(id);
  const n = id.length;
  if (n === 0 || n > MAX_ID || id.charCodeAt(0) === 0x23) return hashed(id);
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x7b || c === 0x7d) return hashed(id);
  }
  return id;
}

/** keyName is a policy's part of a key: its name, hashed when longer than 24 characters. */
export function keyName(name: string): string {
  return name.length > MAX_NAME ? `#${hash(name).slice(0, 16)}` : name;
}

/** A byte that never occurs in UTF-8: marks identifiers hashed as UTF-16 code units. */
const UTF16 = Buffer.from([0xff]);

function hashed(id: string): string {
  // UTF-8 turns every lone surrogate into the same U+FFFD, so "\uD800",
  // "\uDBFF" and "\uFFFD" would share one bucket: such identifiers are hashed
  // as UTF-16 code units instead, after a byte UTF-8 never has (as boundKey
  // does for long keys). Well-formed identifiers keep their Redis keys.
  if ((id as { isWellFormed?: () => boolean }).isWellFormed?.() === false) {
    const digest = createHash("sha256").update(UTF16).update(Buffer.from(id, "utf16le"));
    return `#${digest.digest("base64url").slice(0, 27)}`;
  }
  return `#${hash(id).slice(0, 27)}`;
}

function hash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("base64url");
}

/** PREFIX is what a valid prefix looks like: no braces, spaces or control characters. */
export const PREFIX = /^[A-Za-z0-9_.:-]{1,20}$/;
