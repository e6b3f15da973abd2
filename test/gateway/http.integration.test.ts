// The HTTP side of `floodgate serve` over real sockets, hot reload, and the
// command itself as a user runs it (errors, SIGHUP, SIGTERM).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/redis-server.js";
import { type Gateway, ROOT, startGateway } from "./helpers.js";

const CONFIG = (rate: string) => `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { ${rate} }
  - key: api_key
    rate_limit: { unit: minute, requests_per_unit: 2 }
http_check:
  actions:
    - - remote_address: {}
    - - request_headers: { header_name: x-api-key, descriptor_key: api_key }
  trust_proxy: 1
`;
const TEN = "unit: second, requests_per_unit: 10, burst: 20";

const check = (gw: Gateway, ip: string, headers: Record<string, string> = {}) =>
  fetch(`${gw.http}/check`, { headers: { "x-forwarded-for": ip, ...headers } });
const json = (gw: Gateway, body: unknown) =>
  fetch(`${gw.http}/json`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("floodgate serve over HTTP", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway(CONFIG(TEN));
  });
  afterAll(() => gw.stop());

  it("GET /check: 200 with the headers, then 429 with Retry-After, the headers and the JSON body", async () => {
    for (let i = 0; i < 20; i++) {
      const r = await check(gw, "10.0.0.1");
      expect(r.status).toBe(200);
      expect(r.headers.get("ratelimit")).toBe(`"remote_address";r=${19 - i};t=1`);
    }
    const r = await check(gw, "10.0.0.1");
    expect(r.status).toBe(429);
    expect(r.headers.get("retry-after")).toBe("1");
    expect(await r.json()).toMatchObject({
      detail: "Too many requests. Try again later.",
      overallCode: "OVER_LIMIT",
    });
    expect((await check(gw, "10.0.0.2")).status).toBe(200);
  });

  it("GET /check: a request_headers action adds its descriptor only when the header is there", async () => {
    const key = { "x-api-key": "k1" };
    expect((await check(gw, "10.1.0.1", key)).status).toBe(200);
    expect((await check(gw, "10.1.0.2", key)).status).toBe(200);
    const r = await check(gw, "10.1.0.3", key);
    expect(r.status).toBe(429);
    expect(r.headers.get("ratelimit-policy")).toBe('"remote_address";q=20;w=2, "api_key";q=2;w=60');
    // Refused as a whole: 10.1.0.3's own bucket was not charged.
    expect((await check(gw, "10.1.0.3")).headers.get("ratelimit")).toBe(
      '"remote_address";r=19;t=1',
    );
  });

  it("GET /check: trust_proxy 1 believes one hop only; a spoofed left-most address is ignored", async () => {
    for (let i = 0; i < 20; i++) await check(gw, `6.6.6.${i}, 10.2.0.1`);
    expect((await check(gw, "7.7.7.7, 10.2.0.1")).status).toBe(429);
  });

  it("POST /json: envoyproxy/ratelimit's JSON form, 200 or 429", async () => {
    const body = {
      domain: "edge",
      descriptors: [{ entries: [{ key: "remote_address", value: "j1" }] }],
      hits_addend: 20,
    };
    const ok = await json(gw, body);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      overallCode: "OK",
      statuses: [
        {
          code: "OK",
          currentLimit: { requestsPerUnit: 10, unit: "SECOND" },
          durationUntilReset: "1s",
        },
      ],
    });
    const over = await json(gw, { ...body, hits_addend: 1 });
    expect(over.status).toBe(429);
    expect(over.headers.get("retry-after")).toBe("1");
    expect((await over.json()).statuses[0].code).toBe("OVER_LIMIT");
  });

  it.each([
    ["not JSON", "{", 400, "not JSON"],
    ["no domain", { descriptors: [] }, 400, "domain is required"],
    [
      "empty entries",
      { domain: "edge", descriptors: [{ entries: [] }] },
      400,
      "entries must be a non-empty list",
    ],
    [
      "too many descriptors",
      { domain: "edge", descriptors: Array(65).fill({ entries: [{ key: "a", value: "b" }] }) },
      400,
      "at most 64",
    ],
    [
      "a value that is not a string",
      { domain: "edge", descriptors: [{ entries: [{ key: "a", value: 1 }] }] },
      400,
      "must be a string",
    ],
    [
      "mixed per-descriptor costs",
      {
        domain: "edge",
        descriptors: [
          { entries: [{ key: "a", value: "b" }], hits_addend: 1 },
          { entries: [{ key: "a", value: "c" }], hits_addend: 2 },
        ],
      },
      400,
      "different hits_addend",
    ],
  ])("POST /json refuses %s", async (_name, body, status, text) => {
    const r = await json(gw, body);
    expect(r.status).toBe(status);
    expect((await r.json()).error).toContain(text);
  });

  it("POST /json refuses a body over 64 KiB with 413", async () => {
    const r = await json(gw, "x".repeat(70_000)).catch(() => undefined);
    if (r !== undefined) expect(r.status).toBe(413);
  });

  it("GET /healthz and GET /metrics", async () => {
    expect(await (await fetch(`${gw.http}/healthz`)).json()).toEqual({ status: "ok" });
    const text = await (await fetch(`${gw.http}/metrics`)).text();
    expect(text).toMatch(
      /floodgate_decisions_total\{policy="remote_address",outcome="limited"\} \d+/,
    );
    expect(text).toMatch(/floodgate_gateway_requests_total\{domain="edge",code="OVER_LIMIT"\} \d+/);
    expect(text).toContain("floodgate_breaker_open 0");
  });
});

