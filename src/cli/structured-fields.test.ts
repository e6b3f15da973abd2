import { describe, expect, it } from "vitest";
import {
  isInnerList,
  memberName,
  parseDictionary,
  parseItem,
  parseList,
  type SfMember,
  SfToken,
} from "./structured-fields.js";

// A readable form of a parsed member: [value, {params}] or [[items...], {params}].
function plain(member: SfMember): unknown {
  const params = Object.fromEntries(
    [...member.params].map(([k, v]) => [k, v instanceof SfToken ? `token:${v.value}` : v]),
  );
  if (isInnerList(member)) return [member.items.map(plain), params];
  const v = member.value;
  return [v instanceof SfToken ? `token:${v.value}` : v, params];
}

describe("parseList", () => {
  it.each([
    ['"burst";q=10;w=5', [["burst", { q: 10, w: 5 }]]],
    [
      '"burst";q=10;w=5, "daily";q=1000;w=86400',
      [
        ["burst", { q: 10, w: 5 }],
        ["daily", { q: 1000, w: 86400 }],
      ],
    ],
    [
      '"burst";q=10;w=5,"daily";q=1000',
      [
        ["burst", { q: 10, w: 5 }],
        ["daily", { q: 1000 }],
      ],
    ],
    ["default;r=50;t=30", [["token:default", { r: 50, t: 30 }]]],
    ['  "a";r=1  ', [["a", { r: 1 }]]],
    [
      '"a";r=1 ,\t"b";r=2',
      [
        ["a", { r: 1 }],
        ["b", { r: 2 }],
      ],
    ],
    ['"a"; r=1', [["a", { r: 1 }]]],
    [
      '"p";q=10;qu="requests";pk=:AQID:',
      [["p", { q: 10, qu: "requests", pk: new Uint8Array([1, 2, 3]) }]],
    ],
    ['"x";t=1.5;flag', [["x", { t: 1.5, flag: true }]]],
    ['"x";b=?0;n=-3', [["x", { b: false, n: -3 }]]],
    ['"esc\\"aped\\\\"', [['esc"aped\\', {}]]],
    [
      "(1 2);w=3, 4",
      [
        [
          [
            [1, {}],
            [2, {}],
          ],
          { w: 3 },
        ],
        [4, {}],
      ],
    ],
    ["@1700000000", [[new Date(1_700_000_000_000), {}]]],
    ['%"caf%c3%a9"', [["café", {}]]],
    ["*tok/en:x", [["token:*tok/en:x", {}]]],
    ["", []],
  ])("parses %j", (input, expected) => {
    expect(parseList(input)?.map(plain)).toEqual(expected);
  });

  it.each([
    ['"burst";q=10,', "a trailing comma"],
    ['"burst" "daily"', "a missing comma"],
    ['"unterminated', "an open string"],
    ['"tab\there"', "a control character in a string"],
    ['"a";Q=10', "an upper-case parameter key"],
    ['"a";q=', "a parameter with no value"],
    ["1234567890123456", "an integer of 16 digits"],
    ["1.2345", "a decimal with 4 fractional digits"],
    ["1.", "a decimal with no fractional digits"],
    ["1234567890123.5", "a decimal with 13 integer digits"],
    ['"bad\\n"', "an unknown escape"],
    ["(1 2", "an open inner list"],
    [":not base64!:", "a bad byte sequence"],
    ["?2", "a bad boolean"],
    ['%"caf%C3%A9"', "upper-case hex in a display string"],
    ["@1.5", "a decimal date"],
    ["a;q=1 ;", "a trailing semicolon"],
    ["[x]", "an unknown item type"],
  ])("rejects %j (%s)", (input) => {
    expect(parseList(input)).toBeUndefined();
  });
});

describe("parseDictionary and parseItem", () => {
  it("parses draft-07's RateLimit dictionary", () => {
    const dict = parseDictionary("limit=10, remaining=9, reset=1");
    expect([...(dict ?? new Map())].map(([k, v]) => [k, plain(v)])).toEqual([
      ["limit", [10, {}]],
      ["remaining", [9, {}]],
      ["reset", [1, {}]],
    ]);
  });

  it("gives a bare key the value true", () => {
    expect(plain(parseDictionary("a, b;x=1")?.get("b") as SfMember)).toEqual([true, { x: 1 }]);
  });

  it("rejects a dictionary with a trailing comma or an upper-case key", () => {
    expect(parseDictionary("a=1,")).toBeUndefined();
    expect(parseDictionary("A=1")).toBeUndefined();
  });

  it("parses one item and rejects two", () => {
    expect(parseItem(" 42 ")?.value).toBe(42);
    expect(parseItem("42, 43")).toBeUndefined();
  });
});

describe("memberName", () => {
  it("reads Strings, Tokens and numbers as names, nothing else", () => {
    const [s, t, n, b, l] = parseList('"burst", default, 7, ?1, (1)') ?? [];
    expect([s, t, n, b, l].map((m) => memberName(m as SfMember))).toEqual([
      "burst",
      "default",
      "7",
      undefined,
      undefined,
    ]);
  });
});
