/**
 * The benchmarks measure the code users get: the built `dist/`, not the
 * TypeScript sources. Types come from the sources so `tsc --noEmit` works on
 * a fresh clone before anything is built.
 */
export type Floodgate = typeof import("../../src/index.js");

export async function loadFloodgate(): Promise<Floodgate> {
  const url = new URL("../../dist/index.js", import.meta.url);
  try {
    return (await import(url.href)) as Floodgate;
  } catch (error) {
    throw new Error("bench: dist/index.js is missing; run `npm run build` first", {
      cause: error,
    });
  }
}
