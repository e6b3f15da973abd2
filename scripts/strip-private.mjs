#!/usr/bin/env node
// Run after tsup (npm run build's postbuild). The ESM and CommonJS
// declarations each declare RateLimiter (and MemoryStore, RedisStore,
// LimiterEvents), and tsup writes `#private;` into every class with private
// fields, which makes the two copies nominally different types. A program
// that loads both (.mts beside .cts files, import beside require, a monorepo
// where an ESM package hands its limiter to a CommonJS one) then rejects an
// ESM limiter in a CommonJS adapter, and Fastify's route-config augmentation,
// declared by both copies, conflicts (TS2717). Without the line the copies are
// structurally identical; the run time already accepts either limiter
// (src/http/options.ts duck-types `limiter`). Fails if a declaration file
// still has a private member afterwards, so a new form of one is not missed.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

const dir = new URL("../dist/", import.meta.url);
let stripped = 0;
for (const name of readdirSync(dir)) {
  if (!/\.d\.c?ts$/.test(name)) continue;
  const file = new URL(name, dir);
  const text = readFileSync(file, "utf8");
  const out = text.replace(/^[ \t]*#private;\r?\n/gm, () => {
    stripped++;
    return "";
  });
  if (/#private|^\s*(?:private|protected)\s/m.test(out)) {
    throw new Error(`strip-private: dist/${name} still declares a private member`);
  }
  if (out !== text) writeFileSync(file, out);
}
if (stripped === 0) throw new Error("strip-private: no `#private;` found: is dist/ built?");
