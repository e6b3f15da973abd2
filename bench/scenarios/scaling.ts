import { heapMedian, keysLabel, label, ranSpeed, speedMedian, speedOf } from "../lib/results.js";
import { bytes, pairedRatio, rate, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { Config, RunData, Scenario } from "../lib/types.js";

function sizes(config: Config): number[] {
  return config.quick ? [1_000, 100_000, 1_000_000] : [1_000, 10_000, 100_000, 1_000_000];
}
// --quick measures heap at 1M keys only; the other sizes show "–".

/**
 * (e) How cost grows with the number of tracked keys: decisions/s walking
 * N keys round-robin, and heap bytes per key, from 1k to 1M keys.
 */
export const scaling: Scenario = {
  id: "scaling",
  title: "(e) How cost grows: 1k to 1M keys",
  speedCases: (config) => sizes(config).map((n) => `rr-${n}`),
  heapSizes: (config) => (config.quick ? [1_000_000] : sizes(config)),
  report(data: RunData) {
    const ns = sizes(data.config);
    const first = ns[0] as number;
    const last = ns[ns.length - 1] as number;
    const ids = ranSpeed(data);
    const speedRows = ids.map((id) => [
      label(id),
      ...ns.map((n) => rate(speedMedian(data, id, `rr-${n}`))),
      ratio(pairedScale(data, id, first, last)),
    ]);
    const heapRows = ids
      .concat(data.heap["bare-map"] ? ["bare-map"] : [])
      .map((id) => [label(id), ...ns.map((n) => bytes(heapMedian(data, id, n)))]);
    const own = pairedScale(data, "floodgate", first, last);
    const markdown = [
      `Decisions per second walking N keys round-robin (median), and ${keysLabel(last)} ÷ ${keysLabel(first)}:`,
      "",
      table(
        ["contender", ...ns.map((n) => keysLabel(n)), `${keysLabel(last)} ÷ ${keysLabel(first)}`],
        speedRows,
      ),
      "",
      "Bytes per tracked key at N keys (median of the heap rounds):",
      "",
      table(["contender", ...ns.map((n) => keysLabel(n))], heapRows),
    ].join("\n");
    return {
      markdown,
      targets: [
        {
          target: `decisions/s at ${keysLabel(last)} keys within 2x of ${keysLabel(first)} keys`,
          measured: `${ratio(own)} (${keysLabel(last)} ÷ ${keysLabel(first)})`,
          met: Number.isFinite(own) ? own >= 0.5 : null,
        },
      ],
    };
  },
};

/** pairedScale is decisions/s at `last` keys over `first` keys: the median of the per-round ratios. */
function pairedScale(data: RunData, id: string, first: number, last: number): number {
  return pairedRatio(speedOf(data, id, `rr-${last}`), speedOf(data, id, `rr-${first}`));
}
