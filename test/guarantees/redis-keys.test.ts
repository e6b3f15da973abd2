/**
 * Issue 8 item 6, the Redis half: whatever a client's identifier is (1 MB,
 * NUL, CR/LF, braces, any Unicode), its Redis keys stay under 100 bytes and
 * hold exactly one `{hash tag}` that the client cannot choose. The keys are
 * built as RedisStore builds them (`prefix:{id}:policy`, longest prefix and
 * policy name); test/redis-store.test.ts checks the same on a real server.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyId, keyName, MAX_PREFIX } from "../../src/stores/redis/keys.js";

const prefix = "p".repeat(MAX_PREFIX);
const names = ["a".repeat(64), "b", "per-hour"];

function redisKeys(id: string): string[] {
  return names.map((n) => `${prefix}:{${keyId(id)}}:${keyName(n)}`);
}

describe("guarantee: Redis keys stay under 100 bytes for hostile identifiers", () => {
  it("1 MB, NUL, CR/LF, brace-laden and 10,000 random identifiers", () => {
    const hostile = [
      "x".repeat(1 << 20),
      "\u0000",
      "a\r\nb",
      "\r\n".repeat(1000),
      "}{",
      "{victim}",
      "{".repeat(5000),
      "#fake",
      "",
      "ü".repeat(30),
      "x".repeat(44),
      "x".repeat(45),
    ];
    const random = fc.sample(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 300 }),
        fc.string({ unit: "grapheme", maxLength: 100 }),
        fc.string({
          unit: fc.constantFrom("{", "}", "\r", "\n", "\u0000", ":", "#", "a"),
          maxLength: 200,
        }),
      ),
      { numRuns: 10_000, seed: 6 },
    );
    let longest = 0;
    let keys = 0;
    for (const id of [...hostile, ...random]) {
      for (const key of redisKeys(id)) {
        const bytes = Buffer.byteLength(key);
        longest = Math.max(longest, bytes);
        keys++;
        expect(bytes).toBeLessThan(100);
        expect(key.match(/[{}]/g)).toEqual(["{", "}"]);
        expect(key).toMatch(/^[ -~]+$/);
      }
    }
    // Distinct identifiers never share a key (hashed ones are 160-bit SHA-256 prefixes).
    const ids = new Set([...hostile, ...random]);
    expect(new Set([...ids].map((id) => keyId(id))).size).toBe(ids.size);
    console.log(
      `guarantee: Redis keys: ${hostile.length + random.length} hostile and random identifiers (${ids.size} distinct, up to 1 MB) -> ${keys} keys, longest ${longest} bytes (bound 100), one hash tag each, no control or non-ASCII byte, no two identifiers share a key`,
    );
  });
});
