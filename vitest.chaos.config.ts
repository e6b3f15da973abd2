import { defineConfig } from "vitest/config";

/**
 * The long suites (`npm run test:chaos`, also run by .ci/run): multi-process
 * exactness against redis-server and a Redis Cluster, and Redis killed,
 * paused, slowed and cut under load. One file at a time: they measure time.
 */
export default defineConfig({
  test: {
    include: ["test/chaos/**/*.chaos.ts"],
    setupFiles: ["test/setup/warnings.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
