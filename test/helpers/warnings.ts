/**
 * Floodgate's process warnings (process.emitWarning, name FloodgateWarning),
 * as the tests that check them collect them.
 */

/** Heard is what heard() has collected so far: each warning's code and message, in order. */
export interface Heard {
  codes: string[];
  messages: string[];
  /** stop removes the listener: call it in a finally. */
  stop(): void;
}

/** heard collects floodgate's process warnings until stop(). */
export function heard(): Heard {
  const codes: string[] = [];
  const messages: string[] = [];
  const listener = (w: Error & { code?: string }) => {
    if (w.name === "FloodgateWarning") {
      codes.push(w.code as string);
      messages.push(w.message);
    }
  };
  process.on("warning", listener);
  return { codes, messages, stop: () => process.off("warning", listener) };
}

/** tick waits long enough for process warnings, emitted on a later tick, to arrive. */
export const tick = () => new Promise((resolve) => setTimeout(resolve, 20));