describe("hot reload", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway(CONFIG(TEN));
  });
  afterAll(() => gw.stop());

  it("editing the file to 5 per second takes effect within 1 s, without a restart", async () => {
    expect((await check(gw, "r1")).headers.get("ratelimit-policy")).toBe(
      '"remote_address";q=20;w=2',
    );
    const saved = performance.now();
    gw.write(CONFIG("unit: second, requests_per_unit: 5"));
    let policy: string | null = null;
    while (performance.now() - saved < 1000) {
      policy = (
        await fetch(`${gw.http}/json`, {
          method: "POST",
          body: JSON.stringify({
            domain: "edge",
            descriptors: [{ entries: [{ key: "remote_address", value: "probe" }] }],
          }),
        })
      ).headers.get("ratelimit-policy");
      if (policy === '"remote_address";q=5;w=1') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(policy).toBe('"remote_address";q=5;w=1');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await check(gw, "r2")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it("a bad file keeps the old config and logs one line naming the file and line", async () => {
    gw.write(
      "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n",
    );
    expect(gw.running.reload()).toBe(false);
    const line = gw.logs.at(-1) as string;
    expect(line).toMatch(
      /^config not reloaded, keeping the current one: .*floodgate\.yaml:4: descriptors\[0\]\.rate_limit\.unit/,
    );
    expect(line).not.toContain("\n");
    expect((await check(gw, "r3")).headers.get("ratelimit-policy")).toBe(
      '"remote_address";q=5;w=1',
    );
  });
});

describe("the floodgate serve command", () => {
  const CLI = join(ROOT, "src", "cli", "index.ts");
  let dir: string;
  let child: ChildProcess | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "floodgate-serve-"));
  });
  afterEach(() => {
    if (child?.exitCode === null) child.kill("SIGKILL");
    child = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function serve(args: string[], env: Record<string, string> = {}) {
    const proc = spawn(process.execPath, ["--import", "tsx", CLI, "serve", ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let stderr = "";
    proc.stderr?.on("data", (b: Buffer) => (stderr += b));
    const exit = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
    const listening = async () => {
      while (!stderr.includes("listening")) {
        if (proc.exitCode !== null) throw new Error(stderr);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    return { proc, exit, listening, stderr: () => stderr };
  }

  it("a bad config: exit 2 and one line with the file, the line, the key and the fix", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "domain: x\ndescriptors:\n  - key: a\n    rate_limit: { unit: second }\n");
    const s = serve(["--config", file, "--port", "0", "--grpc-port", "0"]);
    expect(await s.exit).toBe(2);
    expect(s.stderr()).toBe(
      `floodgate serve: ${file}:4: descriptors[0].rate_limit.requests_per_unit is required. Fix: add requests_per_unit: 10\n`,
    );
  });

  it("a port in use: exit 2 and one line", async () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, CONFIG(TEN));
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((r) => taken.listen(port, "127.0.0.1", r));
    const s = serve(["--config", file, "--port", String(port), "--grpc-port", "0"]);
    expect(await s.exit).toBe(2);
    taken.close();
    expect(s.stderr()).toBe(
      `floodgate serve: port ${port} on 127.0.0.1 is in use; stop what listens there, or pick another with --port\n`,
    );
  });

  it("a gRPC port in use: exit 2 and one line (not grpc-js's own as well)", async () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, CONFIG(TEN));
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((r) => taken.listen(port, "127.0.0.1", r));
    const s = serve(["--config", file, "--port", "0", "--grpc-port", String(port)]);
    expect(await s.exit).toBe(2);
    taken.close();
    expect(s.stderr()).toBe(
      `floodgate serve: gRPC port ${port} on 127.0.0.1 is in use; stop what listens there, or pick another with --grpc-port\n`,
    );
  });

  it("an unreachable Redis: exit 2 and one line", async () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, CONFIG(TEN));
    const port = await freePort();
    const s = serve(["--config", file, "--port", "0", "--grpc-port", "0"], {
      REDIS_URL: `redis://127.0.0.1:${port}`,
    });
    expect(await s.exit).toBe(2);
    expect(s.stderr()).toBe(
      `floodgate serve: cannot connect to Redis at redis://127.0.0.1:${port} within 5 s; start it, or fix --redis / REDIS_URL\n`,
    );
  });

  it("SIGHUP reloads; SIGTERM answers every call in flight, then exits 0", async () => {
    const file = join(dir, "live.yaml");
    writeFileSync(file, CONFIG(TEN));
    const port = await freePort();
    const s = serve(["--config", file, "--port", String(port), "--grpc-port", "0"]);
    await s.listening();
    writeFileSync(file, CONFIG("unit: second, requests_per_unit: 3"));
    s.proc.kill("SIGHUP");
    const url = `http://127.0.0.1:${port}/check`;
    let policy: string | null = null;
    for (let i = 0; i < 50 && policy !== '"remote_address";q=3;w=1'; i++) {
      policy = (await fetch(url)).headers.get("ratelimit-policy");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(policy).toBe('"remote_address";q=3;w=1');
    const calls = Array.from({ length: 64 }, (_, i) =>
      fetch(url, { headers: { "x-forwarded-for": `9.9.${i}.1` } }).then((r) => r.status),
    );
    await new Promise((r) => setTimeout(r, 5));
    s.proc.kill("SIGTERM");
    const statuses = await Promise.allSettled(calls);
    expect(await s.exit).toBe(0);
    const answered = statuses
      .filter((x) => x.status === "fulfilled")
      .map((x) => (x as PromiseFulfilledResult<number>).value);
    // Calls accepted before SIGTERM are answered; later ones are refused at connect, never left hanging.
    for (const status of answered) expect(status).toBe(200);
    expect(s.stderr()).toContain("SIGTERM: finishing calls in flight, then exiting");
  });
});
