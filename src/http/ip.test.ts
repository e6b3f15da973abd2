import { isIP } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addressKey,
  formatIPv6,
  formatKey,
  newWords,
  parseHost,
  parseIPv4,
  parseIPv6,
  sameAddress,
} from "./ip.js";

function words(text: string) {
  const w = newWords();
  return parseHost(text, 0, text.length, w) ? w : undefined;
}

describe("parsing addresses", () => {
  it.each([
    ["0.0.0.0", 0],
    ["1.2.3.4", 0x01020304],
    ["255.255.255.255", 0xffffffff],
    ["10.0.0.1", 0x0a000001],
  ])("reads IPv4 %s", (text, value) => {
    expect(parseIPv4(text, 0, text.length)).toBe(value);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1..2.3",
    ".1.2.3",
    "1.2.3.",
    "1.2.3.4a",
    "a.b.c.d",
    "1.2.3.-4",
  ])("refuses IPv4 %j like node's net.isIP", (text) => {
    expect(parseIPv4(text, 0, text.length)).toBe(-1);
    expect(isIP(text)).toBe(0);
  });

  it.each([
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ["fe80::1%eth0", "fe80::1"],
    ["::1.2.3.4", "::102:304"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ])("reads IPv6 %s and writes it as %s (RFC 5952)", (text, canonical) => {
    const w = newWords();
    expect(parseIPv6(text, 0, text.length, w)).toBe(true);
    expect(formatIPv6(w)).toBe(canonical);
  });

  it.each([
    ":",
    ":1",
    "1:",
    "1:::2",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "12345::",
    "g::1",
    "::1.2.3",
    "1:2:3:4:5:6:7:1.2.3.4",
    "fe80::1%",
    "::ffff:1.2.3.4x",
  ])("refuses IPv6 %j like node's net.isIP", (text) => {
    expect(parseIPv6(text, 0, text.length, newWords())).toBe(false);
    expect(isIP(text)).toBe(0);
  });

  it.each([
    [" 1.2.3.4 ", "1.2.3.4"],
    ["1.2.3.4:8080", "1.2.3.4"],
    ["[2001:db8::1]", "2001:db8::1"],
    ["[2001:db8::1]:4711", "2001:db8::1"],
    ["\t2001:db8::1", "2001:db8::1"],
  ])("reads %j as a proxy writes it", (text, expected) => {
    const w = words(text);
    expect(w).toBeDefined();
    expect(sameAddress(w as Uint32Array, words(expected) as Uint32Array)).toBe(true);
  });

  it.each([
    "",
    "  ",
    "unknown",
    "_hidden",
    "example.com",
    "[2001:db8::1",
    "[2001:db8::1]x",
    "[2001:db8::1]:",
    "[2001:db8::1]:123456",
    "[1.2.3.4]",
    "1.2.3.4:",
    "1.2.3.4:http",
  ])("refuses %j", (text) => {
    expect(words(text)).toBeUndefined();
  });

  it("agrees with node's net.isIP on what is an address", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string({ maxLength: 40 })),
        (text) => {
          const ok =
            text.indexOf(":") < 0
              ? parseIPv4(text, 0, text.length) >= 0
              : parseIPv6(text, 0, text.length, newWords());
          // node accepts IPv6 zone ids (ignored here too); neither accepts the
          // octal and hex forms of ipV4Extended.
          expect(ok).toBe(isIP(text) !== 0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("writes what it reads: canonical text parses back to the same address", () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const w = words(text) as Uint32Array;
        expect(sameAddress(words(formatIPv6(w)) as Uint32Array, w)).toBe(true);
      }),
    );
  });
});

describe("client keys", () => {
  it.each([
    ["1.2.3.4", "1.2.3.4"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::FFFF:1.2.3.4", "1.2.3.4"],
    ["::ffff:102:304", "1.2.3.4"],
    ["0:0:0:0:0:ffff:0102:0304", "1.2.3.4"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::", "2001:db8:1:2::/64"],
    ["::1", "::/64"],
    ["fe80::1%eth0", "fe80::/64"],
    ["not an address", "unknown"],
    ["", "unknown"],
  ])("socket address %j -> %j", (address, key) => {
    expect(addressKey(address, 64)).toBe(key);
  });

  it("keys a whole IPv6 address at /128 and a wider subnet at /48", () => {
    expect(addressKey("2001:db8:1:2:3:4:5:6", 128)).toBe("2001:db8:1:2:3:4:5:6");
    expect(addressKey("2001:db8:1:2:3:4:5:6", 48)).toBe("2001:db8:1::/48");
    expect(addressKey("2001:db8:1:2:3:4:5:6", 1)).toBe("::/1");
    expect(addressKey("ffff::", 1)).toBe("8000::/1");
  });

  it("gives 10,000 addresses of one /64 one key", () => {
    const seen = new Set<string>();
    let x = 0x9e3779b9;
    for (let i = 0; i < 10_000; i++) {
      const groups: string[] = [];
      for (let g = 0; g < 4; g++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        groups.push((x >>> 16).toString(16));
      }
      seen.add(addressKey(`2001:db8:aaaa:bbbb:${groups.join(":")}`, 64));
    }
    expect([...seen]).toEqual(["2001:db8:aaaa:bbbb::/64"]);
  });

  it("gives every address of a /64 its subnet's key, and other subnets other keys", () => {
    const group = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
    fc.assert(
      fc.property(
        fc.array(group, { minLength: 4, maxLength: 4 }),
        fc.array(group, { minLength: 4, maxLength: 4 }),
        fc.array(group, { minLength: 4, maxLength: 4 }),
        (net, host, other) => {
          const a = `${net.join(":")}:${host.join(":")}`;
          const b = `${net.join(":")}:${other.join(":")}`;
          expect(addressKey(a, 64)).toBe(addressKey(b, 64));
          const networkOf = (text: string) => addressKey(text, 64).split("/")[0] as string;
          expect(
            sameAddress(
              words(networkOf(a)) as Uint32Array,
              words(`${net.join(":")}::`) as Uint32Array,
            ),
          ).toBe(true);
        },
      ),
    );
  });

  it("keys IPv4 and its IPv6-mapped forms alike, and distinct IPv4 apart", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), (a, b) => {
        const [p, q, r, s] = a.split(".").map(Number) as [number, number, number, number];
        const hex = `::ffff:${((p << 8) | q).toString(16)}:${((r << 8) | s).toString(16)}`;
        expect(addressKey(a, 64)).toBe(a);
        expect(addressKey(`::ffff:${a}`, 64)).toBe(a);
        expect(addressKey(hex, 64)).toBe(a);
        expect(formatKey(words(`[::ffff:${a}]:80`) as Uint32Array, 64)).toBe(a);
        if (a !== b) expect(addressKey(a, 64)).not.toBe(addressKey(b, 64));
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on garbage", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 60 }),
        fc.integer({ min: 1, max: 128 }),
        (text, prefix) => {
          expect(typeof addressKey(text, prefix)).toBe("string");
          const w = newWords();
          if (parseHost(text, 0, text.length, w))
            expect(typeof formatKey(w, prefix)).toBe("string");
        },
      ),
      { numRuns: 3000 },
    );
  });
});
