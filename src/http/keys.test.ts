import { BlockList, isIP } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../core/errors.js";
import { addressKey } from "./ip.js";
import { type IpKeyOptions, keys, type RequestReader } from "./keys.js";
import { clientKey, forwardedFor } from "./proxy.js";

interface FakeRequest {
  socket?: string;
  headers: Record<string, string>;
}

const reader: RequestReader<FakeRequest> = {
  address: (r) => r.socket,
  header: (r, name) => r.headers[name],
};

function keyOf(options: IpKeyOptions, socket: string | undefined, headers: Record<string, string>) {
  const request: FakeRequest = socket === undefined ? { headers } : { socket, headers };
  return keys.ip(options)(request, reader);
}

describe("keys.ip without trusted proxies", () => {
  it("reads the socket and ignores what the client claims", () => {
    const headers = { "x-forwarded-for": "6.6.6.6", forwarded: "for=6.6.6.6" };
    expect(keyOf({}, "10.0.0.7", headers)).toBe("10.0.0.7");
    expect(keyOf({ trustProxy: false }, "::ffff:10.0.0.7", headers)).toBe("10.0.0.7");
    expect(keyOf({ trustProxy: 0 }, "2001:db8::7", headers)).toBe("2001:db8::/64");
    expect(keyOf({ trustProxy: [] }, "10.0.0.7", headers)).toBe("10.0.0.7");
  });

  it('keys a request without a socket address as "unknown"', () => {
    expect(keyOf({}, undefined, {})).toBe("unknown");
    expect(keyOf({ trustProxy: ["10.0.0.0/8"] }, undefined, { "x-forwarded-for": "1.2.3.4" })).toBe(
      "unknown",
    );
  });

  it("maps garbage headers to the socket's key and never throws", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 })),
        fc.string({ unit: "binary", maxLength: 80 }),
        fc.string({ unit: "binary", maxLength: 80 }),
        fc.constantFrom<IpKeyOptions>({}, { trustProxy: ["192.0.2.0/24"] }, { trustProxy: 0 }),
        (socket, xff, fwd, options) => {
          const headers = { "x-forwarded-for": xff, forwarded: fwd };
          expect(keyOf(options, socket, headers)).toBe(addressKey(socket, 64));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("keys.ip behind trusted proxies", () => {
  const proxy = "10.0.0.1";
  it.each<[string, IpKeyOptions, Record<string, string>, string]>([
    [
      "one hop: the rightmost entry",
      { trustProxy: 1 },
      { "x-forwarded-for": "6.6.6.6, 1.2.3.4" },
      "1.2.3.4",
    ],
    ["two hops", { trustProxy: 2 }, { "x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.2" }, "1.2.3.4"],
    [
      "a chain shorter than the count: its leftmost",
      { trustProxy: 3 },
      { "x-forwarded-for": "1.2.3.4" },
      "1.2.3.4",
    ],
    ["no header: the socket", { trustProxy: 1 }, {}, proxy],
    ["an empty header: the socket", { trustProxy: 1 }, { "x-forwarded-for": "" }, proxy],
    [
      "garbage at the client's hop: the last trusted hop",
      { trustProxy: 1 },
      { "x-forwarded-for": "1.2.3.4, junk" },
      proxy,
    ],
    [
      "an empty entry stops the walk",
      { trustProxy: 2 },
      { "x-forwarded-for": "1.2.3.4,,10.0.0.2" },
      "10.0.0.2",
    ],
    [
      "a leading comma stops the walk",
      { trustProxy: 3 },
      { "x-forwarded-for": ",1.2.3.4" },
      "1.2.3.4",
    ],
    [
      "ports and brackets",
      { trustProxy: 1 },
      { "x-forwarded-for": "[2001:db8::1]:4711" },
      "2001:db8::/64",
    ],
    ["IPv4 with a port", { trustProxy: 1 }, { "x-forwarded-for": "1.2.3.4:5678" }, "1.2.3.4"],
    [
      "mapped IPv4 in the header",
      { trustProxy: 1 },
      { "x-forwarded-for": "::ffff:102:304" },
      "1.2.3.4",
    ],
    [
      "a trusted list: skips trusted hops",
      { trustProxy: ["10.0.0.0/8"] },
      { "x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.9.9.9" },
      "1.2.3.4",
    ],
    [
      "a trusted list as one string",
      { trustProxy: "10.0.0.1, 10.9.9.9" },
      { "x-forwarded-for": "1.2.3.4, 10.9.9.9" },
      "1.2.3.4",
    ],
    [
      "a named range",
      { trustProxy: "uniquelocal" },
      { "x-forwarded-for": "1.2.3.4, 192.168.1.1" },
      "1.2.3.4",
    ],
    [
      "half of IPv4 trusted: the hops it covers",
      { trustProxy: ["0.0.0.0/1"] },
      { "x-forwarded-for": "200.0.0.1, 1.2.3.4, 10.0.0.3" },
      "200.0.0.1",
    ],
    [
      "Forwarded",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { forwarded: "for=6.6.6.6, for=1.2.3.4;proto=https" },
      "1.2.3.4",
    ],
    [
      "Forwarded, quoted IPv6 with a port",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { forwarded: 'for="[2001:db8:cafe::17]:4711"' },
      "2001:db8:cafe::/64",
    ],
    [
      "Forwarded, case-insensitive name",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { forwarded: "For=1.2.3.4" },
      "1.2.3.4",
    ],
    [
      "Forwarded, unknown: the last trusted hop",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { forwarded: "for=unknown" },
      proxy,
    ],
    [
      "Forwarded, obfuscated: the last trusted hop",
      { trustProxy: 2, proxyHeader: "forwarded" },
      { forwarded: 'for="_gazonk", for=10.0.0.2' },
      "10.0.0.2",
    ],
    [
      "X-Forwarded-For by default: a Forwarded the client added is ignored",
      { trustProxy: 1 },
      { "x-forwarded-for": "1.2.3.4", forwarded: "for=6.6.6.6" },
      "1.2.3.4",
    ],
    [
      "trusting loopback: a Forwarded the client added is ignored",
      { trustProxy: ["loopback", "10.0.0.0/8"] },
      { "x-forwarded-for": "1.2.3.4", forwarded: "for=6.6.6.6", "x-real-ip": "6.6.6.6" },
      "1.2.3.4",
    ],
    [
      "X-Forwarded-For by default: a Forwarded alone changes nothing",
      { trustProxy: ["loopback", "10.0.0.0/8"] },
      { forwarded: "for=6.6.6.6" },
      proxy,
    ],
    [
      "X-Forwarded-For when named",
      { trustProxy: 1, proxyHeader: "x-forwarded-for" },
      { "x-forwarded-for": "1.2.3.4", forwarded: "for=6.6.6.6" },
      "1.2.3.4",
    ],
    [
      "only Forwarded when named",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { "x-forwarded-for": "6.6.6.6", forwarded: "for=1.2.3.4" },
      "1.2.3.4",
    ],
    [
      "Forwarded: a client's unclosed quote swallows no element a proxy appended",
      { trustProxy: 1, proxyHeader: "forwarded" },
      { forwarded: 'for="6.6.6.6, for=1.2.3.4' },
      "1.2.3.4",
    ],
    [
      "Forwarded: quoted commas and escapes in the client's part",
      { trustProxy: 2, proxyHeader: "forwarded" },
      { forwarded: 'for="a,\\"b", for="[2001:db8::1]:80", for=10.0.0.2' },
      "2001:db8::/64",
    ],
    [
      "Forwarded: the client's garbage element stops the walk at the proxy's",
      { trustProxy: 3, proxyHeader: "forwarded" },
      { forwarded: 'for=6.6.6.6;;x="y, for=1.2.3.4' },
      "1.2.3.4",
    ],
    [
      "an IPv6 subnet of your choice",
      { trustProxy: 1, ipv6Subnet: 48 },
      { "x-forwarded-for": "2001:db8:1:2::1" },
      "2001:db8:1::/48",
    ],
  ])("%s", (_, options, headers, expected) => {
    expect(keyOf(options, proxy, headers)).toBe(expected);
  });

  it("believes nothing from a socket outside the trusted list", () => {
    const headers = { "x-forwarded-for": "1.2.3.4" };
    expect(keyOf({ trustProxy: ["10.0.0.0/8"] }, "192.0.2.1", headers)).toBe("192.0.2.1");
    expect(keyOf({ trustProxy: ["10.0.0.0/8"] }, "::ffff:10.1.2.3", headers)).toBe("1.2.3.4");
    expect(keyOf({ trustProxy: ["10.0.0.0/8"] }, "garbage", headers)).toBe("unknown");
    expect(keyOf({ trustProxy: ["fd00::/8"] }, "fd00::1", headers)).toBe("1.2.3.4");
    expect(keyOf({ trustProxy: ["fd00::/8"] }, "fe00::1", headers)).toBe("fe00::/64");
  });

  it("with nothing trusted, answers with the socket whatever the headers say", () => {
    const none = { hops: 0, ranges: undefined };
    expect(clientKey(none, "x-forwarded-for", 64, "10.0.0.1", "1.2.3.4")).toBe("10.0.0.1");
    expect(clientKey(none, "forwarded", 64, "10.0.0.1", "for=1.2.3.4")).toBe("10.0.0.1");
  });

  it("trusts a socket without an address by hop count (a Unix socket behind a proxy)", () => {
    expect(keyOf({ trustProxy: 1 }, undefined, { "x-forwarded-for": "1.2.3.4" })).toBe("1.2.3.4");
  });

  // A reference model built on node's own parser and BlockList: the client is
  // the first hop from the right that is not a trusted proxy.
  function model(ranges: string[], socket: string, entries: string[]): string {
    const list = new BlockList();
    for (const range of ranges) {
      const [address, bits] = range.split("/") as [string, string];
      list.addSubnet(address, Number(bits), isIP(address) === 4 ? "ipv4" : "ipv6");
    }
    const trusted = (a: string) => isIP(a) !== 0 && list.check(a, isIP(a) === 4 ? "ipv4" : "ipv6");
    let current = socket;
    for (let i = entries.length - 1; i >= 0 && trusted(current); i--) {
      const next = (entries[i] as string).trim();
      if (isIP(next) === 0) break;
      current = next;
    }
    return addressKey(current, 64);
  }

  it("never picks a hop that an untrusted hop wrote (against a reference model)", () => {
    const ranges = ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "2001:db8:ffff::/48"];
    const address = fc.oneof(
      fc.constantFrom("10.0.0.1", "10.200.3.4", "192.168.7.7", "fd00::1", "2001:db8:ffff::9"),
      fc.ipV4(),
      fc.ipV6(),
      fc.constantFrom("unknown", "", "junk", "1.2.3"),
    );
    fc.assert(
      fc.property(
        fc.subarray(ranges, { minLength: 1 }),
        address,
        fc.array(address, { maxLength: 6 }),
        (trusted, socket, entries) => {
          const headers = { "x-forwarded-for": entries.join(", ") };
          const got = keyOf({ trustProxy: trusted }, socket, entries.length ? headers : {});
          expect(got).toBe(model(trusted, socket, entries));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("by hop count, picks the hop that many steps from the socket, or stops early at garbage", () => {
    const entry = fc.oneof(fc.ipV4(), fc.constantFrom("junk", ""));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(entry, { maxLength: 8 }),
        (hops, entries) => {
          const got = keyOf({ trustProxy: hops }, "10.0.0.1", {
            "x-forwarded-for": entries.join(","),
          });
          let current = "10.0.0.1";
          for (let step = 1; step <= hops && step <= entries.length; step++) {
            const next = entries[entries.length - step] as string;
            if (isIP(next) === 0) break;
            current = next;
          }
          expect(got).toBe(current);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("never throws on garbage, whatever it trusts", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<IpKeyOptions>(
          { trustProxy: 1 },
          { trustProxy: 3 },
          { trustProxy: ["0.0.0.0/1", "8000::/1"] },
          { trustProxy: 2, proxyHeader: "forwarded" },
        ),
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        fc.string({ unit: "binary", maxLength: 120 }),
        fc.string({ unit: "binary", maxLength: 120 }),
        (options, socket, xff, fwd) => {
          expect(typeof keyOf(options, socket, { "x-forwarded-for": xff, forwarded: fwd })).toBe(
            "string",
          );
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("the Forwarded header (RFC 7239)", () => {
  it.each<[string, string[]]>([
    ["for=192.0.2.60;proto=http;by=203.0.113.43", ["192.0.2.60"]],
    ['for="_gazonk"', ["_gazonk"]],
    ['For="[2001:db8:cafe::17]:4711"', ["[2001:db8:cafe::17]:4711"]],
    ["for=192.0.2.43, for=198.51.100.17", ["192.0.2.43", "198.51.100.17"]],
    [
      'for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown',
      ["192.0.2.43", "[2001:db8:cafe::17]", "unknown"],
    ],
    ['for="a,b;c", for=d', ["a,b;c", "d"]],
    ['for="a\\"b"', ['a"b']],
    ["proto=https", [""]],
    ["for=a;for=b", [""]],
    ['for="unterminated', [""]],
    ['for="a"b, for=c', ["", "c"]],
    ["junk, for=c", ["", "c"]],
    [" for = 1.2.3.4 ;by=x", ["1.2.3.4"]],
    ['for="1.2.3.4" , for="5.6.7.8"\t;by=x', ["1.2.3.4", "5.6.7.8"]],
    ["", [""]],
    [",", ["", ""]],
  ])("%j -> %j", (header, values) => {
    expect(forwardedFor(header)).toEqual(values);
  });
});

describe("keys.ip options", () => {
  it.each<[unknown, RegExp]>([
    [{ trustProxy: true }, /"keys.ip.trustProxy" would trust every hop.*Fix: give the number/],
    [{ trustProxy: -1 }, /"keys.ip.trustProxy" must be a whole number of proxy hops/],
    [{ trustProxy: 1.5 }, /proxy hops/],
    [{ trustProxy: 101 }, /proxy hops from 0 to 100/],
    [{ trustProxy: ["10.0.0.0/8", "nope"] }, /"keys.ip.trustProxy\[1\]".*got "nope"/],
    [{ trustProxy: ["10.0.0.0/33"] }, /trustProxy\[0\]/],
    [{ trustProxy: ["::/129"] }, /trustProxy\[0\]/],
    [{ trustProxy: ["10.0.0.1:80"] }, /trustProxy\[0\]/],
    [{ trustProxy: ["[::1]"] }, /trustProxy\[0\]/],
    [{ trustProxy: [7] }, /trustProxy\[0\].*got 7/],
    [{ trustProxy: "10.0.0.1, x" }, /"keys.ip.trustProxy".*got "10.0.0.1, x"/],
    [{ trustProxy: {} }, /must be false, a hop count, or a list/],
    [
      { proxyHeader: "x-real-ip" },
      /"keys.ip.proxyHeader" must be "x-forwarded-for" or "forwarded"/,
    ],
    [{ header: "forwarded" }, /"keys.ip.header" is not a keys.ip option.*proxyHeader: "forwarded"/],
    [
      { trustProxy: ["0.0.0.0/0"] },
      /trusts every IPv4 address as a proxy.*Fix: give the number of proxies/,
    ],
    [{ trustProxy: "::/0" }, /"keys.ip.trustProxy" trusts every IPv4 address/],
    [{ trustProxy: ["::ffff:0:0/96"] }, /every IPv4 address/],
    [{ trustProxy: ["::/80"] }, /every IPv4 address/],
    [{ trustProxy: ["0.0.0.0/1", "loopback", "128.0.0.0/1"] }, /every IPv4 address/],
    [{ trustProxy: ["2000::/3"] }, /every public IPv6 \(2000::\/3\) address/],
    [{ trustProxy: ["2000::/4", "3000::/4"] }, /every public IPv6/],
    [{ trustProxy: ["8000::/1", "::/1"] }, /every IPv4 address/],
    [{ ipv6Subnet: 0 }, /"keys.ip.ipv6Subnet" must be a prefix length from 1 to 128/],
    [{ ipv6Subnet: 129 }, /ipv6Subnet/],
    [{ trustproxy: 1 }, /"keys.ip.trustproxy" is not a keys.ip option/],
    [null, /"keys.ip\(options\)" must be an object/],
  ])("%j is refused", (options, message) => {
    expect(() => keys.ip(options as IpKeyOptions)).toThrow(ConfigError);
    expect(() => keys.ip(options as IpKeyOptions)).toThrow(message);
  });

  it("accepts addresses, ranges and named ranges", () => {
    for (const trustProxy of [
      ["10.0.0.1"],
      ["2001:db8::/32", "::1"],
      ["loopback", "linklocal", "uniquelocal"],
      "127.0.0.1",
      ["0.0.0.0/1", "128.0.0.0/2", "::/81", "2000::/4", "fc00::/7"],
    ]) {
      expect(typeof keys.ip({ trustProxy })).toBe("function");
    }
  });
});

describe("keys.header", () => {
  const byKey = keys.header("X-API-Key");

  it("keys by the header's value, apart from any IP key", () => {
    expect(byKey({ socket: "1.2.3.4", headers: { "x-api-key": "abc" } }, reader)).toBe(
      "x-api-key=abc",
    );
    const spoof = byKey({ socket: "6.6.6.6", headers: { "x-api-key": "1.2.3.4" } }, reader);
    expect(spoof).not.toBe(keys.ip()({ socket: "1.2.3.4", headers: {} }, reader));
  });

  it("falls back to the client IP, or the given key, without the header", () => {
    expect(byKey({ socket: "1.2.3.4", headers: {} }, reader)).toBe("1.2.3.4");
    expect(byKey({ socket: "1.2.3.4", headers: { "x-api-key": "" } }, reader)).toBe("1.2.3.4");
    const anonymous = keys.header<FakeRequest>("x-api-key", { fallback: () => "anonymous" });
    expect(anonymous({ headers: {} }, reader)).toBe("anonymous");
  });

  it.each<[unknown, unknown, RegExp]>([
    ["", undefined, /"keys.header\(name\)" must be a header name/],
    ["x api key", undefined, /got "x api key"/],
    [7, undefined, /got 7/],
    ["x-api-key", null, /"keys.header\(options\)" must be an object/],
    ["x-api-key", { fallbak: 1 }, /"keys.header.fallbak" is not a keys.header option/],
    ["x-api-key", { fallback: "ip" }, /"keys.header.fallback" must be a key function/],
  ])("refuses name %j with options %j", (name, options, message) => {
    expect(() => keys.header(name as string, options as never)).toThrow(message);
  });
});
