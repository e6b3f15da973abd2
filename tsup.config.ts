import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    dashboard: "src/metrics/dashboard.ts",
    fastify: "src/adapters/fastify/index.ts",
    express: "src/adapters/express/index.ts",
    hono: "src/adapters/hono/index.ts",
    koa: "src/adapters/koa/index.ts",
    node: "src/adapters/node/index.ts",
    fetch: "src/adapters/fetch/index.ts",
    prometheus: "src/metrics/prometheus.ts",
    cli: "src/cli/index.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  splitting: true,
  treeshake: true,
  // Optional dependencies of `floodgate serve`, imported only by it, never bundled.
  external: ["yaml", "@grpc/grpc-js", "@grpc/proto-loader"],
});
