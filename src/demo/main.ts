// `npm start`: the demo service. Settings come from the environment (see
// config.ts); problems a user can fix (a bad setting, a port in use) are one
// line on stderr and exit code 1, never a stack trace.
import { buildDemo, createLimiter, policyOf, storeName } from "./app.js";
import { DemoConfigError, readConfig } from "./config.js";

const PREFIX = "floodgate demo:";
/** On SIGTERM/SIGINT: how long requests in flight may take before their connections are cut. */
const DRAIN_MS = 5000;
/** Then how long the store may take to close before the process exits anyway. */
const CLOSE_MS = 5000;

function fail(message: string): never {
  process.stderr.write(`${PREFIX} ${message}\n`);
  process.exit(1);
}

/** listenProblem explains a listen error in one line, or returns undefined for an unexpected one. */
function listenProblem(
  error: NodeJS.ErrnoException,
  host: string,
  port: number,
): string | undefined {
  switch (error.code) {
    case "EADDRINUSE":
      return `port ${port} on ${host} is already in use; stop the other server or set PORT to a free port (PORT=0 picks one)`;
    case "EACCES":
      return `no permission to listen on port ${port}; use a port above 1023 (e.g. PORT=8000)`;
    case "EADDRNOTAVAIL":
      return `HOST ${host} is not an address of this machine; use 127.0.0.1, or 0.0.0.0 for every interface`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `HOST ${JSON.stringify(host)} cannot be resolved; use an IP address such as 127.0.0.1`;
    default:
      return undefined;
  }
}

async function main(): Promise<void> {
  let config: ReturnType<typeof readConfig>;
  try {
    config = readConfig(process.env);
  } catch (error) {
    if (error instanceof DemoConfigError) fail(error.message);
    throw error;
  }
  const limiter = createLimiter(config);
  const app = await buildDemo(limiter);
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    const problem = listenProblem(error as NodeJS.ErrnoException, config.host, config.port);
    if (problem !== undefined) fail(problem);
    throw error;
  }
  const address = app.server.address();
  const url =
    typeof address === "object" && address !== null
      ? `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`
      : `http://${config.host}:${config.port}`;
  const p = policyOf(config);
  process.stdout.write(
    `${PREFIX} listening on ${url} (policy "${p.name}": ${p.capacity} tokens, ${p.refillRate} more every ${p.interval} ms, per client IP, ${storeName(limiter.store)}; Ctrl+C stops)\n`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    // A second signal while closing means "now".
    if (stopping) process.exit(130);
    stopping = true;
    // Requests in flight get DRAIN_MS to finish; then every connection still
    // open (a client that connected and sent nothing, or half a request, a
    // slow upload) is cut, so that closing never waits on a client.
    const drain = setTimeout(() => app.server.closeAllConnections(), DRAIN_MS);
    drain.unref();
    // Whatever else would hold the process (a store that will not close), it exits.
    const deadline = setTimeout(
      () => fail(`could not stop within ${(DRAIN_MS + CLOSE_MS) / 1000} s (${signal}); exiting`),
      DRAIN_MS + CLOSE_MS,
    );
    deadline.unref();
    app
      .close()
      .then(() => {
        clearTimeout(drain);
        return limiter.close();
      })
      .then(
        () => {
          clearTimeout(deadline);
          process.stdout.write(`${PREFIX} stopped (${signal})\n`);
          process.exitCode = 0;
          // Stopped: a client library still retrying (a Redis that never answered) must not keep it alive.
          setTimeout(() => process.exit(0), 1000).unref();
        },
        (error: unknown) => fail(`could not stop cleanly: ${String(error)}`),
      );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${PREFIX} failed to start: ${error instanceof Error ? error.stack : String(error)}\n`,
  );
  process.exit(1);
});
