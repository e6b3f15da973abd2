#!/usr/bin/env node
// The `floodgate` bin: hands the process's arguments and streams to main.
import { main } from "./main.js";

main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
}).then((code) => {
  process.exitCode = code;
});
