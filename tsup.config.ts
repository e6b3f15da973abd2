import { defineConfig, type Options } from "tsup";

// No source maps and no tests in the package: they doubled its size and no
// user's stack trace needs them (the published files are plain, unminified
// JavaScript). The `floodgate` bin (probe, serve) is ESM only and has no
// types: it is run, never imported. It is built with the ESM library, so it
// shares the library's chunks instead of carrying a copy of the core. The two
// builds run side by side: each cleans only its own format's files.
const library = {
  index: "src/index.ts",
  dashboard: "src/metrics/dashboard.ts",
  fastify: "src/adapters/fastify/index.ts",
  express: "src/adapters/express/index.ts",
  hono: "src/adapters/hono/index.ts",
  koa: "src/adapters/koa/index.ts",
  node: "src/adapters/node/index.ts",
  fetch: "src/adapters/fetch/index.ts",
  prometheus: "src/metrics/prometheus.ts",
};
const common: Options = {
  sourcemap: false,
  target: "node20",
  splitting: true,
  treeshake: true,
  // Optional dependencies of `floodgate serve`, imported only by it, never bundled.
  external: ["yaml", "@grpc/grpc-js", "@grpc/proto-loader"],
};

export default defineConfig([
  {
    ...common,
    entry: { ...library, cli: "src/cli/index.ts" },
    format: ["esm"],
    dts: { entry: library },
    clean: ["!**/*.cjs", "!**/*.d.cts"],
  },
  {
    ...common,
    entry: library,
    format: ["cjs"],
    dts: true,
    clean: ["!**/*.js", "!**/*.d.ts"],
  },
]);
