// The demo service as a user runs it: a child process started the way
// `npm start` does, on a free port, answering the tutorial's burst.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { DemoConfigError, readConfig } from "../src/demo/config.js";
import { parseRateLimitList } from "./ratelimit-fields.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function start(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ["--import", "tsx", "src/demo/main.ts"], {
    cwd: root,
    env: { ...process.env, HOST: "", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk) => {
    out += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    err += chunk;
  });
  return { child, stdout: () => out, stderr: () => err };
}

async function listening(run: Run): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const match = /listening on (http:\/\/\S+) /.exec(run.stdout());
    if (match) return match[1] as string;
    if (run.child.exitCode !== null) break;
    await once(run.child.stdout as NodeJS.ReadableStream, "data").catch(() => undefined);
  }
  throw new Error(`demo did not start: ${run.stdout()} ${run.stderr()}`);
}

async function exited(run: Run): Promise<number | null> {
  if (run.child.exitCode === null) await once(run.child, "exit");
  return run.child.exitCode;
}

describe("the demo service (npm start)", () => {
  it("serves the tutorial's API and answers a burst: 10 x 200, then 429 with Retry-After 1", async () => {
    const run = start({});
    const url = await listening(run);
    expect(run.stdout()).toMatch(
      /listening on http:\/\/127\.0\.0\.1:\d+ \(policy "burst": 10 tokens, 2 more every 1000 ms, per client IP, memory store/,
    );
    const statuses: number[] = [];
    const remaining: (string | null)[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 15; i++) {
      last = await fetch(`${url}/data`);
      statuses.push(last.status);
      remaining.push(last.headers.get("x-ratelimit-remaining"));
      if (i === 0) expect(await last.json()).toEqual({ data: "Some important information" });
      else if (i < 14) await last.arrayBuffer();
    }
    expect(statuses).toEqual([...Array(10).fill(200), ...Array(5).fill(429)]);
    expect(remaining.slice(0, 10)).toEqual(["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
    const denied = last as Response;
    expect(denied.headers.get("retry-after")).toBe("1");
    expect(parseRateLimitList(denied.headers.get("ratelimit-policy") as string)).toEqual([
      { id: "burst", params: { q: 10, w: 5 } },
    ]);
    expect(await denied.json()).toEqual({ detail: "Too many requests. Try again later." });

    for (let i = 0; i < 20; i++) {
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
    }

    run.child.kill("SIGTERM");
    expect(await exited(run)).toBe(0);
    expect(run.stdout()).toMatch(/stopped \(SIGTERM\)/);
  });

  it("takes its policy from the environment", async () => {
    const run = start({
      RATE_LIMIT_CAPACITY: "3",
      RATE_LIMIT_REFILL_RATE: "1",
      RATE_LIMIT_INTERVAL_MS: "60000",
    });
    const url = await listening(run);
    expect(run.stdout()).toMatch(/"burst": 3 tokens, 1 more every 60000 ms/);
    expect(await (await fetch(`${url}/`)).json()).toEqual({ message: "Hello, world!" });
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) codes.push((await fetch(`${url}/data`)).status);
    expect(codes).toEqual([200, 200, 429]);
    run.child.kill("SIGINT");
    expect(await exited(run)).toBe(0);
  });

  it("stops within its drain deadline on SIGTERM though clients hold connections open", async () => {
    const run = start({});
    const url = new URL(await listening(run));
    // One client connected and silent, one halfway through its headers, one mid-body.
    const sockets = [
      "",
      "GET /data HTTP/1.1\r\nHost: x\r\n",
      "POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
    ].map((text) => {
      const socket = connect(Number(url.port), url.hostname);
      socket.on("error", () => {});
      if (text !== "") socket.write(text);
      return socket;
    });
    try {
      await Promise.all(sockets.map((s) => once(s, "connect").catch(() => undefined)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      run.child.kill("SIGTERM");
      const code = await Promise.race([
        exited(run),
        new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 15_000)),
      ]);
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(12_000);
      expect(run.stdout()).toMatch(/stopped \(SIGTERM\)/);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it("explains a bad setting in one line, without a stack trace", async () => {
    const run = start({ RATE_LIMIT_CAPACITY: "ten" });
    expect(await exited(run)).toBe(1);
    expect(run.stderr()).toBe(
      'floodgate demo: RATE_LIMIT_CAPACITY must be a whole number from 1 to 1000000000, got "ten"\n',
    );
  });

  it("explains a port in use in one line", async () => {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    try {
      const run = start({ PORT: String(port) });
      expect(await exited(run)).toBe(1);
      expect(run.stderr()).toBe(
        `floodgate demo: port ${port} on 127.0.0.1 is already in use; stop the other server or set PORT to a free port (PORT=0 picks one)\n`,
      );
    } finally {
      server.close();
    }
  });
});

describe("demo settings", () => {
  it("default to the tutorial's service", () => {
    expect(readConfig({})).toEqual({
      port: 8000,
      host: "127.0.0.1",
      capacity: 10,
      refillRate: 2,
      interval: 1000,
    });
    expect(readConfig({ PORT: "", HOST: " " }).port).toBe(8000);
    expect(readConfig({ PORT: " 9000 ", HOST: "0.0.0.0" })).toMatchObject({
      port: 9000,
      host: "0.0.0.0",
    });
  });

  it.each([
    ["PORT", "65536", /PORT must be a whole number from 0 to 65535, got "65536"/],
    ["PORT", "80a", /PORT/],
    ["PORT", "-1", /PORT/],
    ["RATE_LIMIT_CAPACITY", "0", /RATE_LIMIT_CAPACITY must be a whole number from 1/],
    ["RATE_LIMIT_REFILL_RATE", "1.5", /RATE_LIMIT_REFILL_RATE/],
    [
      "RATE_LIMIT_INTERVAL_MS",
      "1s",
      /RATE_LIMIT_INTERVAL_MS must be a whole number from 1 to 31536000000/,
    ],
    ["REDIS_URL", "redis://127.0.0.1:99999", /REDIS_URL must be a URL with a host and a port/],
    ["REDIS_URL", "redis://", /REDIS_URL must be a URL with a host/],
    ["REDIS_URL", "redis://[::1", /REDIS_URL must be a URL with a host/],
    ["REDIS_URL", "http://u:s3cret@h:6379", /got "http:\/\/\*\*\*@h:6379"/],
    ["REDIS_URL", "redis://:s3cret@h:0", /got "redis:\/\/\*\*\*@h:0"; e\.g\. REDIS_URL=redis/],
  ])("refuse %s=%s", (name, value, message) => {
    expect(() => readConfig({ [name]: value })).toThrow(DemoConfigError);
    expect(() => readConfig({ [name]: value })).toThrow(message);
  });
});
