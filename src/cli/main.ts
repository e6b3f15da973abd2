import { writeFile } from "node:fs/promises";
import { HELP, parseProbeArgs, UsageError } from "./args.js";
import { EXIT, type ProbeDeps, ProbeError, probe } from "./probe.js";
import { type ProgressStream, progressPrinter } from "./progress.js";
import { renderHtml } from "./render-html.js";
import { toJson } from "./render-json.js";
import { COLOR, PLAIN, renderText } from "./render-text.js";

/** CliIo is what the CLI reads and writes; tests pass fakes, the bin passes the process's own. */
export interface CliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly fetch?: typeof fetch;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly writeFile?: (path: string, text: string) => Promise<void>;
}

const USAGE = `Usage: floodgate <command>

Commands:
  probe URL [options]   send a burst (or steady traffic) to URL and show how it is rate limited
  serve --config FILE   run floodgate as a rate-limit service (Envoy gRPC, nginx, Caddy, HAProxy)

Run "floodgate probe --help" or "floodgate serve --help" for their options.
`;

/** main runs the `floodgate` command line and resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    io.stdout.write(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === "serve") {
    // Imported here, so the probe (and the library) never load the service's YAML and gRPC packages.
    const { runServe } = await import("../gateway/serve.js");
    return runServe(rest, io.env ?? {}, io.stdout, io.stderr);
  }
  if (command !== "probe") {
    io.stderr.write(
      `floodgate: unknown command ${JSON.stringify(command)}; try "floodgate probe URL"\n`,
    );
    return EXIT.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(HELP);
    return EXIT.ok;
  }
  const say = (line: string) => io.stderr.write(`floodgate probe: ${line}\n`);
  try {
    const { options, notices } = parseProbeArgs(rest);
    for (const notice of notices) say(notice);
    const now = io.now ?? Date.now;
    const deps: ProbeDeps = {
      fetch: io.fetch ?? fetch,
      now,
      sleep: io.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      progress: progressPrinter(io.stderr, now),
    };
    const report = await probe(options, deps);
    if (options.json) {
      io.stdout.write(`${JSON.stringify(toJson(report), null, 2)}\n`);
    } else {
      io.stdout.write(renderText(report, useColor(io) ? COLOR : PLAIN));
    }
    if (options.html !== null) {
      const write = io.writeFile ?? ((path, text) => writeFile(path, text, "utf8"));
      try {
        await write(options.html, renderHtml(report, new Date(now())));
      } catch (error) {
        say(`cannot write ${options.html}: ${(error as Error).message}`);
        return EXIT.failed;
      }
      say(`wrote ${options.html}`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof UsageError) {
      say(`${error.message} (see floodgate probe --help)`);
      return EXIT.usage;
    }
    if (error instanceof ProbeError) {
      say(error.message);
      return error.exitCode;
    }
    say(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.failed;
  }
}

function useColor(io: CliIo): boolean {
  const env = io.env ?? {};
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return io.stdout.isTTY === true;
}
