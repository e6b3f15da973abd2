/**
 * Issue 15 item 2: 8 Node processes reserve random estimates on one key and
 * settle random actual costs (debt allowed) through one redis-server, for
 * 8 s; two of them are killed with SIGKILL while holding a reservation they
 * never settle. Every token taken is accounted for exactly:
 * admitted estimates + charged extras == capacity + refills x refillRate - tokens left,
 * which is the bound `capacity + refillRate x whole intervals + maxDebt`
 * reached with equality (the bucket never fills while the test runs, so no
 * refill is lost); the held estimates stay spent.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { RateLimiter, RedisStore } from "../../src/index.js";
import { describeRedis, type RedisServer, startRedis } from "../helpers/redis-server.js";

const PROCESSES = 8;
const KILLED = 2;
const DURATION_MS = 8000;
const policy = { capacity: 1000, refillRate: 500, interval: 1000, maxDebt: 300 };
const worker = fileURLToPath(new URL("./debt-worker.ts", import.meta.url));

interface Tally {
  admitted: number;
  extra: number;
  dropped: number;
  failed: number;
  reservations: number;
  settles: number;
}

interface Worker {
  ready: Promise<void>;
  held: Promise<void>;
  go(): void;
  kill(): void;
  exited: Promise<number | null>;
  tally: Tally;
}

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ["--import", "tsx", worker], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const tally: Tally = {
    admitted: 0,
    extra: 0,
    dropped: 0,
    failed: 0,
    reservations: 0,
    settles: 0,
  };
  let onReady: () => void = () => {};
  let onHeld: () => void = () => {};
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const held = new Promise<void>((r) => {
    onHeld = r;
  });
  let buffer = "";
  child.stdout.on("data", (d) => {
    buffer += d;
    const lines = buffer.split("\n");
    buffer = lines.pop() as string;
    for (const line of lines) {
      const [kind, a, b, c] = line.split(" ");
      if (kind === "ready") onReady();
      else if (kind === "HOLD") onHeld();
      else if (kind === "R") {
        tally.admitted += Number(a);
        tally.reservations++;
      } else if (kind === "S") {
        tally.settles++;
        if (c === "1") {
          tally.extra += Number(a);
          tally.dropped += Number(b);
        } else tally.failed++;
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), DURATION_MS + 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  return {
    ready,
    held,
    go: () => child.stdin.write("go\n"),
    kill: () => child.kill("SIGKILL"),
    exited,
    tally,
  };
}

describeRedis("multi-process debt exactness", () => {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it("8 processes reserving and settling on one key, 2 killed mid-reservation: every token accounted for", async () => {
    server = await startRedis();
    client = new Redis(server.port, server.host);
    const store = new RedisStore({ client, prefix: "debt", timeout: 2000 });
    const limiter = new RateLimiter({ policy, store, cacheDenials: false });
    const base = {
      NODE: JSON.stringify({ host: server.host, port: server.port }),
      POLICY: JSON.stringify(policy),
      PREFIX: "debt",
      DURATION_MS: String(DURATION_MS),
      CALLERS: "8",
    };
    // A process to be killed runs one caller, so no settle of its own is in flight (and in doubt) when it holds.
    const workers = Array.from({ length: PROCESSES }, (_, i) =>
      startWorker(
        i < KILLED ? { ...base, CALLERS: "1", HOLD_AFTER_MS: String(2000 + i * 1500) } : base,
      ),
    );
    await Promise.all(workers.map((w) => w.ready));
    // The parent's first request creates the bucket: T0 by Redis's clock.
    const first = await limiter.consume("one-key");
    const t0 = first.resetAt - policy.interval;
    for (const w of workers) w.go();
    const holds = await Promise.all(
      workers.slice(0, KILLED).map(async (w) => {
        const held = await Promise.race([
          w.held.then(() => true),
          new Promise<boolean>((r) => setTimeout(r, DURATION_MS + 10_000, false)),
        ]);
        w.kill();
        return held;
      }),
    );
    expect(holds, JSON.stringify(workers.map((w) => w.tally))).toEqual([true, true]);
    const codes = await Promise.all(workers.map((w) => w.exited));
    const [, , tokens, refilledAt] = Array.from(
      await store.consume("one-key", limiter.policies, 1, false),
    ) as [number, number, number, number];
    const refills = (refilledAt - t0) / policy.interval;
    const sum = (f: (t: Tally) => number) => workers.reduce((a, w) => a + f(w.tally), 0);
    const admitted = sum((t) => t.admitted) + 1;
    const charged = sum((t) => t.extra) - sum((t) => t.dropped);
    const expected = policy.capacity + refills * policy.refillRate - tokens;
    console.log(
      `debt exactness: ${sum((t) => t.reservations)} reservations (${admitted} tokens), ${sum((t) => t.settles)} settles (extra ${sum((t) => t.extra)}, dropped ${sum((t) => t.dropped)}), ${KILLED} processes killed holding a reservation; capacity ${policy.capacity} + ${refills} refills x ${policy.refillRate} - ${tokens} left = ${expected}; admitted + charged = ${admitted + charged}`,
    );
    expect(codes.slice(0, KILLED)).toEqual([null, null]);
    expect(codes.slice(KILLED).every((c) => c === 0)).toBe(true);
    // No settle failed, so no charge is in doubt.
    expect(sum((t) => t.failed)).toBe(0);
    // The bucket never filled (a whole number of refills since T0), so the bound is reached exactly.
    expect(Number.isInteger(refills)).toBe(true);
    expect(refills).toBeGreaterThanOrEqual(7);
    expect(admitted + charged).toBe(expected);
    expect(admitted + charged).toBeLessThanOrEqual(
      policy.capacity + refills * policy.refillRate + policy.maxDebt,
    );
    expect(tokens).toBeGreaterThanOrEqual(-policy.maxDebt);
    // Debt was reached and overflowed: the settles exercised the clamp.
    expect(sum((t) => t.dropped)).toBeGreaterThan(0);
    // The killed processes' held estimates stayed spent (they are in `admitted`, never refunded).
    expect(workers.slice(0, KILLED).every((w) => w.tally.reservations > w.tally.settles)).toBe(
      true,
    );
  });
});
