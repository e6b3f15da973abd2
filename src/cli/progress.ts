import type { ProgressEvent } from "./probe.js";

/** ProgressStream is where progress goes: stderr, or a fake in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

const BAR = 24;
// Redraws per second at most: a terminal redrawn on every request flickers and costs CPU.
const REDRAW_MS = 100;

/**
 * progressPrinter shows a probe's progress on `stream`. On a terminal it
 * redraws one line (a bar in rate mode, a countdown while waiting) and clears
 * it at the end; elsewhere it writes one plain line per phase, so logs stay short.
 */
export function progressPrinter(
  stream: ProgressStream,
  now: () => number = Date.now,
): (event: ProgressEvent) => void {
  const tty = stream.isTTY === true;
  let phase = "";
  let drawn = false;
  let lastDraw = Number.NEGATIVE_INFINITY;
  const draw = (text: string, force: boolean) => {
    const t = now();
    if (!force && t - lastDraw < REDRAW_MS) return;
    lastDraw = t;
    stream.write(`\r\x1b[2K${text}`);
    drawn = true;
  };
  const once = (name: string, text: string) => {
    if (phase === name) return;
    phase = name;
    if (!tty) stream.write(`${text}\n`);
  };
  return (event) => {
    switch (event.kind) {
      case "burst":
        // A burst takes moments: only a terminal gets a counter, a log gets nothing.
        if (tty) draw(`sending ${event.sent}/${event.total}`, event.sent === event.total);
        return;
      case "rate": {
        once("rate", `floodgate probe: sending ${event.total} requests over ${event.duration} s`);
        if (!tty) return;
        const done = Math.min(1, event.sent / event.total);
        const fill = Math.round(done * BAR);
        draw(
          `[${"█".repeat(fill)}${"░".repeat(BAR - fill)}] ${event.elapsed.toFixed(1)}/${event.duration} s  ${event.sent}/${event.total} sent  ${event.allowed} allowed  ${event.blocked} blocked`,
          event.sent === event.total,
        );
        return;
      }
      case "wait":
        once("wait", `floodgate probe: waiting ${event.total} s before the refill check`);
        if (tty) draw(`waiting for the refill check: ${Math.ceil(event.left)} s left`, false);
        return;
      case "refill":
        once("refill", "floodgate probe: refill check");
        if (tty) draw(`refill check: request ${event.sent}`, false);
        return;
      case "end":
        if (tty && drawn) stream.write("\r\x1b[2K");
        drawn = false;
        return;
    }
  };
}
