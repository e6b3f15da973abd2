// A guard the examples share: a request whose target and Host make no URL
// gets 400 instead of the framework's guess at what it meant (Express serves
// "/" for `GET http://:99999/`, Koa's own ctx.path throws and answers 500).

/**
 * wellFormed tells whether a request target (origin-form "/path" or
 * absolute-form "http://host/path") and its Host header make a URL whose
 * path decodes: no broken percent-encoding, no invalid host or port.
 */
export function wellFormed(target: string | undefined, host: string | undefined): boolean {
  if (target === undefined || !(target.startsWith("/") || /^https?:\/\//i.test(target))) {
    return false;
  }
  try {
    decodeURIComponent(new URL(target, `http://${host ?? "localhost"}`).pathname);
    return true;
  } catch {
    return false;
  }
}
