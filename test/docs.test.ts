// Every ```ts block of README.md and docs/ must compile as a user would
// copy it: under strict, module nodenext, importing "floodgate",
// "floodgate/express", ... from the built package through its exports map
// and its .d.ts files, never from src/. The blocks are written as modules
// under .tmp/docs-snippets/, inside this repository, so "floodgate" resolves
// by package self-reference to package.json's exports (dist/) and the
// frameworks resolve from node_modules. One tsc run checks them all, so the
// blocks share one program: a block's global declaration (`declare module
// "fastify"`, `declare global`) reaches the others, and two blocks that
// augment the same interface must agree. A block opened with ```ts fragment
// is skipped and counted.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const work = join(root, ".tmp", "docs-snippets");

interface Block {
  /** The Markdown file, relative to the repository. */
  file: string;
  /** 1-based line of the block's first line of code. */
  line: number;
  code: string;
  fragment: boolean;
}

/** extractBlocks returns the ```ts blocks of one Markdown text, in order. */
function extractBlocks(text: string, file: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split("\n");
  let open: { info: string; start: number; code: string[] } | undefined;
  for (const [i, line] of lines.entries()) {
    if (open === undefined) {
      const fence = /^```(\S*)\s*(.*)$/.exec(line);
      if (fence !== null) open = { info: `${fence[1]} ${fence[2]}`.trim(), start: i + 2, code: [] };
    } else if (/^```\s*$/.test(line)) {
      const [lang, ...rest] = open.info.split(/\s+/);
      if (lang === "ts" || lang === "typescript") {
        blocks.push({
          file,
          line: open.start,
          code: open.code.join("\n"),
          fragment: rest.includes("fragment"),
        });
      }
      open = undefined;
    } else {
      open.code.push(line);
    }
  }
  if (open !== undefined)
    throw new Error(`${file}:${open.start - 1}: a code block is never closed`);
  return blocks;
}

function markdownFiles(): string[] {
  const found = ["README.md"];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (entry.name !== "_incoming") walk(path);
      } else if (entry.name.endsWith(".md")) {
        found.push(path);
      }
    }
  };
  walk("docs");
  return found.sort();
}

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
    }
  }
  return latest;
}

/** ensureBuilt builds dist/ once when it is missing or older than src/ or package.json. */
function ensureBuilt(): void {
  const marker = join(root, "dist", "index.d.ts");
  const sources = Math.max(newest("src"), statSync(join(root, "package.json")).mtimeMs);
  if (existsSync(marker) && statSync(marker).mtimeMs >= sources) return;
  execFileSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: "pipe" });
}

/** A block that must fail: proves the check reports a broken block by file and line. */
const CANARY: Block = {
  file: "test/docs.test.ts (canary)",
  line: 1,
  code: 'import { RateLimiter } from "floodgate";\nnew RateLimiter({ policy: { capacity: "ten", refillRate: 1, interval: 1000 } });',
  fragment: false,
};

describe("documentation code blocks", () => {
  it("extracts ts blocks with the line of their first line of code, fragments marked", () => {
    const text = [
      "# t",
      "```ts",
      "const a = 1;",
      "```",
      "```sh",
      "ls",
      "```",
      "```ts fragment",
      "x;",
      "```",
    ];
    expect(extractBlocks(text.join("\n"), "x.md")).toEqual([
      { file: "x.md", line: 3, code: "const a = 1;", fragment: false },
      { file: "x.md", line: 9, code: "x;", fragment: true },
    ]);
  });

  it("compiles every ```ts block of README.md and docs/ under strict against the built package", () => {
    ensureBuilt();
    const blocks = markdownFiles().flatMap((file) =>
      extractBlocks(readFileSync(join(root, file), "utf8"), file),
    );
    const compiled = blocks.filter((b) => !b.fragment);
    const skipped = blocks.length - compiled.length;

    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const byPath = new Map<string, Block>();
    for (const [i, block] of [...compiled, CANARY].entries()) {
      const name = `b${i}.ts`;
      byPath.set(name, block);
      writeFileSync(join(work, name), `${block.code}\n`);
    }
    writeFileSync(
      join(work, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          moduleDetection: "force",
          target: "es2022",
          lib: ["es2022"],
          types: ["node"],
          skipLibCheck: true,
          noEmit: true,
        },
        files: [...byPath.keys()],
      }),
    );
    let output = "";
    try {
      execFileSync(
        process.execPath,
        [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", work, "--pretty", "false"],
        { cwd: work, encoding: "utf8", stdio: "pipe" },
      );
    } catch (error) {
      output = String((error as { stdout?: unknown }).stdout ?? error);
    }
    const failures: string[] = [];
    let current: string[] | undefined;
    for (const line of output.split("\n")) {
      const hit = /^(b\d+\.ts)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(line);
      if (hit !== null) {
        const block = byPath.get(hit[1] ?? "");
        if (block === undefined) throw new Error(`tsc reported an unknown file: ${line}`);
        current = [`${block.file}:${block.line + Number(hit[2]) - 1}:${hit[3]} ${hit[4]}`];
        failures.push(current.join(""));
      } else if (line.startsWith(" ") && current !== undefined && failures.length > 0) {
        failures[failures.length - 1] += `\n${line}`;
      } else if (line.trim() !== "") {
        failures.push(`tsc: ${line}`);
        current = undefined;
      }
    }
    const canary = failures.filter((f) => f.startsWith(CANARY.file));
    const broken = failures.filter((f) => !f.startsWith(CANARY.file));
    rmSync(work, { recursive: true, force: true });

    console.log(
      `docs: ${compiled.length} ts blocks compiled, ${skipped} fragments skipped, in ${
        markdownFiles().length
      } files (${relative(root, join(root, "docs"))}/ and README.md)`,
    );
    // The check itself works: the canary's type error is reported at its line.
    expect(canary.join("\n")).toMatch(/^test\/docs\.test\.ts \(canary\):2:\d+ error TS2322/);
    expect(broken, `broken code blocks:\n${broken.join("\n")}`).toEqual([]);
    expect(compiled.length).toBeGreaterThan(0);
  }, 180_000);
});
