// Real proxies in front of a hello-world upstream, each asking floodgate's
// GET /check: nginx (auth_request), Caddy (forward_auth), HAProxy (Lua). The
// proxy configs are the recipes of docs/gateway.md, used as they are.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freePort } from "../helpers/redis-server.js";
import { describeWith, type Gateway, startGateway } from "./helpers.js";

const RECIPES = join(import.meta.dirname, "proxies");

const config = (denyStatus: number) => `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }
http_check:
  actions:
    - - remote_address: {}
  trust_proxy: 1
  deny_status: ${denyStatus}
`;

interface Proxy {
  readonly name: string;
  readonly binary: string;
  readonly files: readonly string[];
  readonly denyStatus: number;
  args(dir: string): string[];
}

const PROXIES: Proxy[] = [
  {
    name: "nginx auth_request",
    binary: "/usr/sbin/nginx",
    files: ["nginx.conf"],
    denyStatus: 403,
    args: (dir) => ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")],
  },
  {
    name: "Caddy forward_auth",
    binary: "/usr/bin/caddy",
    files: ["Caddyfile"],
    denyStatus: 429,
    args: (dir) => ["run", "--config", join(dir, "Caddyfile"), "--adapter", "caddyfile"],
  },
  {
    name: "HAProxy Lua action",
    binary: "/usr/sbin/haproxy",
    files: ["haproxy.cfg", "floodgate.lua"],
    denyStatus: 429,
    args: (dir) => ["-db", "-f", join(dir, "haproxy.cfg")],
  },
];

for (const proxy of PROXIES) {
  describeWith(`${proxy.name} in front of floodgate`, [proxy.binary], () => {
    let gw: Gateway;
    let upstream: Server;
    let child: ChildProcess;
    let dir: string;
    let url: string;
    let output = "";

    beforeAll(async () => {
      upstream = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"message": "Hello, world!"}');
      });
      await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
      gw = await startGateway(config(proxy.denyStatus));
      dir = mkdtempSync(join(tmpdir(), "floodgate-proxy-"));
      mkdirSync(join(dir, "caddy"));
      const port = await freePort();
      const vars: Record<string, string> = {
        DIR: dir,
        PORT: String(port),
        FLOODGATE: `127.0.0.1:${gw.running.httpPort}`,
        UPSTREAM: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      };
      for (const f of proxy.files) {
        const text = readFileSync(join(RECIPES, f), "utf8").replace(
          /\{\{(\w+)\}\}/g,
          (_, k: string) => vars[k] as string,
        );
        writeFileSync(join(dir, f), text);
      }
      child = spawn(proxy.binary, proxy.args(dir), {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      });
      child.stdout?.on("data", (b: Buffer) => (output += b));
      child.stderr?.on("data", (b: Buffer) => (output += b));
      url = `http://127.0.0.1:${port}/hello`;
      // Readiness by TCP only: an HTTP probe would spend a token.
      await waitForTcp(port, child, () => output.slice(-2000));
    }, 60_000);

    afterAll(async () => {
      if (child && child.exitCode === null) {
        // SIGTERM: nginx's and HAProxy's masters take their workers with them.
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      await gw?.stop();
      upstream?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("lets 20 rapid requests through and answers the 21st with 429 and Retry-After: 1", async () => {
      const answers: Response[] = [];
      for (let i = 0; i < 21; i++) answers.push(await fetch(url));
      const bodies = await Promise.all(answers.map((r) => r.text()));
      expect(answers.slice(0, 20).map((r) => r.status)).toEqual(Array(20).fill(200));
      expect(bodies[0]).toBe('{"message": "Hello, world!"}');
      const last = answers[20] as Response;
      expect(last.status).toBe(429);
      expect(last.headers.get("retry-after")).toBe("1");
      expect(last.headers.get("ratelimit")).toBe('"remote_address";r=0;t=1');
      expect(last.headers.get("ratelimit-policy")).toBe('"remote_address";q=20;w=2');
      expect(JSON.parse(bodies[20] as string)).toMatchObject({
        detail: "Too many requests. Try again later.",
      });
    });
  });
}

async function waitForTcp(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const { connect } = await import("node:net");
  const until = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the proxy exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`the proxy did not listen on ${port}: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
