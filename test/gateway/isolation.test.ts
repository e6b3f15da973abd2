// Importing floodgate (or any of its subpaths) never loads the service's
// optional packages: only `floodgate serve` imports yaml and the gRPC ones.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers.js";

const OPTIONAL = ["yaml", "@grpc/grpc-js", "@grpc/proto-loader"];

/** graph follows the static imports (not `import()`) of `entry`, returning every file and bare package reached. */
function graph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop() as string;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(
      /^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm,
    )) {
      const spec = (m[1] ?? m[2]) as string;
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
      if (spec.startsWith(".")) todo.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      else packages.add(spec);
    }
  }
  return { files, packages };
}

describe("the library never loads the gateway's packages", () => {
  const entries = [
    "src/index.ts",
    "src/adapters/express/index.ts",
    "src/adapters/node/index.ts",
    "src/metrics/prometheus.ts",
    "src/cli/index.ts",
  ];

  it.each(entries)("%s", (entry) => {
    const { files, packages } = graph(join(ROOT, entry));
    expect(files.size).toBeGreaterThan(1);
    for (const p of OPTIONAL) expect(packages.has(p)).toBe(false);
    for (const f of files) expect(f.includes("/src/gateway/")).toBe(false);
  });

  it("while the serve command does reach them", () => {
    const { packages } = graph(join(ROOT, "src/gateway/serve.ts"));
    expect(packages.has("yaml")).toBe(true);
    const grpc = graph(join(ROOT, "src/gateway/grpc.ts"));
    expect(grpc.files.size).toBeGreaterThan(1);
  });
});
