import { readFileSync } from "node:fs";
import os from "node:os";

export interface Machine {
  cpu: string;
  nproc: number;
  node: string;
  platform: string;
  memoryGiB: number;
  loadavg: number[];
}

/** machine describes where a run happened: CPU model (from /proc/cpuinfo), cores, Node. */
export function machine(): Machine {
  let cpu = os.cpus()[0]?.model ?? "unknown";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line) cpu = line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  return {
    cpu,
    nproc: os.availableParallelism(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
