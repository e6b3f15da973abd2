import { defineConfig } from "tsup";

// No source maps and no tests in the package: they doubled its size and no
// user's stack trace needs them (the published files are plain, unminified
// JavaScript). The `floodgate` bin is ESM only and has no types: it is run,
// never imported. The first build cleans dist/ but for the bin, which the
// second build, running alongside, writes.
export default defineConfig([
  {
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
    },
    format: ["esm", "cjs"],
    dts: true,
    clean: ["!cli.js"],
    sourcemap: false,
    target: "node20",
    splitting: true,
    treeshake: true,
  },
  {
    entry: { cli: "src/cli/index.ts" },
    format: ["esm"],
    dts: false,
    sourcemap: false,
    // Optional dependencies of `floodgate serve`, imported only by it, never bundled.
    external: ["yaml", "@grpc/grpc-js", "@grpc/proto-loader"],
    target: "node20",
    splitting: false,
    treeshake: true,
  },
]);
