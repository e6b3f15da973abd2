#!/usr/bin/env node
// The `floodgate` bin: hands the process's arguments and streams to main.
import { main } from "./main.js";

// `floodgate probe URL | head` closes stdout early; that is the reader's
// choice, not an error worth a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(0);
});

main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
}).then((code) => {
  process.exitCode = code;
  // The command is done: a client library still retrying a connection (a
  // Redis that never answered) must not keep the process alive.
  setTimeout(() => process.exit(code), 1000).unref();
});
