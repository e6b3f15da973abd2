import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type CliIo, main } from "./main.js";
import type { JsonReport } from "./render-json.js";
import { startTestServer, type TestServer } from "./test-server.js";

// DESIGN.md's worked example: 10 tokens of burst, 2 back every second.
const DEMO = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0, 250);

/** FakeTime is a clock shared by the probe and the server; sleeping moves it on at once. */
function fakeTime() {
  let now = T0;
  return {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
  };
}

function sink(isTTY = false) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (s: string) => chunks.push(s), text: () => chunks.join("") };
}

async function run(argv: string[], extra: Partial<CliIo> = {}) {
  const stdout = sink();
  const stderr = sink();
  const code = await main(argv, { stdout, stderr, env: {}, ...extra });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(options: Parameters<typeof startTestServer>[0]) {
  const server = await startTestServer(options);
  servers.push(server);
  return server;
}

describe("floodgate probe, burst mode", () => {
  it("sees DESIGN's burst: 10 allowed with remaining 9..0, 5 blocked, capacity 10, 6 back after 3 s", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const { code, stdout, stderr } = await run(["probe", server.url, "--json"], time);
    expect(stderr).toBe(
      "floodgate probe: waiting 3 s before the refill check\nfloodgate probe: refill check\n",
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as JsonReport;
    expect(Object.keys(report)).toEqual(["url", "requests", "totals", "policy", "refill"]);
    expect(report.url).toBe(server.url);
    expect(report.requests).toHaveLength(15);
    for (const r of report.requests) {
      expect(Object.keys(r)).toEqual(["n", "status", "remaining", "reset", "retryAfter"]);
    }
    expect(report.requests.map((r) => r.status)).toEqual([
      ...Array(10).fill(200),
      ...Array(5).fill(429),
    ]);
    expect(report.requests.map((r) => r.remaining)).toEqual([
      9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0,
    ]);
    expect(report.requests.map((r) => r.n)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(report.requests.every((r) => r.reset === 1)).toBe(true);
    expect(report.requests.map((r) => r.retryAfter)).toEqual([
      ...Array(10).fill(null),
      ...Array(5).fill(1),
    ]);
    expect(report.totals).toEqual({ allowed: 10, blocked: 5 });
    expect(report.policy).toEqual({
      limit: 10,
      window: 5,
      refillPerSecond: 2,
      policies: [{ name: "burst", limit: 10, window: 5 }],
      observed: { burst: 10, capacity: 10, refillPerSecond: 2 },
    });
    expect(report.refill).toEqual({ waited: 3, allowed: 6, blocked: 1 });
    expect(report.series).toBeUndefined();
    // 15 in the burst, then 6 allowed and the 429 that ends the refill check.
    expect(server.hits()).toBe(22);
  });

  it("prints a table, the totals, the policy and the refill check", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const { code, stdout } = await run(["probe", server.url], time);
    expect(code).toBe(0);
    const lines = stdout.split("\n");
    expect(lines[0]).toBe(`floodgate probe: GET ${server.url}, 15 requests`);
    expect(lines[2]?.trim().split(/\s+/)).toEqual([
      "n",
      "status",
      "remaining",
      "reset",
      "retry-after",
    ]);
    expect(lines[3]?.trim().split(/\s+/)).toEqual(["1", "200", "9", "1s", "-"]);
    expect(lines[12]?.trim().split(/\s+/)).toEqual(["10", "200", "0", "1s", "-"]);
    expect(lines[13]?.trim().split(/\s+/)).toEqual(["11", "429", "0", "1s", "1s"]);
    expect(stdout).toContain("totals    10 allowed, 5 blocked");
    expect(stdout).toContain("policy    limit 10, window 5 s, refill ≈ 2/s (from the headers)");
    expect(stdout).toContain(
      "observed  capacity 10 (allowed before the first 429), refill ≈ 2/s (6 back after 3 s)",
    );
    expect(stdout).toContain("refill    after 3 s: 6 allowed, 1 blocked");
    expect(stdout).not.toContain("\x1b[");
  });

  it.each([
    [{ FORCE_COLOR: "1" }, false, true],
    [{}, true, true],
    [{ NO_COLOR: "1" }, true, false],
    [{ FORCE_COLOR: "0" }, false, false],
  ])("colours the table for env %j on a terminal=%s: %s", async (env, isTTY, coloured) => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const stdout = sink(isTTY);
    const code = await main(["probe", server.url, "-n", "11", "-w", "0"], {
      stdout,
      stderr: sink(),
      env,
      ...time,
    });
    expect(code).toBe(0);
    const row = stdout
      .text()
      .split("\n")
      .find((line) => / 11 +429 /.test(line));
    expect(row?.startsWith("\x1b[31m")).toBe(coloured);
    expect(stdout.text().includes("\x1b[")).toBe(coloured);
  });

  it.each(["legacy", "ietf"] as const)(
    "infers capacity 10 from %s headers alone",
    async (headers) => {
      const time = fakeTime();
      const server = await serve({ policies: [DEMO], clock: time.now, headers });
      const { code, stdout } = await run(["probe", server.url, "--json", "--wait", "1"], time);
      expect(code).toBe(0);
      const report = JSON.parse(stdout) as JsonReport;
      expect(report.policy.limit).toBe(10);
      expect(report.policy.window).toBe(headers === "ietf" ? 5 : null);
      expect(report.requests.map((r) => r.remaining)).toEqual([
        9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0,
      ]);
      expect(report.refill).toEqual({ waited: 1, allowed: 2, blocked: 1 });
    },
  );

  it("reports the tightest of several IETF policies and lists them all", async () => {
    const time = fakeTime();
    const server = await serve({
      policies: [DEMO, { name: "daily", capacity: 1000, refillRate: 1000, interval: 86_400_000 }],
      clock: time.now,
      headers: "ietf",
    });
    const { code, stdout } = await run(["probe", server.url, "--json", "--requests", "12"], time);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.policy.limit).toBe(10);
    expect(report.policy.policies).toEqual([
      { name: "burst", limit: 10, window: 5 },
      { name: "daily", limit: 1000, window: 86400 },
    ]);
    expect(report.totals).toEqual({ allowed: 10, blocked: 2 });
  });

  it("sends the method and every --header", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const argv = [
      "probe",
      server.url,
      "-n",
      "2",
      "-w",
      "0",
      "-X",
      "post",
      "-H",
      "X-Api-Key: k1",
      "--header",
      "X-Tier:free",
    ];
    expect((await run(argv, time)).code).toBe(0);
    expect(server.requests[0]).toMatchObject({ "x-api-key": "k1", "x-tier": "free" });
  });

  it("says when the burst never reached the limit", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const { code, stdout } = await run(["probe", server.url, "-n", "5", "-w", "0"], time);
    expect(code).toBe(0);
    expect(stdout).toContain("observed  never blocked in 5 requests");
    expect(stdout).toContain("refill    after 0 s: 5 allowed, 1 blocked");
  });

  it("exits 1 with a one-line reason when the URL is unreachable", async () => {
    const server = await startTestServer({ policies: [DEMO] });
    await server.close();
    const { code, stdout, stderr } = await run(["probe", server.url]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/data: .*ECONNREFUSED.*\n$/,
    );
  });

  it("exits 1 naming the request when one fails mid-burst", async () => {
    let calls = 0;
    const flaky = async () => {
      calls++;
      if (calls === 3)
        throw new TypeError("fetch failed", {
          cause: { code: "ECONNRESET", message: "read ECONNRESET" },
        });
      return new Response("", { headers: { "X-RateLimit-Limit": "10" } });
    };
    const { code, stdout, stderr } = await run(["probe", "http://127.0.0.1:9/x"], {
      ...fakeTime(),
      fetch: flaky,
    });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      "floodgate probe: request 3 of 15 to http://127.0.0.1:9/x failed: read ECONNRESET\n",
    );
  });

  it("gives up on a request after --timeout seconds", async () => {
    const never = (_: unknown, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    const { code, stderr } = await run(["probe", "http://127.0.0.1:9/", "--timeout", "0.05"], {
      fetch: never,
    });
    expect(code).toBe(1);
    expect(stderr).toBe(
      "floodgate probe: cannot reach http://127.0.0.1:9/: no answer within 0.05 s\n",
    );
  });

  it("exits 3 with a one-line reason when no response has rate-limit headers", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now, headers: "none" });
    const { code, stdout, stderr } = await run(["probe", server.url], time);
    expect(code).toBe(3);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      `floodgate probe: ${server.url} answered 15 requests (status 200, 429) without rate-limit headers (X-RateLimit-*, RateLimit, RateLimit-Policy)\n`,
    );
    // No refill check once the probe knows it cannot read the limit.
    expect(server.hits()).toBe(15);
  });

  it("exits 2 on a bad command line and prints help on --help", async () => {
    const bad = await run(["probe", "http://127.0.0.1:1/", "--requests", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'floodgate probe: --requests must be a whole number > 0, got "0" (see floodgate probe --help)\n',
    );
    const help = await run(["probe", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: floodgate probe URL [options]");
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run([])).code).toBe(2);
  });
});

