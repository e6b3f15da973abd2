import { existsSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDemo, createLimiter } from "../src/demo/app.js";
import { readConfig } from "../src/demo/config.js";
import { RateLimiter } from "../src/limiter.js";
import { type Dashboard, dashboard, loopbackOnly } from "../src/metrics/dashboard.js";
import { SCRIPT, STYLE } from "../src/metrics/dashboard-page.js";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
// The README's picture is refreshed on request (UPDATE_SCREENSHOT=1 npm test);
// otherwise the shot goes to .tmp/ so test runs leave the work tree clean.
const SCREENSHOT = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  process.env.UPDATE_SCREENSHOT ? "docs" : ".tmp",
  "dashboard.png",
);

const req = (url: string, remoteAddress = "127.0.0.1", method = "GET") => ({
  method,
  url,
  headers: {},
  remoteAddress,
});

describe("dashboard handler", () => {
  const limiter = new RateLimiter({
    policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
    clock: () => 1_700_000_000_500,
  });
  const board = dashboard({ limiter, guard: loopbackOnly, path: "/admin/ratelimit" });

  it("serves the page and its stats under its path only, to clients the guard admits", async () => {
    for (let i = 0; i < 15; i++) await limiter.consume("198.51.100.7");
    expect(await board.handle(req("/"))).toBeUndefined();
    expect(await board.handle(req("/admin/ratelimitx"))).toBeUndefined();
    const html = await board.handle(req("/admin/ratelimit"));
    expect(html?.status).toBe(200);
    expect(html?.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(html?.body).toContain('data-stats="/admin/ratelimit/stats.json"');
    expect((await board.handle(req("/admin/ratelimit/")))?.status).toBe(200);
    const json = await board.handle(req("/admin/ratelimit/stats.json?t=1"));
    expect(json?.headers["content-type"]).toBe("application/json; charset=utf-8");
    const stats = JSON.parse(json?.body ?? "");
    expect(stats.totals).toMatchObject({ allowed: 10, limited: 5 });
    expect(stats.series.burst.allowed).toHaveLength(300);
    expect(stats.series.burst.allowed.at(-1)).toBe(10);
    expect(stats.series.burst.limited.at(-1)).toBe(5);
    expect(stats.top).toEqual([{ key: "198.51.100.7", count: 5, error: 0 }]);
    expect(stats.store).toMatchObject({
      kind: "MemoryStore",
      remote: false,
      breaker: "closed",
      trackedKeys: 1,
    });
    expect(stats.policies).toEqual([
      { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
    ]);
  });

  it("lists blocked clients, latest ending first, until their block ends", async () => {
    const clock = { now: 1_700_000_000_000 };
    const guarded = new RateLimiter({
      policy: { name: "login", capacity: 2, refillRate: 2, interval: "15m", blockFor: 60_000 },
      clock: () => clock.now,
    });
    const blocks = dashboard({ limiter: guarded, guard: loopbackOnly, top: 3 });
    expect(blocks.stats().blocked).toEqual([]);
    for (let i = 0; i < 3; i++) await guarded.consume("203.0.113.5");
    await guarded.block("203.0.113.6", 120_000);
    clock.now += 10_000;
    // A denial during the block neither extends it nor lists it twice.
    expect((await guarded.consume("203.0.113.5")).reason).toBe("blocked");
    const t0 = 1_700_000_000_000;
    expect(blocks.stats().blocked).toEqual([
      { key: "203.0.113.6", until: t0 + 120_000 },
      { key: "203.0.113.5", until: t0 + 60_000, policy: "login" },
    ]);
    const json = await blocks.handle(req("/ratelimit/stats.json"));
    expect(JSON.parse(json?.body ?? "").blocked).toHaveLength(2);
    clock.now = t0 + 60_000;
    expect(blocks.stats().blocked.map((b) => b.key)).toEqual(["203.0.113.6"]);
    // Many blocks at once: the list stays bounded and shows the latest ending.
    for (let i = 0; i < 1500; i++) await guarded.block(`bulk-${i}`, 1000 + i);
    expect(blocks.stats().blocked.map((b) => b.key)).toEqual([
      "bulk-1499",
      "bulk-1498",
      "bulk-1497",
    ]);
    clock.now = t0 + 200_000;
    expect(blocks.stats().blocked).toEqual([]);
    blocks.stop();
    await guarded.block("203.0.113.7", 1000);
    expect(blocks.stats().blocked).toEqual([]);
  });

  it("refuses others with 403 before saying anything, and methods other than GET and HEAD with 405", async () => {
    const refused = await board.handle(req("/admin/ratelimit/stats.json", "203.0.113.5"));
    expect(refused?.status).toBe(403);
    expect(refused?.body).not.toContain("198.51.100.7");
    expect((await board.handle(req("/admin/ratelimit", "127.0.0.1", "POST")))?.status).toBe(405);
    expect((await board.handle(req("/admin/ratelimit", "::ffff:127.0.0.1")))?.status).toBe(200);
    expect((await board.handle(req("/admin/ratelimit", "::1")))?.status).toBe(200);
    expect((await board.handle(req("/admin/ratelimit", "10.0.0.1")))?.status).toBe(403);
    expect(
      (await board.handle({ ...req("/admin/ratelimit"), remoteAddress: undefined }))?.status,
    ).toBe(403);
  });

  it("allows only its own inline script and style, by hash", async () => {
    const html = await board.handle(req("/admin/ratelimit"));
    const csp = html?.headers["content-security-policy"] ?? "";
    const sha = async (text: string) =>
      Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).toString(
        "base64",
      );
    expect(csp).toContain(`script-src 'sha256-${await sha(SCRIPT)}'`);
    expect(csp).toContain(`style-src 'sha256-${await sha(STYLE)}'`);
    expect(csp).toContain("default-src 'none'");
    // Nothing is loaded from elsewhere (the SVG namespace URI is a name, never fetched).
    expect(html?.body).not.toMatch(/\ssrc=|<link rel="stylesheet"|@import|url\(/);
  });

  it("answers Fetch requests and node:http requests mounted under a prefix (Express originalUrl)", async () => {
    const ok = await board.fetch(new Request("http://localhost/admin/ratelimit/stats.json"), "::1");
    expect(ok?.status).toBe(200);
    expect(ok?.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect((await (ok as Response).json()).policies[0].name).toBe("burst");
    expect(await board.fetch(new Request("http://localhost/other"), "::1")).toBeUndefined();
    const head = await board.fetch(
      new Request("http://localhost/admin/ratelimit", { method: "HEAD" }),
      "::1",
    );
    expect(head?.status).toBe(200);
    expect(await head?.text()).toBe("");
    let status = 0;
    let body = "";
    const res = {
      writeHead(s: number) {
        status = s;
      },
      end(b?: string) {
        body = b ?? "";
      },
    };
    const mounted = {
      method: "GET",
      url: "/stats.json",
      originalUrl: "/admin/ratelimit/stats.json",
      headers: {},
      socket: { remoteAddress: "127.0.0.1" },
    };
    expect(await board.node(mounted as never, res as never)).toBe(true);
    expect(status).toBe(200);
    expect(JSON.parse(body).seconds).toBe(300);
    expect(await board.node({ ...mounted, originalUrl: "/x" } as never, res as never)).toBe(false);
  });

  it("serves the series of a policy named like an Object property (__proto__, constructor)", async () => {
    for (const name of ["__proto__", "constructor"]) {
      const odd = new RateLimiter({
        policy: { name, capacity: 2, refillRate: 1, interval: 1000 },
        clock: () => 1_700_000_000_500,
      });
      const oddBoard = dashboard({ limiter: odd, guard: loopbackOnly });
      for (let i = 0; i < 3; i++) await odd.consume("198.51.100.9");
      const body = (await oddBoard.handle(req("/ratelimit/stats.json")))?.body ?? "";
      const series = JSON.parse(body).series;
      expect(Object.keys(series)).toEqual([name]);
      const own = Object.getOwnPropertyDescriptor(series, name)?.value;
      expect(own.allowed.at(-1)).toBe(2);
      expect(own.limited.at(-1)).toBe(1);
      oddBoard.stop();
    }
  });

  it("is off until mounted and needs a guard", () => {
    expect(() => dashboard({ limiter } as unknown as Parameters<typeof dashboard>[0])).toThrow(
      /guard/,
    );
    expect(() => dashboard({ limiter, guard: () => true, path: "ratelimit" })).toThrow(/path/);
    expect(() =>
      dashboard({ limiter, guard: () => true, history: 5 } as Parameters<typeof dashboard>[0]),
    ).toThrow(/history/);
  });
});

describe("the demo's operator routes", () => {
  it("counts in /metrics exactly the 429s clients saw, and shows the dashboard to loopback clients only", async () => {
    const app = await buildDemo(createLimiter(readConfig({})));
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 15; i++) {
        statuses.push((await app.inject({ url: "/data", remoteAddress: "127.0.0.1" })).statusCode);
      }
      expect(statuses.filter((s) => s === 429)).toHaveLength(5);
      const metrics = await app.inject({ url: "/metrics", remoteAddress: "127.0.0.1" });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(metrics.body).toContain(
        'floodgate_decisions_total{policy="burst",outcome="allowed"} 10',
      );
      expect(metrics.body).toContain(
        'floodgate_decisions_total{policy="burst",outcome="limited"} 5',
      );
      expect(metrics.body).not.toContain("127.0.0.1");
      // Neither route is limited: a monitor still gets through while the client is throttled.
      expect(metrics.headers["x-ratelimit-limit"]).toBeUndefined();
      const page = await app.inject({ url: "/ratelimit", remoteAddress: "127.0.0.1" });
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
      const stats = await app.inject({ url: "/ratelimit/stats.json", remoteAddress: "::1" });
      expect(JSON.parse(stats.body).totals).toMatchObject({ allowed: 10, limited: 5 });
      expect((await app.inject({ url: "/ratelimit", remoteAddress: "192.0.2.1" })).statusCode).toBe(
        403,
      );
      expect(
        (await app.inject({ url: "/ratelimit/stats.json", remoteAddress: "192.0.2.1" })).statusCode,
      ).toBe(403);
    } finally {
      await app.close();
    }
  });
});

describe.skipIf(!existsSync(CHROMIUM) && process.env.CI === undefined)(
  "dashboard in headless Chromium",
  () => {
    let server: Server;
    let base: string;
    let browser: Browser;
    let board: Dashboard;
    const limiter = new RateLimiter({
      policies: [
        { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
        { name: "minute", capacity: 20, refillRate: 20, interval: 60_000 },
      ],
    });

    beforeAll(async () => {
      board = dashboard({ limiter, guard: loopbackOnly, history: 60 });
      server = createServer(async (request, response) => {
        if (await board.node(request, response)) return;
        // Test clients name themselves in a header, so one machine can play several.
        const key = String(request.headers["x-client"] ?? request.socket.remoteAddress);
        const d = await limiter.consume(key);
        response.writeHead(d.allowed ? 200 : 429, { "content-type": "application/json" });
        response.end(JSON.stringify({ allowed: d.allowed }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => server?.close(resolve));
      board?.stop();
    });

    async function traffic(ms: number): Promise<void> {
      const end = Date.now() + ms;
      let tick = 0;
      while (Date.now() < end) {
        const clients = ["hammer-1"];
        if (tick % 2 === 0) clients.push("scraper-2");
        if (tick % 5 === 0) clients.push(`visitor-${tick % 3}`);
        await Promise.all(
          clients.map((c) =>
            fetch(`${base}/api`, { headers: { "x-client": c } }).then((r) => r.text()),
          ),
        );
        tick++;
        await new Promise((r) => setTimeout(r, 80));
      }
    }

    it("loads with no console error, and the chart draws and updates while a burst runs", async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      page.on("requestfailed", (r) => errors.push(`requestfailed: ${r.url()}`));
      const requested: string[] = [];
      page.on("request", (r) => requested.push(r.url()));

      const response = await page.goto(`${base}/ratelimit`);
      expect(response?.status()).toBe(200);
      await page.waitForSelector("body[data-updates]", { timeout: 15_000 });
      await expect(page.locator(".empty").first().textContent()).resolves.toBe("no decisions yet");

      const burst = traffic(8000);
      const chart = page.locator('svg[data-policy="burst"]');
      await chart.waitFor({ timeout: 15_000 });
      const limitedPoints = () => chart.locator("polyline.limited").getAttribute("points");
      const first = await limitedPoints();
      await page.waitForFunction(
        (before) =>
          document
            .querySelector('svg[data-policy="burst"] polyline.limited')
            ?.getAttribute("points") !== before,
        first,
        { timeout: 15_000 },
      );
      await burst;
      await page.waitForFunction(
        () => Number(document.body.getAttribute("data-updates")) >= 4,
        undefined,
        { timeout: 15_000 },
      );
      // Let one more poll land so the screenshot shows the burst's last second.
      const updates = Number(await page.getAttribute("body", "data-updates"));
      await page.waitForFunction(
        (n) => Number(document.body.getAttribute("data-updates")) > n,
        updates,
        { timeout: 15_000 },
      );

      const points = (await limitedPoints())?.split(" ") ?? [];
      expect(points).toHaveLength(60);
      const ys = points.map((p) => Number(p.split(",")[1]));
      // Some second of the burst plots above the baseline (smaller y is higher).
      expect(Math.min(...ys)).toBeLessThan(Math.max(...ys));
      expect(await page.locator('svg[data-policy="minute"]').count()).toBe(1);
      await expect(page.locator("#top tr td.key").first().textContent()).resolves.toBe("hammer-1");
      await expect(page.locator("#blocked td.empty").textContent()).resolves.toBe("nobody blocked");
      await limiter.block("hammer-1", 90_000);
      await page.waitForSelector("#blocked td.key", { timeout: 15_000 });
      await expect(page.locator("#blocked td.key").textContent()).resolves.toBe("hammer-1");
      await expect(page.locator("#blocked tr td").nth(1).textContent()).resolves.toBe("by hand");
      expect(await page.locator("#blocked tr td.n").textContent()).toMatch(/^(89|90) s$/);
      await expect(page.locator("#breaker").textContent()).resolves.toBe("in-process");
      expect(await page.locator(".rates").first().textContent()).toMatch(/limited\/s/);

      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(errors).toEqual([]);
      expect(requested.every((u) => u.startsWith(base) || u.startsWith("data:"))).toBe(true);
      await page.close();
    }, 90_000);

    it("keeps updating with a policy named constructor, and shows a client's HTML as text", async () => {
      const odd = new RateLimiter({
        policy: { name: "constructor", capacity: 2, refillRate: 1, interval: 60_000 },
      });
      const oddBoard = dashboard({ limiter: odd, guard: loopbackOnly, history: 60 });
      const hostile = `<img src=x onerror="document.title='pwned'">`;
      for (let i = 0; i < 4; i++) await odd.consume(hostile);
      const oddServer = createServer(async (request, response) => {
        if (!(await oddBoard.node(request, response))) response.writeHead(404).end();
      });
      await new Promise<void>((resolve) => oddServer.listen(0, "127.0.0.1", resolve));
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      try {
        const port = (oddServer.address() as AddressInfo).port;
        await page.goto(`http://127.0.0.1:${port}/ratelimit`);
        await page.waitForFunction(
          () => Number(document.body.getAttribute("data-updates")) >= 2,
          undefined,
          { timeout: 15_000 },
        );
        expect(await page.locator('svg[data-policy="constructor"]').count()).toBe(1);
        await expect(page.locator("#top td.key").first().textContent()).resolves.toBe(hostile);
        expect(await page.locator("#top img").count()).toBe(0);
        expect(await page.title()).not.toBe("pwned");
        expect(await page.locator("#status").getAttribute("class")).not.toBe("err");
        expect(errors).toEqual([]);
      } finally {
        await page.close();
        await new Promise((resolve) => oddServer.close(resolve));
        oddBoard.stop();
      }
    }, 60_000);
  },
);
