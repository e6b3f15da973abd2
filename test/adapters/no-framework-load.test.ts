// Each adapter's framework is an optional peer dependency: importing
// floodgate, or any adapter, must not load a framework. A resolve hook in a
// child process refuses every framework package, so an import of one fails.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const FRAMEWORKS = ["express", "express4", "koa", "koa2", "hono", "@hono/node-server", "fastify"];
const ENTRIES = [
  "src/index.ts",
  "src/adapters/express/index.ts",
  "src/adapters/hono/index.ts",
  "src/adapters/koa/index.ts",
  "src/adapters/node/index.ts",
  "src/adapters/fetch/index.ts",
  "src/adapters/fastify/index.ts",
];

const hooks = `
  const frameworks = ${JSON.stringify(FRAMEWORKS)};
  export async function resolve(specifier, context, next) {
    const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0];
    if (frameworks.includes(name)) throw new Error("framework loaded: " + specifier);
    return next(specifier, context);
  }
`;

describe("optional frameworks", () => {
  it("loads no framework when floodgate or any adapter is imported", () => {
    const script = `
      import { register } from "node:module";
      register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}));
      const loaded = [];
      for (const entry of ${JSON.stringify(ENTRIES)}) {
        const m = await import("./" + entry);
        loaded.push(entry + ":" + Object.keys(m).length);
      }
      console.log(JSON.stringify(loaded));
    `;
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: new URL("../..", import.meta.url).pathname, encoding: "utf8", timeout: 60_000 },
    );
    const loaded = JSON.parse(out.trim()) as string[];
    expect(loaded).toHaveLength(ENTRIES.length);
    for (const entry of loaded) expect(Number(entry.split(":")[1])).toBeGreaterThan(0);
  });

  it("refuses a framework import in that child, so the check above can fail", () => {
    const script = `
      import { register } from "node:module";
      register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}));
      await import("express").then(() => console.log("loaded"), (e) => console.log(e.message));
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(out.trim()).toBe("framework loaded: express");
  });
});
