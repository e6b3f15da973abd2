/**
 * The user's callbacks misbehaving, through every adapter's real server:
 * an `onLimited` that throws or rejects, a `respond` that throws after an
 * asynchronous decision, and key and cost functions returning what they must
 * not. Each request gets a clean answer, the process sees no unhandled
 * rejection, and the server keeps serving.
 */
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import {
  appSpec,
  burst,
  DETAIL,
  fakeClock,
  type Options,
  type Server,
  send,
} from "./adapters/contract.js";
import { allHarnesses } from "./adapters/harnesses/all.js";

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
process.on("unhandledRejection", onUnhandled);
process.on("uncaughtException", onUnhandled);

// FLOODGATE_ON_LIMITED_ERROR is heard here; every other warning goes on as before.
const heard: string[] = [];
const emitWarning = process.emitWarning.bind(process);
const spy = vi.spyOn(process, "emitWarning").mockImplementation(((
  warning: string | Error,
  options?: unknown,
) => {
  const code = (options as { code?: string } | undefined)?.code;
  if (code === "FLOODGATE_ON_LIMITED_ERROR") heard.push(`${code}: ${String(warning)}`);
  else emitWarning(warning as string, options as never);
}) as typeof process.emitWarning);

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  heard.length = 0;
  unhandled.length = 0;
});
afterAll(() => {
  spy.mockRestore();
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
});

/** settle lets promise callbacks and a macrotask run, so a late rejection would be seen. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe.each(allHarnesses.map((h) => [h.name, h] as const))("hostile callbacks: %s", (_, h) => {
  async function start(options: Options): Promise<Server> {
    const { store } = fakeClock();
    const server = await h.start(appSpec({ policy: burst, store, ...options }, store));
    servers.push(server);
    return server;
  }

  /** An onLimited that throws on odd calls and returns a rejected promise on even ones. */
  function failingOnLimited() {
    let n = 0;
    return () => {
      n++;
      if (n % 2 === 1) throw new Error("onLimited threw");
      return Promise.reject(new Error("onLimited rejected"));
    };
  }

  it("an onLimited that throws or rejects changes no answer: 429 when enforcing, 200 in shadow mode", async () => {
    const enforce = await start({ onLimited: failingOnLimited() });
    const shadow = await start({ mode: "shadow", onLimited: failingOnLimited() });
    for (const [server, limitedStatus] of [
      [enforce, 429],
      [shadow, 200],
    ] as const) {
      const statuses: number[] = [];
      for (let i = 0; i < 14; i++) {
        const a = await send(server, "/data");
        statuses.push(a.status);
        if (i >= 10 && limitedStatus === 429) {
          expect(a.headers["retry-after"]).toBe("1");
          expect(JSON.parse(a.body)).toEqual(DETAIL);
        }
      }
      expect(statuses).toEqual([...Array(10).fill(200), ...Array(4).fill(limitedStatus)]);
    }
    await settle();
    expect(unhandled).toEqual([]);
    // Reported once per middleware: the enforcing one and the shadow one.
    expect(heard).toHaveLength(2);
    for (const line of heard) expect(line).toMatch(/^FLOODGATE_ON_LIMITED_ERROR: the onLimited/);
  });

  it("a respond that throws is a 500, also after an asynchronous decision, and the server keeps serving", async () => {
    const respond = () => {
      throw new Error("respond threw");
    };
    for (const key of [() => "k", async () => "k"]) {
      const policy = { capacity: 5, refillRate: 1, interval: 60_000 };
      const server = await start({ policy, key, respond });
      for (let i = 0; i < 5; i++) expect((await send(server, "/")).status).toBe(200);
      for (let i = 0; i < 3; i++) {
        expect((await send(server, "/")).status).toBe(500);
      }
    }
    await settle();
    expect(unhandled).toEqual([]);
  });

  it("a key or cost function returning what it must not is a 500, and a 1 MB key is counted", async () => {
    const bad: Options[] = [
      { key: () => 42 },
      { key: () => undefined },
      { key: async () => ({ id: "k" }) },
      { cost: () => Number.NaN },
      { cost: async () => Number.POSITIVE_INFINITY },
      { cost: () => -1 },
      { cost: () => 0.5 },
      { cost: () => 11 },
      { cost: () => 2 ** 53 },
      { cost: () => "1" },
    ];
    for (const options of bad) {
      const server = await start({ key: () => "k", ...options });
      for (let i = 0; i < 2; i++) {
        expect(
          (await send(server, "/")).status,
          JSON.stringify(String(Object.values(options)[0])),
        ).toBe(500);
      }
    }
    // A megabyte key is held as a digest: counted, bounded, answered.
    const big = "k".repeat(1 << 20);
    const server = await start({ key: () => big });
    for (let i = 9; i >= 0; i--) {
      expect((await send(server, "/")).headers["x-ratelimit-remaining"]).toBe(String(i));
    }
    expect((await send(server, "/")).status).toBe(429);
    await settle();
    expect(unhandled).toEqual([]);
  });
});
