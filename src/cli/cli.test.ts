// The probe as users run it: a child process through tsx, against a real
// server on 127.0.0.1 and the real clock.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { JsonReport } from "./render-json.js";
import { startTestServer, type TestServer } from "./test-server.js";

const ROOT = join(import.meta.dirname, "..", "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const ENTRY = join(ROOT, "src", "cli", "index.ts");

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [ENTRY, ...args],
      { cwd: ROOT, timeout: 20_000, env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("floodgate probe as a child process", () => {
  it("probes a real server: 10 allowed with remaining 9..0, 5 blocked, 5 back after 1.2 s", async () => {
    // 5 tokens every second: the burst must only finish within 800 ms of its first request.
    server = await startTestServer({
      policies: [{ name: "burst", capacity: 10, refillRate: 5, interval: 1000 }],
    });
    const { code, stdout, stderr } = await cli(["probe", server.url, "--wait", "1.2", "--json"]);
    expect(stderr).toBe(
      "floodgate probe: waiting 1.2 s before the refill check\nfloodgate probe: refill check\n",
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.requests.map((r) => [r.status, r.remaining])).toEqual([
      ...[9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((r) => [200, r]),
      ...Array(5).fill([429, 0]),
    ]);
    expect(report.totals).toEqual({ allowed: 10, blocked: 5 });
    expect(report.policy.limit).toBe(10);
    expect(report.policy.observed.capacity).toBe(10);
    expect(report.refill).toEqual({ waited: 1.2, allowed: 5, blocked: 1 });
  });

  it("exits 1 with one line on stderr when the URL is unreachable", async () => {
    const closed = await startTestServer({
      policies: [{ capacity: 1, refillRate: 1, interval: 1000 }],
    });
    await closed.close();
    const { code, stdout, stderr } = await cli(["probe", closed.url]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/data: [^\n]+\n$/,
    );
  });

  it("exits 3 with one line on stderr when the answers carry no rate-limit headers", async () => {
    server = await startTestServer({
      policies: [{ capacity: 100, refillRate: 1, interval: 1000 }],
      headers: "none",
    });
    const { code, stdout, stderr } = await cli(["probe", server.url, "-n", "3"]);
    expect(code).toBe(3);
    expect(stdout).toBe("");
    expect(stderr.split("\n")).toEqual([
      `floodgate probe: ${server.url} answered 3 requests (status 200) without rate-limit headers (X-RateLimit-*, RateLimit, RateLimit-Policy)`,
      "",
    ]);
  });

  it("exits 2 on a bad flag", async () => {
    const { code, stderr } = await cli(["probe", "http://127.0.0.1:8000/", "--rate", "fast"]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      'floodgate probe: --rate must be a number > 0, got "fast" (see floodgate probe --help)\n',
    );
  });
});

describe("floodgate serve's flags", () => {
  const CONFIG = join(
    ROOT,
    "test",
    "gateway",
    "fixtures",
    "envoyproxy-ratelimit",
    "example-1.yaml",
  );

  it("refuses an empty --host, which would listen on every interface, naming the flag and the fix", async () => {
    const { code, stderr } = await cli([
      "serve",
      "--config",
      CONFIG,
      "--host",
      "",
      "--port",
      "0",
      "--grpc-port",
      "off",
    ]);
    expect(stderr).toBe(
      'floodgate serve: --host "" is empty; give the address to listen on: 127.0.0.1 (this machine only, the default) or 0.0.0.0 (every interface)\n',
    );
    expect(code).toBe(2);
  });

  it.each(["0x10", "1e3", " 50"])(
    "refuses --timeout %j, which is not whole milliseconds",
    async (t) => {
      const { code, stderr } = await cli([
        "serve",
        "--config",
        CONFIG,
        "--port",
        "0",
        "--grpc-port",
        "off",
        "--timeout",
        t,
      ]);
      expect(stderr).toBe(
        `floodgate serve: --timeout ${JSON.stringify(t)} must be whole milliseconds from 1 to 60000\n`,
      );
      expect(code).toBe(2);
    },
  );

  it("points an unknown flag to the help", async () => {
    const { code, stderr } = await cli(["serve", "--config", CONFIG, "--bogus"]);
    expect(stderr).toBe("floodgate serve: Unknown option '--bogus' (see floodgate serve --help)\n");
    expect(code).toBe(2);
  });
});
