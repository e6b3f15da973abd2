#!/usr/bin/env node
// Checks the packed package as a user installs it: publint and
// arethetypeswrong on the tarball, then every subpath of the exports map
// imported as ESM, required as CommonJS, and type-checked from TypeScript
// under node16, nodenext and bundler resolution. Fails on any broken subpath.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const subpaths = Object.keys(pkg.exports).filter((p) => !p.endsWith(".json"));
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });

// A decision's hot path stays in one chunk: tsup splits a module imported by
// several entries into a chunk of its own, and V8 does not inline a function
// imported from another chunk (boundKey so split made a hot key's decision a
// fifth slower). Each of these must sit in the chunk that defines RateLimiter.
{
  const dist = join(root, "dist");
  const chunks = readdirSync(dist).filter((f) => f.endsWith(".js"));
  const home = (pattern) => chunks.filter((f) => pattern.test(readFileSync(join(dist, f), "utf8")));
  const limiter = home(/^var RateLimiter = class/m);
  if (limiter.length !== 1) throw new Error(`RateLimiter defined in ${limiter.length} ESM chunks`);
  for (const name of ["boundKey", "turnNow", "refill", "charge"]) {
    const where = home(new RegExp(`^(?:function ${name}\\(|var ${name} = )`, "m"));
    if (where.length !== 1 || where[0] !== limiter[0]) {
      throw new Error(
        `${name} is defined in ${where.join(", ") || "no chunk"}, not beside RateLimiter in ${limiter[0]}: a module of the decision's path is imported from another package entry (see src/core/key.ts)`,
      );
    }
  }
}

