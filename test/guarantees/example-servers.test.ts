/**
 * Issue 14 item 5, the example servers: each one in examples/*, started as a
 * user starts it (tsx, PORT), answers every request of a malformed set (bad
 * percent-encoding, absolute-form targets with bad hosts, bad Host headers,
 * oversize heads, parser-level garbage) with a clean 4xx, never a 5xx, a
 * 429 or a dropped connection, prints no stack trace, and still serves a
 * well-formed request afterwards. Each malformed request comes from its own
 * loopback address, so no answer is a 429 of an emptied bucket hiding the
 * server's own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { rawRequest } from "../helpers/raw-http.js";

const CRLF = "\r\n";
const request = (target: string, headers: string[] = ["Host: 127.0.0.1"], method = "GET") =>
  `${method} ${target} HTTP/1.1${CRLF}${[...headers, "Connection: close"].join(CRLF)}${CRLF}${CRLF}`;

/** The malformed set: each must be refused with a 4xx other than 429. */
const MALFORMED: readonly [string, string][] = [
  ["bad percent-encoding", request("/%zz")],
  ["a truncated percent-encoding", request("/data%")],
  ["a truncated UTF-8 sequence", request("/%E0%A4%A")],
  ["a lone percent sign in a segment", request("/data/%")],
  ["absolute-form, unclosed IPv6 host and bad encoding", request("http://[::1/%zz")],
  ["absolute-form, unclosed IPv6 host", request("http://[::1/")],
  ["absolute-form, no host and port 99999", request("http://:99999/")],
  ["absolute-form, a percent-encoded space in the host", request("http://exa%20mple/data")],
  ["absolute-form, a bad IPv6 zone", request("https://[fe80::1%25zz]/")],
  ["a target without a slash", request("nonsense")],
  ["asterisk-form with GET", request("*")],
  ["a Host that is no host", request("/", ["Host: [::1"])],
  ["a Host with a space", request("/data", ["Host: a b"])],
  ["no Host in HTTP/1.1", request("/", [])],
  ["a 64 KB header", request("/", ["Host: 127.0.0.1", `X-Filler: ${"1".repeat(65_536)}`])],
  ["a 20 KB target", request(`/${"a".repeat(20_000)}`)],
  ["a garbage request line", `HELLO THERE${CRLF}${CRLF}`],
  ["a control character in a header", request("/", ["Host: 127.0.0.1", "X-A: 1\u0001"])],
  [
    "a bad chunked body",
    `POST /data HTTP/1.1${CRLF}Host: 127.0.0.1${CRLF}Transfer-Encoding: chunked${CRLF}Connection: close${CRLF}${CRLF}zz${CRLF}`,
  ],
];

/** The example servers, and a well-formed request each answers with 200. */
const EXAMPLES: readonly [string, string][] = [
  ["examples/express/server.ts", request("/data")],
  ["examples/express/keys.ts", request("/api", ["Host: 127.0.0.1", "x-api-key: k1"])],
  ["examples/fastify/server.ts", request("/data")],
  ["examples/fetch/server.ts", request("/data")],
  ["examples/hono/server.ts", request("/data")],
  ["examples/koa/server.ts", request("/data")],
  ["examples/node/server.ts", request("/data")],
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

let running: ChildProcess | undefined;
afterEach(async () => {
  if (running !== undefined && running.exitCode === null) {
    running.kill();
    await once(running, "exit");
  }
  running = undefined;
});

/** start runs an example as a user would (`tsx <file>` with PORT) and resolves once it listens. */
async function start(file: string): Promise<{ port: number; stderr: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running = child;
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start: ${stderr}`)), 20_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes(`:${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code}: ${stderr}`));
    });
  });
  return { port, stderr: () => stderr };
}

describe("guarantee: every example server answers a malformed request with a clean 4xx", () => {
  it.each(EXAMPLES)("%s", async (file, wellFormed) => {
    const { port, stderr } = await start(file);
    const statuses: Record<string, number> = {};
    for (const [i, [label, bytes]] of MALFORMED.entries()) {
      const answer = await rawRequest(port, bytes, 5000, `127.0.0.${2 + i}`);
      statuses[label] = answer.status;
      expect(answer.status, `${label}: ${answer.head}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `${label}: ${answer.head}`).toBeLessThan(500);
      expect(answer.status, `${label}: ${answer.head}`).not.toBe(429);
    }
    const after = await rawRequest(port, wellFormed);
    expect(after.status, after.head).toBe(200);
    expect(after.head.toLowerCase()).toContain("x-ratelimit-remaining");
    expect(running?.exitCode).toBeNull();
    expect(stderr()).not.toMatch(/\n\s+at /);
    const counts = new Map<number, number>();
    for (const s of Object.values(statuses)) counts.set(s, (counts.get(s) ?? 0) + 1);
    console.log(
      `guarantee: example servers: ${file}: ${MALFORMED.length} malformed requests -> ${[...counts].map(([s, n]) => `${n} x ${s}`).join(", ")}; 0 5xx, 0 429, 0 dropped; then a well-formed request -> 200`,
    );
  });
});
