// The runnable recipes of issue 15 (examples/recipes/), run as a user runs
// them (node --import tsx), their printed figures checked against the
// arithmetic of the reservation each one makes.
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");

function run(file: string): string[] {
  const out = execFileSync(process.execPath, ["--import", "tsx", file], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  return out.trimEnd().split("\n");
}

describe("examples/recipes", () => {
  it("llm-reservation: estimates, streams, settles the real count, runs into debt, then 429", () => {
    // Estimate = prompt chars / 4 + max tokens; real = 700 (system prompt) + prompt chars / 4 + answer.
    expect(run("examples/recipes/llm-reservation.ts")).toEqual([
      "  settled acme: -3180 tokens (dropped 0)",
      "200 Summarise the meeting notes in three lines. -> 120 words; 19169 tokens left",
      "  settled acme: +600 tokens (dropped 0)",
      "200 Write the release announcement. -> 3900 words; 14561 tokens left",
      "  settled acme: +690 tokens (dropped 0)",
      "200 Translate the handbook. -> 7990 words; 5865 tokens left",
      "  settled acme: +695 tokens (dropped 0)",
      "200 Draft the contract. -> 5795 words; 0 tokens left",
      "429 Translate the appendix. -> token budget spent; 0 tokens left",
      "  Retry-After: 3600",
    ]);
  }, 60_000);

  it("byte-budget: charges the bytes really sent after the body, then refuses the day's overdraft", () => {
    // Each request reserves 65536 and settles the bytes written: 1,000,000 a day.
    expect(run("examples/recipes/byte-budget.ts")).toEqual([
      "  127.0.0.1: 300000 bytes sent, settled +234464",
      "200 asked 300000 bytes, got 300000; 700000 bytes left",
      "  127.0.0.1: 10000 bytes sent, settled -55536",
      "200 asked 10000 bytes, got 10000; 690000 bytes left",
      "  127.0.0.1: 600000 bytes sent, settled +534464",
      "200 asked 600000 bytes, got 600000; 90000 bytes left",
      "  127.0.0.1: 200000 bytes sent, settled +134464",
      "200 asked 200000 bytes, got 200000; 0 bytes left",
      "429 asked 1000 bytes, got 24; 0 bytes left",
      "  Retry-After: 86400",
    ]);
  }, 60_000);
});
