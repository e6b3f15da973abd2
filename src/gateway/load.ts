// Reading the config from disk: one file, or every *.yaml / *.yml in a folder
// (one domain each), and watching them for changes.
import { createHash } from "node:crypto";
import { type FSWatcher, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { dirname, join } from "node:path";
import { buildConfig, type GatewayConfig, GatewayConfigError, parseConfigFile } from "./config.js";

/** Loaded is a config with a digest of the text it came from. */
export interface Loaded {
  readonly config: GatewayConfig;
  readonly digest: string;
}

/** configFiles lists the files of `path`: itself, or a folder's YAML files in name order. */
export function configFiles(path: string): string[] {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    throw new GatewayConfigError(
      path,
      0,
      "--config",
      "does not exist",
      "give the path of a YAML file or of a folder of them",
    );
  }
  if (!stat.isDirectory()) return [path];
  const files = readdirSync(path)
    .filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith("."))
    .sort()
    .map((n) => join(path, n));
  if (files.length === 0) {
    throw new GatewayConfigError(
      path,
      0,
      "--config",
      "holds no .yaml or .yml file",
      "put one file per domain in the folder",
    );
  }
  return files;
}

/** loadConfig reads and validates every file of `path`, whole: one bad file fails all. */
export function loadConfig(path: string): Loaded {
  const hash = createHash("sha256");
  const domains = configFiles(path).map((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new GatewayConfigError(
        file,
        0,
        "(file)",
        `cannot be read: ${(error as Error).message}`,
        "check the file's permissions",
      );
    }
    hash.update(file).update("\0").update(text).update("\0");
    return parseConfigFile(file, text);
  });
  return { config: buildConfig(domains), digest: hash.digest("hex") };
}

/**
 * watchConfig calls `changed` soon after a file of `path` may have changed:
 * on file-system events (the folder is watched, so editors that replace the
 * file and Kubernetes' symlink swaps are seen) and, as a safety net for
 * file systems without events, on a poll every `pollMs`. The caller compares
 * digests, so a spurious call costs one read.
 */
export function watchConfig(path: string, changed: () => void, pollMs = 1000): () => void {
  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      changed();
    }, 50);
    timer.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    const dir = statSync(path).isDirectory() ? path : dirname(path);
    watcher = watch(dir, { persistent: false }, soon);
    watcher.on("error", () => {});
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(changed, pollMs);
  poll.unref();
  return () => {
    watcher?.close();
    clearInterval(poll);
    if (timer !== undefined) clearTimeout(timer);
  };
}
