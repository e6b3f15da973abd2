#!/usr/bin/env node
// Checks the packed package as a user installs it: publint and
// arethetypeswrong on the tarball, then every subpath of the exports map
// imported as ESM, required as CommonJS, and type-checked from TypeScript
// under node16, nodenext and bundler resolution. Fails on any broken subpath.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const subpaths = Object.keys(pkg.exports).filter((p) => !p.endsWith(".json"));
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });

const work = mkdtempSync(join(tmpdir(), "floodgate-pack-"));
try {
  const tarball = join(
    work,
    run("npm", ["pack", "--silent", "--pack-destination", work], root).trim().split("\n").pop(),
  );
  run("npx", ["publint", "--strict", tarball], root);
  run("npx", ["attw", "--pack", ".", "--profile", "node16", "--quiet"], root);

  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "app", private: true, type: "module" }),
  );
  run("npm", ["install", "--silent", "--no-audit", "--no-fund", "--omit=peer", tarball], app);
  // Adapters import their framework only when used; the import must not need it.
  const names = subpaths.map((p) => (p === "." ? pkg.name : `${pkg.name}/${p.slice(2)}`));
  for (const name of names) {
    run(
      "node",
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(name)}); if (!Object.keys(m).length) throw new Error("no exports: ${name}");`,
      ],
      app,
    );
    run(
      "node",
      [
        "--input-type=commonjs",
        "-e",
        `const m = require(${JSON.stringify(name)}); if (!Object.keys(m).length) throw new Error("no exports: ${name}");`,
      ],
      app,
    );
  }
  // A TypeScript user of an adapter has its framework installed, and its
  // types come from there: add the optional peers, at the versions this
  // repository tests with, before type-checking every subpath.
  // Express and Koa ship no types: their users install @types/express and @types/koa.
  const typed = Object.keys(pkg.peerDependencies ?? {}).flatMap((name) =>
    pkg.devDependencies?.[`@types/${name}`] === undefined ? [name] : [name, `@types/${name}`],
  );
  const peers = typed.map(
    (name) => `${name}@${pkg.devDependencies?.[name] ?? pkg.peerDependencies[name]}`,
  );
  if (peers.length > 0) {
    run("npm", ["install", "--silent", "--no-audit", "--no-fund", "--no-save", ...peers], app);
  }
  // TypeScript consumers: every subpath resolves with types under each resolution mode.
  const ts = names
    .map((n, i) => `import * as m${i} from ${JSON.stringify(n)};\nvoid m${i};`)
    .join("\n");
  const cts = names
    .map((n, i) => `import m${i} = require(${JSON.stringify(n)});\nvoid m${i};`)
    .join("\n");
  writeFileSync(
    join(app, "esm.mts"),
    `${ts}\nimport { RateLimiter } from "floodgate";\nconst l: RateLimiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });\nvoid l;\n`,
  );
  writeFileSync(join(app, "cjs.cts"), cts);
  // Each adapter as its quick start uses it: its middleware must fit its
  // framework's own types, and the decision must be typed where it is read.
  writeFileSync(
    join(app, "usage.mts"),
    `import { createServer } from "node:http";
import express from "express";
import { Hono } from "hono";
import Koa from "koa";
import { type RateLimitedRequest, rateLimit as expressLimit } from "floodgate/express";
import { keys, withRateLimit } from "floodgate/fetch";
import { rateLimit as honoLimit } from "floodgate/hono";
import { type RateLimitState, rateLimit as koaLimit } from "floodgate/koa";
import { rateLimit as nodeLimit } from "floodgate/node";
const policy = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const e = express();
e.use(expressLimit({ policy, key: keys.header("x-api-key") }));
e.get("/", (req: RateLimitedRequest, res) => { res.json({ remaining: req.rateLimit?.remaining }); });
const k = new Koa<RateLimitState>();
k.use(koaLimit({ policy }));
k.use((ctx) => { ctx.body = { remaining: ctx.state.rateLimit?.remaining }; });
const h = new Hono();
h.use(honoLimit({ policy }));
h.get("/", (c) => c.json({ remaining: c.get("rateLimit")?.remaining ?? null }));
const limit = nodeLimit({ policy });
createServer(async (req, res) => { if (await limit(req, res)) res.end("ok"); });
export const GET = withRateLimit(async (request: Request) => Response.json({ url: request.url }), {
  policy,
  key: keys.header("x-api-key"),
});
`,
  );
  // A codebase moving from express-rate-limit types req.rateLimit its own way;
  // floodgate/express must not re-type Express's Request over it.
  writeFileSync(
    join(app, "erl.mts"),
    `import express from "express";
import { rateLimit, rateLimitOf } from "floodgate/express";
declare global {
  namespace Express {
    interface Request {
      rateLimit?: { limit: number; used: number; remaining: number; resetTime: Date | undefined };
    }
  }
}
export const resetOf = (req: express.Request): Date | undefined => req.rateLimit?.resetTime;
const app = express();
app.use(rateLimit({ policy: { name: "api", capacity: 100, refillRate: 100, interval: "15m" } }));
app.get("/", (req, res) => { res.json({ remaining: rateLimitOf(req)?.remaining }); });
`,
  );
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  // Library declarations are checked too (skipLibCheck false), but only an
  // error in floodgate's or the consumer's files fails the check: a
  // framework's own types can be out of step with its dependencies
  // (@types/koa with Koa 3's content-disposition), which no user of ours fixes.
  const typecheck = (args) => {
    try {
      run("node", args, app);
    } catch (error) {
      const lines = String(error.stdout)
        .split("\n")
        .filter((l) => /error TS\d+/.test(l));
      const ours = lines.filter(
        (l) => !l.startsWith("node_modules/") || l.startsWith("node_modules/floodgate/"),
      );
      if (ours.length > 0 || lines.length === 0) {
        console.error(String(error.stdout));
        throw error;
      }
      console.log(`note: errors only in third-party types, ignored:\n${lines.join("\n")}`);
    }
  };
  const base = [
    "--noEmit",
    "--strict",
    "--target",
    "es2022",
    "--skipLibCheck",
    "false",
    "--types",
    "node",
    "--typeRoots",
    join(root, "node_modules", "@types"),
  ];
  for (const [module, moduleResolution] of [
    ["node16", "node16"],
    ["nodenext", "nodenext"],
    ["esnext", "bundler"],
  ]) {
    // ESM and CommonJS consumers are separate programs: each format has its
    // own .d.ts/.d.cts, and an adapter's module augmentation (fastify's route
    // config) is declared once per copy, so one program loading both copies
    // would see it twice. erl.mts is a program of its own too: its global
    // declaration gives req.rateLimit another type than usage.mts reads.
    const programs =
      moduleResolution === "bundler"
        ? [["esm.mts"], ["usage.mts"], ["erl.mts"]]
        : [["esm.mts"], ["cjs.cts"], ["usage.mts"], ["erl.mts"]];
    for (const files of programs) {
      typecheck([
        tsc,
        ...base,
        "--module",
        module,
        "--moduleResolution",
        moduleResolution,
        ...files,
      ]);
    }
  }
  console.log(`package check passed: ${names.join(", ")} (ESM, CJS, TS node16/nodenext/bundler)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
