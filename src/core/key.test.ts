import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { boundKey, MAX_KEY_BYTES } from "./key.js";

const bytes = (s: string) => Buffer.byteLength(s, "utf8");
const DIGEST = /^sha256__[A-Za-z0-9_-]{43}$/;

describe("boundKey", () => {
  it.each([
    ["", true],
    ["203.0.113.7", true],
    ["a".repeat(64), true],
    ["a".repeat(65), false],
    // 21 three-byte characters are 63 bytes; 22 are 66.
    ["€".repeat(21), true],
    ["€".repeat(22), false],
    [`${"a".repeat(62)}é`, true],
    [`${"a".repeat(63)}é`, false],
    ["x".repeat(15_000), false],
  ])("%j kept as it is: %s", (key, kept) => {
    const held = boundKey(key);
    if (kept) expect(held).toBe(key);
    else expect(held).toMatch(DIGEST);
  });

  it("is a SHA-256 of the UTF-8 key, base64url, after a readable prefix", () => {
    const key = "k".repeat(100);
    const want = createHash("sha256").update(key).digest("base64url");
    expect(boundKey(key)).toBe(`sha256__${want}`);
  });

  it("keeps keys apart that UTF-8 would merge (lone surrogates)", () => {
    const a = `${"a".repeat(70)}\ud800`;
    const b = `${"a".repeat(70)}\ud801`;
    const c = `${"a".repeat(70)}\ufffd`;
    expect(new Set([boundKey(a), boundKey(b), boundKey(c)]).size).toBe(3);
  });

  it("returns what is not a string as it is, for the caller's type check", () => {
    for (const v of [42, undefined, null, { length: 100 }, new Array(100)]) {
      expect(boundKey(v as never)).toBe(v);
    }
  });

  it("property: at most 64 bytes, idempotent, the same for equal keys, apart for different ones", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 120 }),
        fc.string({ unit: "binary", maxLength: 120 }),
        (a, b) => {
          const ha = boundKey(a);
          expect(bytes(ha)).toBeLessThanOrEqual(MAX_KEY_BYTES);
          expect(boundKey(ha)).toBe(ha);
          expect(boundKey(`${a}`)).toBe(ha);
          if (bytes(a) <= MAX_KEY_BYTES) expect(ha).toBe(a);
          if (a !== b && bytes(a) > MAX_KEY_BYTES && bytes(b) > MAX_KEY_BYTES) {
            expect(boundKey(b)).not.toBe(ha);
          }
        },
      ),
      { numRuns: 2000, seed: 14 },
    );
  });
});
