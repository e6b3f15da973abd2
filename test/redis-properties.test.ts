import { Redis } from "ioredis";
import { afterAll, beforeAll, it } from "vitest";
import { redisAgreesWithMemory } from "./helpers/redis-properties.js";
import { describeRedis, type RedisServer, startRedis } from "./helpers/redis-server.js";

describeRedis("RedisStore agrees with MemoryStore on random sequences", () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.port, server.host, { enableOfflineQueue: false });
    await new Promise((r) => client.once("ready", r));
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it("300 random sequences (npm run test:chaos runs 10,000)", async () => {
    await redisAgreesWithMemory(client, 300);
  });
});
