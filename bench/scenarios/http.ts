import { existsSync } from "node:fs";
import type { Scenario } from "../lib/types.js";

const ADAPTERS = ["express", "fastify", "hono"] as const;

/**
 * (c) HTTP requests per second of a hello-world route: no limiter, floodgate,
 * and the framework's popular limiter, for Fastify, Express and Hono; allowed
 * path and all-rejected path.
 *
 * Shape, for when the adapters land: each (framework, limiter, path) server
 * runs in its own child process (bench/http/server.ts) and reports its
 * process.cpuUsage() per request over IPC; autocannon drives it from this
 * process; contenders alternate within each round like the memory jobs.
 * Until `dist/<framework>.js` exists this scenario reports what is missing.
 */
export const http: Scenario = {
  id: "http",
  title: "(c) HTTP throughput (Fastify, Express, Hono)",
  async run() {
    const missing = ADAPTERS.filter(
      (name) => !existsSync(new URL(`../../dist/${name}.js`, import.meta.url)),
    );
    return { measured: false, missing };
  },
  report(data) {
    const result = data.extra.http as { missing: string[] } | undefined;
    const missing = result?.missing ?? [...ADAPTERS];
    return {
      markdown: `Not measured in this run: the adapters (${missing.map((m) => `floodgate/${m}`).join(", ")}) are not built yet.`,
      targets: [
        {
          target:
            "HTTP: >= 0.95 of no-limiter req/s (allowed path); 429 path >= no-limiter; ahead of each peer",
          measured: "not measured yet",
          met: null,
        },
      ],
    };
  },
};