describe("floodgate probe, rate mode", () => {
  // Real time: 10 tokens of burst and 10 per second back (2 every 200 ms), probed at 40 req/s for 2 s.
  const FAST = { name: "fast", capacity: 10, refillRate: 2, interval: 200 };

  it("infers capacity and refill from what it saw, and writes a self-contained HTML page", async () => {
    const server = await serve({ policies: [FAST] });
    const dir = await mkdtemp(join(tmpdir(), "floodgate-probe-"));
    try {
      const html = join(dir, "probe.html");
      const argv = [
        "probe",
        server.url,
        "--rate",
        "40",
        "--duration",
        "2",
        "--wait",
        "0.3",
        "--json",
        "--html",
        html,
      ];
      const { code, stdout, stderr } = await run(argv);
      expect(code).toBe(0);
      expect(stderr).toContain("floodgate probe: sending 80 requests over 2 s\n");
      expect(stderr).toContain(`floodgate probe: wrote ${html}\n`);
      const report = JSON.parse(stdout) as JsonReport;
      expect(Object.keys(report)).toEqual([
        "url",
        "requests",
        "totals",
        "policy",
        "refill",
        "series",
      ]);
      expect(report.series).toHaveLength(80);
      expect(report.requests).toHaveLength(80);
      for (const p of report.series ?? [])
        expect(Object.keys(p)).toEqual(["t", "status", "remaining"]);
      const ts = (report.series ?? []).map((p) => p.t);
      expect(ts).toEqual([...ts].sort((a, b) => a - b));
      expect(ts[79]).toBeGreaterThanOrEqual(1950);
      expect(report.totals.allowed + report.totals.blocked).toBe(80);
      // About 10 + 10/s * 2 s allowed, give or take a refill at either end.
      expect(report.totals.allowed).toBeGreaterThanOrEqual(26);
      expect(report.totals.allowed).toBeLessThanOrEqual(34);
      expect(report.policy.limit).toBe(10);
      expect(report.policy.refillPerSecond).toBe(10);
      const { burst, capacity, refillPerSecond } = report.policy.observed;
      expect(burst).toBeGreaterThanOrEqual(10);
      expect(capacity).toBeGreaterThanOrEqual(8);
      expect(capacity).toBeLessThanOrEqual(12);
      expect(refillPerSecond).toBeGreaterThanOrEqual(7.5);
      expect(refillPerSecond).toBeLessThanOrEqual(12.5);

      const page = await readFile(html, "utf8");
      expect(page.startsWith("<!doctype html>\n<html")).toBe(true);
      expect(page.trimEnd().endsWith("</html>")).toBe(true);
      expect(page.match(/<svg /g)).toHaveLength(2);
      expect(page.match(/<\/svg>/g)).toHaveLength(2);
      expect(page).not.toMatch(/<script|<link|<img|@import|url\(|NaN|undefined/);
      // Nothing to fetch: the only URLs are the SVG namespace and the probed URL itself.
      const urls = new Set(page.match(/https?:\/\/[^\s"<&]+/g));
      urls.delete("http://www.w3.org/2000/svg");
      urls.delete(server.url);
      expect([...urls]).toEqual([]);
      expect(page).toContain("Capacity (observed)</th><td>≈ ");
      expect(page.match(/<rect /g)?.length).toBeGreaterThanOrEqual(4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exits 1 when the HTML file cannot be written, after printing the report", async () => {
    const time = fakeTime();
    const server = await serve({ policies: [DEMO], clock: time.now });
    const argv = [
      "probe",
      server.url,
      "-r",
      "20",
      "-d",
      "1",
      "-w",
      "0",
      "--html",
      "/nonexistent/dir/p.html",
    ];
    const { code, stdout, stderr } = await run(argv, time);
    expect(code).toBe(1);
    expect(stdout).toContain("totals    10 allowed, 10 blocked");
    expect(stderr).toMatch(
      /floodgate probe: cannot write \/nonexistent\/dir\/p.html: ENOENT[^\n]*\n$/,
    );
  });

  it("draws the terminal chart of allowed vs blocked per second and the remaining tokens", async () => {
    const server = await serve({ policies: [FAST] });
    const { code, stdout } = await run(["probe", server.url, "-r", "40", "-d", "1", "-w", "0"]);
    expect(code).toBe(0);
    expect(stdout).toContain(`floodgate probe: GET ${server.url}, 40 req/s for 1 s (40 requests)`);
    expect(stdout).toMatch(/allowed vs blocked per second {2}█ allowed {2}░ blocked/);
    expect(stdout).toMatch(/\n +0s {2}█+░+ +\d+ +\d+ {2}9 → 0\n/);
    expect(stdout).toContain("remaining tokens seen");
    expect(stdout).toMatch(
      /observed {2}capacity ≈ \d+ \(\d+ allowed before the first 429 at [\d.]+ s\)/,
    );
  });

  it.each([
    [["--rate", "5000", "--duration", "1"], "--rate 5000 is above the maximum; using 200", 200],
    [["--rate", "1", "--duration", "9999"], "--duration 9999 is above the maximum; using 120", 120],
  ])("caps %j and says so", async (flags, notice, sent) => {
    const time = fakeTime();
    let calls = 0;
    // A stand-in server answering at once: the point is how many requests go out.
    const fast = async () => {
      calls++;
      return new Response("", { status: 200, headers: { "X-RateLimit-Limit": "5" } });
    };
    const argv = ["probe", "http://127.0.0.1:9/", ...flags, "--wait", "0", "--json"];
    const { code, stderr } = await run(argv, { ...time, fetch: fast });
    expect(code).toBe(0);
    expect(stderr).toContain(`floodgate probe: ${notice}\n`);
    // The run, then the refill check: one over the limit of 5.
    expect(calls).toBe(sent + 6);
  });
});
