/**
 * One process of the multi-process debt test: `CALLERS` concurrent callers
 * reserve a random estimate on one key through a RateLimiter over
 * RedisStore, wait a moment, and settle a random actual cost, for
 * `DURATION_MS`. Every admitted reservation is printed (`R cost`) as soon as
 * it is known, and every settle once its answer is in (`S extra dropped
 * applied`), so a parent that kills this process with SIGKILL still knows
 * every token it took. With HOLD_AFTER_MS set the process stops after that
 * long holding one unsettled reservation and prints `HOLD`: the parent kills
 * it there, between reserve and settle.
 */
import { Redis } from "ioredis";
import { RateLimiter, RedisStore } from "../../src/index.js";

const env = process.env;
const node = JSON.parse(env.NODE ?? "{}") as { host: string; port: number };
const duration = Number(env.DURATION_MS ?? 8000);
const callers = Number(env.CALLERS ?? 16);
const holdAfter = env.HOLD_AFTER_MS === undefined ? undefined : Number(env.HOLD_AFTER_MS);
const client = new Redis(node.port, node.host, {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
});
await new Promise((r) => client.once("ready", r));

const limiter = new RateLimiter({
  policy: JSON.parse(env.POLICY as string),
  store: new RedisStore({ client, prefix: env.PREFIX ?? "debt", timeout: 2000 }),
  onStoreError: "deny",
});

const out = (line: string) => process.stdout.write(`${line}\n`);
out("ready");
await new Promise((r) => process.stdin.once("data", r));

const start = Date.now();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const random = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
let holding = false;
await Promise.all(
  Array.from({ length: callers }, async () => {
    while (Date.now() - start < duration && !holding) {
      const r = await limiter.reserve(env.KEY ?? "one-key", { cost: random(1, 50) });
      if (!r.decision.allowed || r.decision.reason !== "store") {
        // A process waiting to hold asks more often, so it wins a reservation soon.
        await pause(holdAfter === undefined ? 20 : 2);
        continue;
      }
      out(`R ${r.cost}`);
      if (holdAfter !== undefined && Date.now() - start >= holdAfter && !holding) {
        holding = true;
        out("HOLD");
        await new Promise(() => {});
      }
      await pause(random(0, 20));
      const s = await r.settle(random(0, 150));
      out(`S ${s.extra} ${s.dropped} ${s.applied ? 1 : 0}`);
    }
  }),
);
out("done");
client.disconnect();
process.stdin.destroy();
