/**
 * The limiter's failure modes with a network store: deadline, onStoreError,
 * breaker, cached denials. The store here is a MemoryStore behind a real TCP
 * round trip to an echo server in a child process, so replies arrive as
 * socket reads while this process is busy, exactly as a Redis client's do.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Decision,
  MemoryStore,
  type Policy,
  RateLimiter,
  type Store,
  type StoreReply,
} from "../src/index.js";

type Mode = "ok" | "hang" | "fail";

/** NetStore answers from a MemoryStore, each reply after a loopback round trip. */
class NetStore implements Store {
  readonly timeout: number;
  readonly inner = new MemoryStore({ clock: () => this.now });
  now = 1_000_000;
  mode: Mode = "ok";
  calls = 0;
  up = true;
  readonly #pending = new Map<number, () => void>();
  #seq = 0;

  constructor(
    readonly socket: Socket,
    timeout = 50,
  ) {
    this.timeout = timeout;
    let buffer = "";
    socket.on("data", (data) => {
      buffer += data.toString();
      let i = buffer.indexOf("\n");
      while (i >= 0) {
        const id = Number(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
        this.#pending.get(id)?.();
        this.#pending.delete(id);
        i = buffer.indexOf("\n");
      }
    });
  }

  get clock() {
    return () => this.now;
  }

  available(): boolean {
    return this.up;
  }

  consume(
    key: string,
    policies: readonly Policy[],
    cost: number,
    spend: boolean,
  ): Promise<StoreReply> {
    this.calls++;
    if (this.mode === "fail") return Promise.reject(new Error("connection refused"));
    const reply = [...this.inner.consume(key, policies, cost, spend)];
    if (this.mode === "hang") return new Promise(() => {});
    const id = ++this.#seq;
    return new Promise((resolve) => {
      this.#pending.set(id, () => resolve(reply));
      this.socket.write(`${id}\n`);
    });
  }

  reset(key: string, policies: readonly Policy[]): Promise<void> {
    this.inner.reset(key, policies);
    return Promise.resolve();
  }
}

const policy = { name: "p", capacity: 3, refillRate: 1, interval: 1000 };
let echo: ChildProcess;
let port = 0;
const sockets: Socket[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  echo = spawn(
    process.execPath,
    [
      "-e",
      'const s = require("node:net").createServer((c) => c.pipe(c)); s.listen(0, "127.0.0.1", () => console.log(s.address().port)); process.stdin.on("end", () => process.exit(0)); process.stdin.resume();',
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  port = await new Promise<number>((resolve) =>
    echo.stdout?.once("data", (d) => resolve(Number(String(d).trim()))),
  );
});
afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  for (const s of sockets) s.destroy();
  echo.kill();
});
afterEach(() => {
  expect(unhandled).toEqual([]);
});

