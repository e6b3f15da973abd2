// The refund option and blocks through the HTTP layer on Redis: two
// instances (node:http servers, each with its own RedisStore) share one
// redis-server, as two processes behind a load balancer would.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { rateLimit } from "../src/adapters/node/index.js";
import { keys } from "../src/http/keys.js";
import type { RateLimitOptions } from "../src/http/options.js";
import { type Policy, RedisStore, type StoreReply } from "../src/index.js";
import { describeRedis, FAIL_FAST, type RedisServer, startRedis } from "./helpers/redis-server.js";

describeRedis("refund and blocks over HTTP on Redis, two instances", () => {
  let redis: RedisServer;
  const clients: Redis[] = [];
  const servers: Server[] = [];
  /** Refunds (adjust calls) that reached Redis, over every instance. */
  let landed = 0;

  /**
   * The refund is sent when the response is, so the client can read its
   * response (and send the next request) before the refund reaches Redis; the
   * test waits for it rather than racing it (docs/frameworks.md says so).
   */
  class CountingStore extends RedisStore {
    override async adjust(
      key: string,
      policies: readonly Policy[],
      delta: number,
    ): Promise<StoreReply> {
      const reply = await super.adjust(key, policies, delta);
      landed++;
      return reply;
    }
  }

  beforeAll(async () => {
    redis = await startRedis();
  }, 20_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  /** instance serves /login (401 unless x-password is right) behind a check with `options`. */
  async function instance(
    prefix: string,
    options: Partial<RateLimitOptions<IncomingMessage, never>>,
  ) {
    const client = new Redis(redis.port, redis.host, FAIL_FAST);
    clients.push(client);
    await new Promise((r) => client.once("ready", r));
    const limit = rateLimit({
      key: keys.header("x-user"),
      store: new CountingStore({ client, prefix }),
      ...options,
    } as Parameters<typeof rateLimit>[0]);
    const server = createServer(async (req, res) => {
      if (!(await limit(req, res))) return;
      res.statusCode = req.headers["x-password"] === "right" ? 200 : 401;
      res.end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/login`;
  }

  const post = (url: string, password: string) =>
    fetch(url, { method: "POST", headers: { "x-user": "alice", "x-password": password } });

  it("refunds successful logins under the tier that charged them, whichever instance answers", async () => {
    const tier = [{ name: "login-free", capacity: 5, refillRate: 5, interval: "15m" }] as const;
    const options = {
      policies: () => tier,
      refund: (_req: IncomingMessage, status: number) => status < 400,
    };
    const a = await instance("refund", options);
    const b = await instance("refund", options);
    for (let i = 0; i < 40; i++) {
      const r = await post(i % 2 === 0 ? a : b, "right");
      expect(r.status).toBe(200);
      expect(r.headers.get("x-ratelimit-remaining")).toBe("4");
      await vi.waitFor(() => expect(landed).toBe(i + 1), { timeout: 5_000 });
    }
    for (let i = 4; i >= 0; i--) {
      const r = await post(i % 2 === 0 ? a : b, "wrong");
      expect(r.status).toBe(401);
      expect(r.headers.get("x-ratelimit-remaining")).toBe(String(i));
    }
    expect((await post(a, "wrong")).status).toBe(429);
    expect((await post(b, "right")).status).toBe(429);
  });

  it("keeps a blocked client out on both instances, Retry-After counting down the block", async () => {
    const policy = {
      name: "guarded",
      capacity: 2,
      refillRate: 2,
      interval: "1s",
      blockFor: 60_000,
    } as const;
    const a = await instance("block", { policy });
    const b = await instance("block", { policy });
    expect((await post(a, "right")).status).toBe(200);
    expect((await post(a, "right")).status).toBe(200);
    const denied = await post(a, "right");
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toMatch(/^(59|60)$/);
    // The bucket alone would refill in a second; the block holds on the other instance too.
    const other = await post(b, "right");
    expect(other.status).toBe(429);
    expect(Number(other.headers.get("retry-after"))).toBeGreaterThan(55);
  });
});
