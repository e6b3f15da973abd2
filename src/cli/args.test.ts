import { describe, expect, it } from "vitest";
import { parseHeader, parseProbeArgs, UsageError } from "./args.js";

const URL_ = "http://127.0.0.1:8000/data";

describe("parseProbeArgs", () => {
  it("has the documented defaults", () => {
    const { options, notices } = parseProbeArgs([URL_]);
    expect(options).toEqual({
      url: new URL(URL_),
      requests: 15,
      wait: 3,
      method: "GET",
      headers: [],
      json: false,
      timeout: 10,
      rate: null,
      html: null,
    });
    expect(notices).toEqual([]);
  });

  it("reads every flag, long and short", () => {
    const long = parseProbeArgs([
      URL_,
      "--requests",
      "20",
      "--wait",
      "0.5",
      "--method",
      "head",
      "--header",
      "A: 1",
      "--header",
      "B:2",
      "--timeout",
      "2",
      "--json",
    ]).options;
    const short = parseProbeArgs([
      URL_,
      "-n",
      "20",
      "-w",
      "0.5",
      "-X",
      "head",
      "-H",
      "A: 1",
      "-H",
      "B:2",
      "-t",
      "2",
      "--json",
    ]).options;
    expect(long).toEqual(short);
    expect(long).toMatchObject({ requests: 20, wait: 0.5, method: "HEAD", timeout: 2, json: true });
    expect(long.headers).toEqual([
      ["A", "1"],
      ["B", "2"],
    ]);
  });

  it("takes rate mode with a default duration, and --html only with --rate", () => {
    expect(parseProbeArgs([URL_, "--rate", "5"]).options.rate).toEqual({
      perSecond: 5,
      duration: 10,
    });
    expect(
      parseProbeArgs([URL_, "-r", "0.5", "-d", "4", "--html", "x.html"]).options,
    ).toMatchObject({
      rate: { perSecond: 0.5, duration: 4 },
      html: "x.html",
    });
  });

  it("caps values above the maxima and says so", () => {
    const { options, notices } = parseProbeArgs([URL_, "-n", "5000", "-w", "1000", "-t", "999"]);
    expect([options.requests, options.wait, options.timeout]).toEqual([1000, 300, 120]);
    expect(notices).toEqual([
      "--requests 5000 is above the maximum; using 1000",
      "--wait 1000 is above the maximum; using 300",
      "--timeout 999 is above the maximum; using 120",
    ]);
    const rate = parseProbeArgs([URL_, "--rate", "1000", "--duration", "600"]);
    expect(rate.options.rate).toEqual({ perSecond: 200, duration: 120 });
    expect(rate.notices).toHaveLength(2);
  });

  it.each([
    [[], "missing URL: floodgate probe http://127.0.0.1:8000/data"],
    [[URL_, URL_], `expected one URL, got 2: ${URL_} ${URL_}`],
    [["not a url"], 'not a URL: "not a url" (try http://127.0.0.1:8000/data)'],
    [["ftp://example.com/"], "only http and https URLs can be probed, got ftp:"],
    [[URL_, "-n", "1.5"], '--requests must be a whole number > 0, got "1.5"'],
    [[URL_, "-n", ""], '--requests must be a whole number > 0, got ""'],
    [[URL_, "--wait=-1"], '--wait must be a number >= 0, got "-1"'],
    [[URL_, "-w", "-1"], "Option '-w' argument is ambiguous. Did you forget"],
    [[URL_, "-r", "0"], '--rate must be a number > 0, got "0"'],
    [[URL_, "-r", "fast"], '--rate must be a number > 0, got "fast"'],
    [[URL_, "-d", "5"], "--duration needs --rate, e.g. --rate 5 --duration 10"],
    [
      [URL_, "-r", "5", "-n", "5"],
      "--requests is for a burst; with --rate give --duration instead",
    ],
    [
      [URL_, "--html", "x.html"],
      "--html needs --rate: the page charts a steady run, e.g. --rate 5 --html probe.html",
    ],
    [[URL_, "-X", "GET /"], '--method must be an HTTP method such as GET, got "GET /"'],
    [[URL_, "-H", "no colon"], '--header must look like "Name: value", got "no colon"'],
    [[URL_, "--frobnicate"], "Unknown option '--frobnicate'"],
  ])("rejects %j: %s", (argv, message) => {
    expect(() => parseProbeArgs(argv)).toThrow(UsageError);
    expect(() => parseProbeArgs(argv)).toThrow(message);
  });
});

describe("parseHeader", () => {
  it.each([
    ["Authorization: Bearer a:b", ["Authorization", "Bearer a:b"]],
    ["X-Empty:", ["X-Empty", ""]],
    ["  X-Pad  :  v  ", ["X-Pad", "v"]],
  ])("reads %j", (raw, want) => {
    expect(parseHeader(raw)).toEqual(want);
  });

  it.each([": v", "Bad Name: v", "Näme: v"])("rejects %j", (raw) => {
    expect(() => parseHeader(raw)).toThrow(UsageError);
  });

  // Each of these made fetch throw, which the probe reported as "cannot reach" the URL (exit 1).
  it.each([
    [
      "X-A: a\r\nX-B: b",
      "--header X-A has a line break or NUL in its value; give the value on one line",
    ],
    [
      "X-A: a\u0000",
      "--header X-A has a line break or NUL in its value; give the value on one line",
    ],
    ["X-A: ✓", "--header X-A has a character that is not Latin-1 in its value; percent-encode it"],
  ])("rejects the value of %j, naming the flag", (raw, message) => {
    expect(() => parseHeader(raw)).toThrow(message);
    expect(() => parseHeader("X-Ok: café")).not.toThrow();
  });
});

describe("parseProbeArgs refuses what fetch cannot send, naming the flag and the fix", () => {
  it.each([
    [
      ["http://user:secret@127.0.0.1:8000/"],
      'the URL must not hold a user or password; send them as a header instead: --header "Authorization: Basic ..."',
    ],
    [
      ["file:///etc/passwd"],
      "only http and https URLs can be probed, got file: (try http://127.0.0.1:8000/data)",
    ],
    [
      ["http://127.0.0.1:8000/", "-X", "trace"],
      "--method TRACE cannot be sent by the probe; use GET, HEAD, POST or another method",
    ],
    [
      ["http://127.0.0.1:8000/", "--method", "CONNECT"],
      "--method CONNECT cannot be sent by the probe; use GET, HEAD, POST or another method",
    ],
  ])("%j", (argv, message) => {
    let error: unknown;
    try {
      parseProbeArgs(argv);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe(message);
    expect((error as Error).message).not.toContain("secret");
  });
});
