import { join } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The benchmarks measure the code users get: the built `dist/`, not the
 * TypeScript sources. Types come from the sources so `tsc --noEmit` works on
 * a fresh clone before anything is built.
 */
export type Floodgate = typeof import("../../src/index.js");

/**
 * DIST_ENV names the directory a run loads floodgate from: bench/run.ts copies
 * dist/ there when it starts, so a rebuild in the shared work tree during the
 * run (tsup cleans dist/) cannot pull the code from under its workers.
 */
export const DIST_ENV = "FLOODGATE_BENCH_DIST";

export async function loadFloodgate(): Promise<Floodgate> {
  const dir = process.env[DIST_ENV];
  const url = dir
    ? pathToFileURL(join(dir, "index.js"))
    : new URL("../../dist/index.js", import.meta.url);
  try {
    return (await import(url.href)) as Floodgate;
  } catch (error) {
    throw new Error(`bench: cannot load ${url.href}; run \`npm run build\` first`, {
      cause: error,
    });
  }
}
