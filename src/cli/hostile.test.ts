// `floodgate probe` against servers that misbehave on purpose: raw loopback
// sockets, real fetch, real time. The probe must stay bounded in requests,
// time and memory, report what it saw, and end with one clear line.
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server,
  type Socket,
} from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type CliIo, main } from "./main.js";
import type { JsonReport } from "./render-json.js";

function sink() {
  const chunks: string[] = [];
  return { isTTY: false, write: (s: string) => chunks.push(s), text: () => chunks.join("") };
}

async function run(argv: string[], extra: Partial<CliIo> = {}) {
  const stdout = sink();
  const stderr = sink();
  const started = performance.now();
  const code = await main(argv, { stdout, stderr, env: {}, ...extra });
  return {
    code,
    stdout: stdout.text(),
    stderr: stderr.text(),
    ms: performance.now() - started,
  };
}

const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** http is a node:http server answering with `answer(res, n)`, n counting requests from 1. */
async function http(answer: (res: ServerResponse, n: number) => void) {
  let n = 0;
  const url = await listen(createHttpServer((_req, res) => answer(res, ++n)));
  return { url, hits: () => n };
}

/** raw is a TCP server that writes what it likes on each connection. */
function raw(onConnection: (socket: Socket) => void) {
  return listen(createNetServer(onConnection));
}

const LIMITED = { "X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0" };
/** The 429 that ends a refill check at once. */
const deny = (res: ServerResponse) => {
  res.writeHead(429, { ...LIMITED, "Retry-After": "1", "Content-Length": "0" });
  res.end();
};