async function netStore(timeout = 50): Promise<NetStore> {
  const socket = connect(port, "127.0.0.1");
  sockets.push(socket);
  await new Promise((r) => socket.once("connect", r));
  return new NetStore(socket, timeout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("RateLimiter with a network store", () => {
  it("decides by the store, then answers the denial locally for its retryAfter", async () => {
    const store = await netStore();
    const limiter = new RateLimiter({ policy, store });
    for (let i = 0; i < 3; i++) expect((await limiter.consume("a")).reason).toBe("store");
    const denied = await limiter.consume("a");
    expect(denied).toMatchObject({ allowed: false, reason: "store", retryAfter: 1000 });
    const calls = store.calls;
    store.now += 400;
    expect((await limiter.peek("a")).now).toBe(denied.now + 400);
    expect(await limiter.consume("a")).toMatchObject({
      allowed: false,
      reason: "cached",
      retryAfter: 600,
    });
    expect(await limiter.peek("a")).toMatchObject({ allowed: false, reason: "cached" });
    // Within one millisecond a cached denial is the same frozen Decision.
    const cached = await limiter.consume("a");
    expect(await limiter.consume("a")).toBe(cached);
    expect(Object.isFrozen(cached)).toBe(true);
    // Another cost asks the store: its wait differs.
    expect(await limiter.consume("a", { cost: 2 })).toMatchObject({
      reason: "store",
      retryAfter: 1600,
    });
    expect(store.calls).toBe(calls + 1);
    store.now += 600;
    expect(await limiter.consume("a")).toMatchObject({ allowed: true, reason: "store" });
    expect(limiter.stats()).toMatchObject({ cached: 5, fallbacks: 0 });
  });

  it("a reset on this instance clears its cached denial", async () => {
    const store = await netStore();
    const limiter = new RateLimiter({ policy, store });
    for (let i = 0; i < 4; i++) await limiter.consume("r");
    await limiter.reset("r");
    expect(await limiter.consume("r")).toMatchObject({
      allowed: true,
      reason: "store",
      remaining: 2,
    });
  });

  it("cacheDenials: false asks the store every time", async () => {
    const store = await netStore();
    const limiter = new RateLimiter({ policy, store, cacheDenials: false });
    for (let i = 0; i < 6; i++) await limiter.consume("n");
    expect(store.calls).toBe(6);
    expect(limiter.stats().cached).toBe(0);
  });

  it("a reply that has arrived wins over its deadline, even when the event loop was busy", async () => {
    const store = await netStore(20);
    const limiter = new RateLimiter({ policy, store, onStoreError: "allow" });
    const results: Promise<Decision>[] = [];
    for (let i = 0; i < 5; i++) results.push(limiter.consume("busy"));
    // Block the loop well past the deadline; the echoes arrive meanwhile.
    const until = Date.now() + 150;
    while (Date.now() < until) {}
    const decisions = await Promise.all(results);
    expect(decisions.map((d) => d.reason)).toEqual(Array(5).fill("store"));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(limiter.stats().storeTimeouts).toBe(0);
  });

  it("a store that hangs is answered by insurance within the deadline, and the breaker opens", async () => {
    const store = await netStore(50);
    store.mode = "hang";
    const limiter = new RateLimiter({ policy, store });
    const started = performance.now();
    const decisions = await Promise.all(Array.from({ length: 5 }, () => limiter.consume("h")));
    const took = performance.now() - started;
    expect(took).toBeLessThan(50 + 60);
    expect(decisions.map((d) => d.reason)).toEqual(Array(5).fill("insurance"));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    // One burst of timeouts is a stall, not an outage: the breaker stays closed...
    expect(limiter.stats()).toMatchObject({ storeTimeouts: 5, fallbacks: 5, breaker: "closed" });
    // ...until the failures have lasted 200 ms.
    await sleep(200);
    await limiter.consume("h");
    expect(limiter.stats()).toMatchObject({ breaker: "open", breakerOpens: 1 });
    // Open: no calls, no waiting.
    const calls = store.calls;
    const quick = performance.now();
    expect((await limiter.consume("h2")).reason).toBe("insurance");
    expect(performance.now() - quick).toBeLessThan(10);
    expect(store.calls).toBe(calls);
  });

  it("probes at most once a second while open, and closes when a probe succeeds", async () => {
    const store = await netStore(30);
    store.mode = "fail";
    const limiter = new RateLimiter({ policy, store, onStoreError: "deny" });
    const failing = performance.now();
    while (limiter.stats().breaker === "closed") {
      expect((await limiter.consume("f")).reason).toBe("fail-closed");
      await sleep(20);
    }
    expect(performance.now() - failing).toBeLessThan(400);
    const calls = store.calls;
    const started = performance.now();
    while (performance.now() - started < 1500) {
      const d = await limiter.consume("x");
      expect(d).toMatchObject({ allowed: false, reason: "fail-closed" });
      expect(d.retryAfter).toBeGreaterThan(0);
      expect(d.retryAfter).toBeLessThanOrEqual(1000);
      await sleep(5);
    }
    // One probe (at ~1000 ms), failed: open again for another second.
    expect(store.calls - calls).toBe(1);
    store.mode = "ok";
    while (performance.now() - started < 3000 && limiter.stats().breaker !== "closed") {
      await limiter.consume("x");
      await sleep(5);
    }
    expect(limiter.stats().breaker).toBe("closed");
    expect(store.calls - calls).toBe(2);
    expect((await limiter.consume("y")).reason).toBe("store");
  });

  it("sends no probe while the store has no connection, and probes as soon as it has", async () => {
    const store = await netStore(30);
    store.mode = "fail";
    const limiter = new RateLimiter({ policy, store });
    while (limiter.stats().breaker === "closed") {
      await limiter.consume("u0");
      await sleep(20);
    }
    store.up = false;
    await sleep(1100);
    const calls = store.calls;
    expect((await limiter.consume("u")).reason).toBe("insurance");
    expect(store.calls).toBe(calls);
    store.up = true;
    store.mode = "ok";
    expect((await limiter.consume("u")).reason).toBe("store");
  });

  it('onStoreError "allow" lets requests through with reason fail-open', async () => {
    const store = await netStore();
    store.mode = "fail";
    const limiter = new RateLimiter({ policy, store, onStoreError: "allow" });
    const d = await limiter.consume("o");
    expect(d).toMatchObject({ allowed: true, reason: "fail-open", remaining: 2, retryAfter: 0 });
    expect(limiter.stats()).toMatchObject({ storeErrors: 1, fallbacks: 1 });
  });

  it("insurance divides each policy by instances", async () => {
    const store = await netStore();
    store.mode = "fail";
    const limiter = new RateLimiter({
      policy: { capacity: 10, refillRate: 2, interval: 1000 },
      store,
      instances: 3,
      clock: () => 5000,
    });
    const decisions = [];
    for (let i = 0; i < 5; i++) decisions.push(await limiter.consume("i"));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    // 2 per second over 3 instances, in small steps: 1 every 1.5 s (not 2 at once every 3 s).
    expect(decisions[4]).toMatchObject({ reason: "insurance", limit: 3, retryAfter: 1500 });
  });

  it("a reset that hangs rejects after the deadline", async () => {
    const store = await netStore(30);
    store.reset = () => new Promise(() => {});
    const limiter = new RateLimiter({ policy, store });
    await expect(limiter.reset("z")).rejects.toThrow(/did not answer within 30 ms/);
  });

  it("late replies after a timeout are counted, never unhandled", async () => {
    const store = await netStore(5);
    const limiter = new RateLimiter({ policy, store, onStoreError: "allow" });
    const orig = store.consume.bind(store);
    store.consume = (...args) => orig(...args).then((r) => sleep(30).then(() => r));
    expect((await limiter.consume("late")).reason).toBe("fail-open");
    for (let i = 0; i < 100 && limiter.stats().lateReplies === 0; i++) await sleep(10);
    expect(limiter.stats().lateReplies).toBe(1);
  });

  it("validates the new options", () => {
    const store = new MemoryStore();
    expect(() => new RateLimiter({ policy, store, onStoreError: "retry" as never })).toThrow(
      /"onStoreError" must be one of "insurance", "allow", "deny", got "retry"/,
    );
    expect(() => new RateLimiter({ policy, store, instances: 0 })).toThrow(/"instances"/);
    expect(() => new RateLimiter({ policy, store, cacheDenials: "yes" as never })).toThrow(
      /"cacheDenials"/,
    );
  });
});
