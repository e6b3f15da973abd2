/**
 * isThenable tells a promise of any library or realm (anything with a `then`
 * method) from a value given at once: what a store, or a function of yours,
 * returns may come from another promise library than this realm's Promise.
 */
export function isThenable<T>(value: unknown): value is PromiseLike<T> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
