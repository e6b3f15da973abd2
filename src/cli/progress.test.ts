import { describe, expect, it } from "vitest";
import { progressPrinter } from "./progress.js";

function stream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (s: string) => chunks.push(s) };
}

const rate = (sent: number) =>
  ({
    kind: "rate",
    sent,
    total: 4,
    elapsed: sent / 2,
    duration: 2,
    allowed: sent,
    blocked: 0,
  }) as const;

describe("progressPrinter", () => {
  it("writes one line per phase when stderr is not a terminal", () => {
    const s = stream(false);
    const show = progressPrinter(s);
    show({ kind: "burst", sent: 1, total: 2 });
    for (let i = 1; i <= 4; i++) show(rate(i));
    show({ kind: "wait", left: 3, total: 3 });
    show({ kind: "wait", left: 2, total: 3 });
    show({ kind: "refill", sent: 1 });
    show({ kind: "end" });
    expect(s.chunks).toEqual([
      "floodgate probe: sending 4 requests over 2 s\n",
      "floodgate probe: waiting 3 s before the refill check\n",
      "floodgate probe: refill check\n",
    ]);
  });

  it("redraws one line on a terminal, at most every 100 ms, and clears it at the end", () => {
    const s = stream(true);
    let now = 0;
    const show = progressPrinter(s, () => now);
    show(rate(1));
    now = 50;
    show(rate(2));
    now = 150;
    show(rate(3));
    now = 160;
    show(rate(4));
    show({ kind: "end" });
    expect(s.chunks).toEqual([
      "\r\x1b[2K[██████░░░░░░░░░░░░░░░░░░] 0.5/2 s  1/4 sent  1 allowed  0 blocked",
      "\r\x1b[2K[██████████████████░░░░░░] 1.5/2 s  3/4 sent  3 allowed  0 blocked",
      "\r\x1b[2K[████████████████████████] 2.0/2 s  4/4 sent  4 allowed  0 blocked",
      "\r\x1b[2K",
    ]);
  });

  it("counts down the wait on a terminal", () => {
    const s = stream(true);
    const show = progressPrinter(s, () => 1000);
    show({ kind: "wait", left: 2.75, total: 3 });
    expect(s.chunks).toEqual(["\r\x1b[2Kwaiting for the refill check: 3 s left"]);
  });
});
