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
  const peers = Object.keys(pkg.peerDependencies ?? {}).map(
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
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
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
    // would see it twice.
    const programs = moduleResolution === "bundler" ? [["esm.mts"]] : [["esm.mts"], ["cjs.cts"]];
    for (const files of programs) {
      run(
        "node",
        [tsc, ...base, "--module", module, "--moduleResolution", moduleResolution, ...files],
        app,
      );
    }
  }
  console.log(`package check passed: ${names.join(", ")} (ESM, CJS, TS node16/nodenext/bundler)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
