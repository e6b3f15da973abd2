import Fastify from "fastify";
const { floodgate } = await import("/work/main/dist/fastify.js").catch(async () => import("/work/main/dist/fastify/index.js"));
const app = Fastify();
await app.register(floodgate, { policy: { capacity: 1e9, refillRate: 1, interval: 3600000 } });
app.get("/", async () => "hello world");
await app.listen({ port: 3999, host: "127.0.0.1" });
process.on("SIGINT", () => process.exit(0));
