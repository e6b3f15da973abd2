// Which rule a request's descriptor matches, as envoyproxy/ratelimit finds it:
// level by level, `key_value` first, then the wildcard values in file order,
// then the entry without a value; the rule is the one at the descriptor's
// last entry (a descriptor of two entries never matches a one-level rule).
import type { DescriptorNode, DomainConfig, Rule } from "./config.js";

/** Entry is one `(key, value)` pair of a descriptor. */
export interface Entry {
  readonly key: string;
  readonly value: string;
}

/** Match is a descriptor's rule and the identity of its bucket within the domain. */
export interface Match {
  readonly rule: Rule;
  /**
   * The descriptor's entries as the bucket sees them: each value as sent,
   * except where a `share_threshold` wildcard matched (the pattern instead,
   * so all such values share one bucket).
   */
  readonly bucket: string;
}

/** wildcardMatch tells whether `text` is the pieces of a `*` pattern in order, anything between. */
export function wildcardMatch(pieces: readonly string[], text: string): boolean {
  const first = pieces[0] as string;
  const last = pieces[pieces.length - 1] as string;
  if (!text.startsWith(first) || text.length < first.length + last.length) return false;
  let at = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const found = text.indexOf(pieces[i] as string, at);
    if (found < 0) return false;
    at = found + (pieces[i] as string).length;
  }
  return text.length - last.length >= at && text.endsWith(last);
}

/** match finds the rule of one descriptor, or undefined when none applies. */
export function match(domain: DomainConfig, entries: readonly Entry[]): Match | undefined {
  let level = domain.root;
  let node: DescriptorNode | undefined;
  let bucket = "";
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    const id = `${e.key}_${e.value}`;
    node = level.exact.get(id);
    let shared: string | undefined;
    if (node === undefined) {
      for (const w of level.wildcards) {
        if (w.key === e.key && wildcardMatch(w.wildcard as readonly string[], id)) {
          node = w;
          if (w.shareThreshold) shared = w.value;
          break;
        }
      }
    }
    node ??= level.byKey.get(e.key);
    if (node === undefined) return undefined;
    // Lengths first, so no key or value can pose as two entries.
    const value = shared === undefined ? e.value : `*${shared}`;
    bucket += `${e.key.length}:${e.key}${value.length}:${value}`;
    level = node.children;
  }
  const rule = node?.rule;
  return rule === undefined ? undefined : { rule, bucket };
}
