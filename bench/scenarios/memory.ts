import { bestPeer, label, ranSpeed, speedMedian, speedRatio } from "../lib/results.js";
import { rate, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { RunData, Scenario, Target } from "../lib/types.js";

const CASES: [string, string][] = [
  ["hot-admit", "one hot key, admit path"],
  ["hot-reject", "one hot key, reject path"],
  ["rr-100000", "100k keys round-robin"],
  ["insert-1000000", "1M keys, insert (first decision of each)"],
  ["rr-1000000", "1M keys round-robin"],
];

/**
 * (a) In-memory decisions per second: floodgate through its public API
 * (`await limiter.consume(key)`), beside an inline Map token bucket (the
 * floor, sync and awaited) and the peers' memory stores, as their middleware
 * calls them.
 */
export const memory: Scenario = {
  id: "memory",
  title: "(a) In-memory decisions per second",
  speedCases: () => ["hot-admit", "hot-reject", "rr-100000", "rr-1000000"],
  report(data: RunData) {
    const ids = ranSpeed(data);
    const header = [
      "case",
      ...ids.map(label),
      "floodgate ÷ inline (await)",
      "floodgate ÷ inline (sync)",
      "floodgate ÷ best peer",
    ];
    const rows = CASES.filter(([name]) => data.speed.floodgate?.[name]).map(([name, title]) => {
      const peer = bestPeer(data, name);
      return [
        title,
        ...ids.map((id) => rate(speedMedian(data, id, name))),
        ratio(speedRatio(data, "floodgate", "inline-await", name)),
        ratio(speedRatio(data, "floodgate", "inline-sync", name)),
        peer.id ? `${ratio(peer.ratio)} (${label(peer.id)})` : "–",
      ];
    });
    const targets: Target[] = [];
    for (const name of ["hot-admit", "hot-reject"]) {
      const floor = speedRatio(data, "floodgate", "inline-await", name);
      targets.push({
        target: `hot key (${name.slice(4)}) >= 0.6 of the inline floor (await)`,
        measured: ratio(floor),
        met: Number.isFinite(floor) ? floor >= 0.6 : null,
      });
      const peer = bestPeer(data, name);
      targets.push({
        target: `hot key (${name.slice(4)}) ahead of every peer`,
        measured: `${ratio(peer.ratio)} of ${label(peer.id)}, the fastest peer`,
        met: Number.isFinite(peer.ratio) ? peer.ratio > 1 : null,
      });
    }
    for (const name of ["insert-1000000", "rr-1000000"]) {
      const floor = speedRatio(data, "floodgate", "inline-await", name);
      targets.push({
        target: `1M keys (${name.startsWith("insert") ? "insert" : "round-robin"}) >= 0.8 of the inline floor (await)`,
        measured: ratio(floor),
        met: Number.isFinite(floor) ? floor >= 0.8 : null,
      });
    }
    const markdown = [
      "Median decisions per CPU-second (M = million; the child process's user + system time, so",
      "waiting for a core on a shared machine does not count) over the rounds; ratios are medians",
      "of the per-round ratios (contenders alternate within each round). Wall-clock rates are in",
      "the JSON (`wall`).",
      "",
      table(header, rows),
    ].join("\n");
    return { markdown, targets };
  },
};
