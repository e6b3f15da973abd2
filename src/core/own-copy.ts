/**
 * ownCopy returns `key` as a flat string of its own, for a structure that
 * holds it past the request. V8 keeps a substring of 13 or more characters
 * as a view into the whole string it was cut from, so a key a key function
 * cut from a client's header, cookie or body (`authorization.split(" ")[1]`)
 * would keep all of it alive while held: 64 bytes counted, 16 KB or more
 * kept. Joining two parts and reading a character makes V8 write one new
 * string, to which the collector then points the join itself (53 B for a
 * 25-character key, where a slice of a copy would be 88 B). Called when a
 * key takes a new place, never on the path of a key already held.
 */
export function ownCopy(key: string): string {
  if (key.length < 13) return key;
  const copy = key.slice(0, 1) + key.slice(1);
  copy.charCodeAt(0);
  return copy;
}
