import { heapMedian, label, ranHeap } from "../lib/results.js";
import { bytes, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { RunData, Scenario } from "../lib/types.js";

const KEYS = 1_000_000;

/**
 * (b) Heap bytes per tracked key at 1M keys: each contender in its own
 * process (--expose-gc), the key strings included (the worker keeps none),
 * typed-array memory outside the JS heap included, the baseline subtracted.
 */
export const heap: Scenario = {
  id: "heap",
  title: "(b) Heap bytes per tracked key at 1M keys",
  heapSizes: () => [KEYS],
  report(data: RunData) {
    const ids = ranHeap(data);
    const own = heapMedian(data, "floodgate", KEYS);
    const rows = ids.map((id) => {
      const b = heapMedian(data, id, KEYS);
      return [label(id), bytes(b), ratio(b / own)];
    });
    const markdown = [
      "Bytes per tracked key (median over rounds): JS heap plus external (typed arrays), key",
      "strings such as `10.3.141.59` included, after a full GC, baseline subtracted.",
      "",
      table(["contender", "bytes per key", "÷ floodgate"], rows),
    ].join("\n");
    return {
      markdown,
      targets: [
        {
          target: "<= 100 B heap per tracked key at 1M keys (key string included)",
          measured: bytes(own),
          met: Number.isFinite(own) ? own <= 100 : null,
        },
      ],
    };
  },
};
