import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * runChild runs one benchmark job in a fresh Node process (tsx loads the
 * TypeScript worker; floodgate itself comes from dist/) and returns the JSON
 * the worker prints as its last line of stdout. A fresh process per job keeps
 * the contenders from sharing a heap, a GC and JIT feedback.
 */
export function runChild<T>(
  worker: string,
  job: unknown,
  options: { nodeArgs?: string[]; timeoutMs?: number } = {},
): Promise<T> {
  const file = fileURLToPath(new URL(`../${worker}`, import.meta.url));
  const args = [...(options.nodeArgs ?? []), "--import", "tsx", file, JSON.stringify(job)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      err += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || last === "") {
        reject(
          new Error(
            `bench: ${worker} ${JSON.stringify(job)} failed (${signal ?? `exit ${code}`}): ${err.trim()}`,
          ),
        );
        return;
      }
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`bench: ${worker} printed no JSON: ${last.slice(0, 200)}`));
      }
    });
  });
}

/** rotate returns `list` rotated left by `by`: round r starts with a different contender. */
export function rotate<T>(list: readonly T[], by: number): T[] {
  const k = list.length === 0 ? 0 : by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}