describe("floodgate probe against a hostile server", () => {
  it("sends at most 1001 requests in the refill check, whatever limit the headers announce", async () => {
    // Announces a limit of 10^15 and never says 429 (until request 1200, so a probe
    // without a bound ends too).
    const server = await http((res, n) => {
      if (n >= 1200) return deny(res);
      res.writeHead(200, {
        "X-RateLimit-Limit": "999999999999999",
        "X-RateLimit-Remaining": "999999999999998",
      });
      res.end("ok");
    });
    const { code, stdout, stderr } = await run([
      "probe",
      server.url,
      "-n",
      "3",
      "-w",
      "0",
      "--json",
    ]);
    expect(stderr).not.toContain("    at ");
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.policy.limit).toBe(999999999999999);
    expect(report.refill).toEqual({ waited: 0, allowed: 1001, blocked: 0 });
    expect(server.hits()).toBe(3 + 1001);
  });

  it("reads at most 64 KiB of a body that never ends, and goes on", async () => {
    let sent = 0;
    const server = await http((res, n) => {
      if (n > 3) return deny(res);
      res.writeHead(200, LIMITED);
      const chunk = Buffer.alloc(1 << 20, 120);
      // As fast as the probe reads, for ever: only the probe can end it.
      const pump = () => {
        while (!res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) break;
        }
        if (!res.destroyed) res.once("drain", pump);
      };
      pump();
    });
    const { code, stdout, stderr, ms } = await run([
      "probe",
      server.url,
      "-n",
      "3",
      "-w",
      "0",
      "--timeout",
      "3",
      "--json",
    ]);
    expect(stderr).toBe(
      "floodgate probe: waiting 0 s before the refill check\nfloodgate probe: refill check\n",
    );
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as JsonReport).requests.map((r) => r.status)).toEqual([
      200, 200, 200,
    ]);
    // Socket buffers aside, the probe read what it needed and dropped the rest.
    expect(sent).toBeLessThan(3 * 16 * (1 << 20));
    expect(ms).toBeLessThan(3000);
  });

  it("does not wait for a body that trickles: the status and headers are the answer", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const server = await http((res, n) => {
      if (n > 2) return deny(res);
      res.writeHead(200, LIMITED);
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write("x")), 50);
      timers.add(t);
    });
    try {
      const { code, stdout, stderr, ms } = await run([
        "probe",
        server.url,
        "-n",
        "2",
        "-w",
        "0",
        "--timeout",
        "5",
        "--json",
      ]);
      expect(stderr).not.toContain("failed");
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as JsonReport).requests.map((r) => r.status)).toEqual([200, 200]);
      // About one second a body (DRAIN_MS), not the five of --timeout.
      expect(ms).toBeLessThan(5000);
    } finally {
      for (const t of timers) clearInterval(t);
    }
  });

  it("keeps an answer whose connection is reset mid-body", async () => {
    const url = await raw((socket) => {
      socket.once("data", () => {
        socket.write(
          "HTTP/1.1 200 OK\r\nX-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 4\r\nContent-Length: 1000\r\n\r\nhalf",
        );
        setTimeout(() => socket.resetAndDestroy(), 20);
      });
    });
    const { code, stdout, stderr } = await run(["probe", url, "-n", "2", "-w", "0", "--json"]);
    expect(stderr).not.toContain("failed");
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.requests.map((r) => [r.status, r.remaining])).toEqual([
      [200, 4],
      [200, 4],
    ]);
  });

  it.each([
    [
      "accepts and never answers",
      (_s: Socket) => {},
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/: no answer within 0\.5 s\n$/,
    ],
    [
      "sends its headers a byte at a time, for ever",
      (s: Socket) => {
        s.write("HTTP/1.1 200 OK\r\nX-Slow: ");
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("a")), 20);
        s.on("close", () => clearInterval(t));
      },
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/: no answer within 0\.5 s\n$/,
    ],
    [
      "sends 1 MiB of headers",
      (s: Socket) => {
        s.write(`HTTP/1.1 200 OK\r\n${"X-Big: aaaaaaaaaaaaaaaa\r\n".repeat(40_000)}\r\n`);
      },
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/: \S.*\n$/,
    ],
    [
      "resets the connection before answering",
      (s: Socket) => {
        s.once("data", () => s.resetAndDestroy());
      },
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/: \S.*\n$/,
    ],
    [
      "answers garbage",
      (s: Socket) => {
        s.once("data", () => s.end("HELLO\r\n\r\n"));
      },
      /^floodgate probe: cannot reach http:\/\/127\.0\.0\.1:\d+\/: \S.*\n$/,
    ],
  ])("ends with one line, exit 1, when the server %s", async (_name, onConnection, want) => {
    const url = await raw(onConnection);
    const { code, stdout, stderr, ms } = await run(["probe", url, "--timeout", "0.5"]);
    expect(stdout).toBe("");
    expect(stderr).toMatch(want);
    expect(code).toBe(1);
    expect(ms).toBeLessThan(3000);
  });

  it("reports a redirect loop as the status it is, without following it", async () => {
    const server = await http((res) => {
      res.writeHead(302, { Location: "/", "Content-Length": "0" });
      res.end();
    });
    const { code, stderr } = await run(["probe", server.url, "-n", "3"]);
    expect(code).toBe(3);
    expect(stderr).toBe(
      `floodgate probe: ${server.url} answered 3 requests (status 302) without rate-limit headers (X-RateLimit-*, RateLimit, RateLimit-Policy)\n`,
    );
    expect(server.hits()).toBe(3);
  });

  it("reads hostile header values without a stack trace, naming the unreadable ones", async () => {
    const huge = `1${"0".repeat(400)}`;
    const server = await http((res, n) => {
      res.writeHead(n <= 2 ? 200 : 429, {
        "X-RateLimit-Limit": huge,
        "X-RateLimit-Remaining": "-3",
        "X-RateLimit-Reset": "NaN",
        RateLimit: `"a";r=${"9".repeat(16)};t=1`,
        "RateLimit-Policy": Array.from({ length: 300 }, (_, i) => `"p${i}";q=${i};w=0`).join(", "),
        "Retry-After": huge,
        "Content-Length": "0",
      });
      res.end();
    });
    const { code, stdout, stderr } = await run(["probe", server.url, "-n", "4", "-w", "0"]);
    expect(stderr).not.toContain("    at ");
    expect(code).toBe(0);
    expect(stdout).toContain(
      "note      ignored unreadable headers: X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit, Retry-After",
    );
    expect(stdout).not.toMatch(/Infinity|NaN/);
  });
});