const work = mkdtempSync(join(tmpdir(), "floodgate-pack-"));
try {
  const tarball = join(
    work,
    run("npm", ["pack", "--silent", "--pack-destination", work], root).trim().split("\n").pop(),
  );
  run("npx", ["publint", "--strict", tarball], root);
  // The default profile includes node10 (`module: commonjs` projects), which
  // resolves the subpaths through package.json's typesVersions.
  run("npx", ["attw", "--pack", ".", "--quiet"], root);

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
  // What users of strict settings write: options that may be undefined
  // (exactOptionalPropertyTypes is on in every program), Express 5 route
  // params kept, a Request subclass in floodgate/fetch (Next.js), a Hono
  // app's Env in floodgate's callbacks, Koa's default state typed.
  writeFileSync(
    join(app, "dx.mts"),
    `import express from "express";
import { Hono } from "hono";
import Koa from "koa";
import { RateLimiter, RedisStore, keys, type Decision, type Store } from "floodgate";
import { prometheusMetrics } from "floodgate/prometheus";
import Fastify from "fastify";
import { floodgate, type FastifyRouteRateLimitOptions } from "floodgate/fastify";
import { rateLimit as expressLimit } from "floodgate/express";
import { rateLimit as honoLimit } from "floodgate/hono";
import { rateLimit as koaLimit } from "floodgate/koa";
import { withRateLimit } from "floodgate/fetch";
type IsAny<T> = 0 extends 1 & T ? true : false;
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T>(_v: T): void {}
function notAny<T>(_v: T, ..._c: IsAny<T> extends true ? ["unexpected any"] : []): void {}
const policy = { name: "burst", capacity: 10, refillRate: 2, interval: 1000 };
const env = process.env;
// Options built from the environment may be undefined: undefined means the default.
const store: Store | undefined = env.REDIS_URL ? new RedisStore({ url: env.REDIS_URL, prefix: env.PREFIX }) : undefined;
const limiter = new RateLimiter({ policy: { ...policy, name: env.POLICY_NAME }, store });
expressLimit({ policy, store, warnings: env.CI ? false : undefined });
keys.ip({ trustProxy: env.HOPS ? Number(env.HOPS) : undefined });
void limiter.wait("k", { signal: undefined as AbortSignal | undefined, maxWait: undefined });
prometheusMetrics(limiter, { prefix: env.METRICS_PREFIX });
// Express 5: floodgate in a route keeps the route's params.
const e = express();
const limit = expressLimit({ policy });
e.get("/users/:id", limit, (req, res) => { expectType<string>(req.params.id); res.end(); });
e.get("/orgs/:id", limit.route({ cost: 2 }), (req, res) => { expectType<string>(req.params.id); res.end(); });
// Fetch: a Request subclass (Next.js NextRequest) reaches the options' callbacks.
declare class NextRequest extends Request { readonly nextUrl: URL }
export const POST = withRateLimit(async (request: NextRequest) => new Response(request.nextUrl.pathname), {
  policy,
  key: (request) => { expectType<NextRequest>(request); return request.nextUrl.pathname; },
});
const post: (request: NextRequest) => Promise<Response> = POST;
void post;
// Hono: the app's Env reaches floodgate's callbacks.
type Env = { Variables: { user: { id: string } | undefined }; Bindings: { SECRET: string } };
const h = new Hono<Env>();
h.use(honoLimit<Env>({ policy, key: (c) => { notAny(c.get("user")); notAny(c.env); return c.get("user")?.id ?? "anon"; } }));
h.get("/", (c) => c.json({ remaining: c.get("rateLimit")?.remaining ?? null }));
// Koa: the decision is typed on the default state.
const k = new Koa();
k.use(koaLimit({ policy }));
k.use((ctx) => { const ok: Equal<typeof ctx.state.rateLimit, Decision | undefined> = true; void ok; });
// Fastify: a route's config.rateLimit; satisfies catches a misspelled name too.
const f = Fastify();
await f.register(floodgate, { limiter, hook: undefined });
f.get("/x", { config: { rateLimit: { cost: 2 } satisfies FastifyRouteRateLimitOptions } }, async () => "x");
// @ts-expect-error: cots is not an option
f.get("/y", { config: { rateLimit: { cots: 2 } satisfies FastifyRouteRateLimitOptions } }, async () => "y");
`,
  );
  // One program with both formats (a .mts and a .cts file, or a monorepo
  // where an ESM package hands its limiter to a CommonJS helper): the two
  // copies of the declarations must agree, the limiter and Fastify's route
  // config augmentation included.
  writeFileSync(
    join(app, "mixed-esm.mts"),
    `import Fastify from "fastify";
import floodgate from "floodgate/fastify";
import { RateLimiter } from "floodgate";
import type { HonoRateLimit } from "floodgate/hono";
import type { KoaRateLimit } from "floodgate/koa";
export type Limits = [HonoRateLimit, KoaRateLimit];
export const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
const app = Fastify();
await app.register(floodgate, { limiter });
app.get("/", { config: { rateLimit: { cost: 1 } } }, async (req) => req.rateLimit?.remaining);
`,
  );
  writeFileSync(
    join(app, "mixed-cjs.cts"),
    `import { rateLimit } from "floodgate/express";
import type { RateLimiter } from "floodgate";
import floodgate from "floodgate/fastify";
import type { HonoRateLimit } from "floodgate/hono";
import type { KoaRateLimit } from "floodgate/koa";
export type Limits = [HonoRateLimit, KoaRateLimit];
export function mount(limiter: RateLimiter) { return rateLimit({ limiter }); }
void floodgate;
`,
  );
  writeFileSync(
    join(app, "mixed-glue.mts"),
    `import { limiter } from "./mixed-esm.mjs";
import { mount } from "./mixed-cjs.cjs";
mount(limiter);
`,
  );
  // A CommonJS project on `module: commonjs` (node10 resolution, no
  // exports map): every subpath must still resolve to its types.
  mkdirSync(join(app, "node10"));
  writeFileSync(join(app, "node10", "package.json"), JSON.stringify({ type: "commonjs" }));
  writeFileSync(
    join(app, "node10", "cjs-node10.ts"),
    `import { RateLimiter } from "floodgate";
import { rateLimit } from "floodgate/express";
import { floodgate } from "floodgate/fastify";
import { rateLimit as honoLimit } from "floodgate/hono";
import { rateLimit as koaLimit } from "floodgate/koa";
import { rateLimit as nodeLimit } from "floodgate/node";
import { withRateLimit } from "floodgate/fetch";
import { prometheusMetrics } from "floodgate/prometheus";
import { dashboard } from "floodgate/dashboard";
const limiter = new RateLimiter({ policy: { capacity: 1, refillRate: 1, interval: 1000 } });
export const all = [rateLimit({ limiter }), floodgate, honoLimit, koaLimit, nodeLimit, withRateLimit, prometheusMetrics, dashboard];
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
    "--exactOptionalPropertyTypes",
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
    // Each format loaded alone, and (node16, nodenext) both in one program:
    // the mixed-* files. erl.mts is a program of its own: its global
    // declaration gives req.rateLimit another type than usage.mts reads.
    const programs =
      moduleResolution === "bundler"
        ? [["esm.mts"], ["usage.mts"], ["erl.mts"], ["dx.mts"]]
        : [
            ["esm.mts"],
            ["cjs.cts"],
            ["usage.mts"],
            ["erl.mts"],
            ["dx.mts"],
            ["mixed-esm.mts", "mixed-cjs.cts", "mixed-glue.mts"],
          ];
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
  // CommonJS projects on the default resolution of `module: commonjs`
  // (with esModuleInterop, as tsc --init writes it).
  typecheck([
    tsc,
    ...base,
    "--module",
    "commonjs",
    "--moduleResolution",
    "node10",
    "--esModuleInterop",
    join("node10", "cjs-node10.ts"),
  ]);
  console.log(
    `package check passed: ${names.join(", ")} (ESM, CJS, TS node16/nodenext/bundler/node10, mixed ESM+CJS)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
