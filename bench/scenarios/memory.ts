import { runChild } from "../lib/child.js";
import { bestPeer, label, ranSpeed, speedMedian, speedRatio } from "../lib/results.js";
import { bytes, rate, ratio } from "../lib/stats.js";
import { table } from "../lib/table.js";
import type { Config, Figure, RunData, Scenario, Target } from "../lib/types.js";
import type { AllocJob, AllocResult } from "../memory/alloc-worker.js";
import { CONTENDERS } from "../memory/contenders.js";

const CASES: [string, string][] = [
  ["hot-admit", "one hot key, admit path"],
  ["hot-reject", "one hot key, reject path"],
  ["rr-100000", "100k keys round-robin"],
  ["insert-1000000", "1M keys, insert (first decision of each)"],
  ["rr-1000000", "1M keys round-robin"],
];

const ALLOC_CASES = ["hot-admit", "hot-reject"];
/** Young-generation semi-space of the allocation workers (MB): room for a sample without a GC. */
const SEMI_SPACE_MB = 128;
/** The peer issue 18 holds floodgate's allocation to. */
const ALLOC_PEER = "express-rate-limit";

/** Result of the scenario's run(): heap bytes allocated per decision, by contender and case. */
interface AllocRun {
  semiSpaceMb: number;
  /** id -> case -> result (absent when the child failed). */
  runs: Record<string, Record<string, AllocResult>>;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * measureAlloc runs bench/memory/alloc-worker.ts once per contender (fresh
 * process, young generation large enough that no scavenge runs during a
 * sample): allocation is deterministic, so one process gives a stable figure.
 */
async function measureAlloc(config: Config): Promise<AllocRun> {
  const wanted = (id: string) => config.only.length === 0 || config.only.includes(id);
  const runs: AllocRun["runs"] = {};
  for (const c of CONTENDERS.filter((x) => !x.heapOnly && wanted(x.id))) {
    log(`bench: allocation per decision ${c.id}`);
    const job: AllocJob = { contender: c.id, cases: ALLOC_CASES };
    try {
      runs[c.id] = (
        await runChild<{ cases: Record<string, AllocResult> }>("memory/alloc-worker.ts", job, {
          nodeArgs: [
            "--expose-gc",
            `--min-semi-space-size=${SEMI_SPACE_MB}`,
            `--max-semi-space-size=${SEMI_SPACE_MB}`,
          ],
        })
      ).cases;
    } catch (error) {
      log(String(error));
    }
  }
  return { semiSpaceMb: SEMI_SPACE_MB, runs };
}

function allocOf(r: AllocRun | undefined, id: string, name: string): number {
  return r?.runs[id]?.[name]?.bytesPerDecision ?? Number.NaN;
}

function allocSection(r: AllocRun | undefined): { markdown: string; targets: Target[] } {
  const targets: Target[] = ALLOC_CASES.map((name) => {
    const fg = allocOf(r, "floodgate", name);
    const peer = allocOf(r, ALLOC_PEER, name);
    const measured =
      Number.isFinite(fg) && Number.isFinite(peer)
        ? `${bytes(fg)} against ${bytes(peer)} (${ratio(fg / peer)})`
        : "not measured";
    const met = Number.isFinite(fg) && Number.isFinite(peer) ? fg <= peer : null;
    const inline = allocOf(r, "inline-await", name);
    return {
      target: `hot key (${name.slice(4)}): heap bytes allocated per decision <= ${label(ALLOC_PEER)}'s`,
      measured,
      met,
      ...(met === false && Number.isFinite(inline)
        ? {
            why: `an awaited decision object is above it by itself: the inline Map bucket returning a four-field result, awaited the same way, allocates ${bytes(inline)} (below); ${label(ALLOC_PEER)} resolves the client's own stored record, counted up in place (no object per decision), floodgate a fresh Decision with each policy's state, as the contract asks (a proposal in bench/README.md)`,
          }
        : {}),
    };
  });
  if (r === undefined) return { markdown: "", targets };
  const ids = CONTENDERS.map((c) => c.id).filter((id) => r.runs[id] !== undefined);
  const rows = ids.map((id) => [
    label(id),
    ...ALLOC_CASES.map((name) => {
      const x = r.runs[id]?.[name];
      return x ? `${bytes(x.bytesPerDecision)} (${bytes(x.min)}-${bytes(x.max)})` : "–";
    }),
  ]);
  const markdown = [
    "",
    "Heap bytes allocated per decision, one hot key, through the same call as above (`await`",
    "included; garbage included): a child per contender with a young generation of",
    `${r.semiSpaceMb} MB (\`--min-semi-space-size\`, \`--max-semi-space-size\`), so a sample of 20k`,
    "decisions runs without any GC; the growth of `used_heap_size` over the sample divided by 20k.",
    "Median of 9 samples after 200k warm-up decisions (lowest-highest in brackets); a sample in",
    "which a GC ran (a `gc` PerformanceObserver entry) is discarded.",
    "",
    table(["contender", "admit path", "reject path"], rows),
  ].join("\n");
  return { markdown, targets };
}

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
  run: measureAlloc,
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
      const met = Number.isFinite(peer.ratio) ? peer.ratio > 1 : null;
      const inlineVsPeer = speedRatio(data, "inline-await", peer.id, name);
      targets.push({
        target: `hot key (${name.slice(4)}) ahead of every peer`,
        measured: `${ratio(peer.ratio)} of ${label(peer.id)}, the fastest peer`,
        met,
        ...(met === false && Number.isFinite(inlineVsPeer)
          ? {
              why: `${label(peer.id)} counts a fixed window (one increment, no clock arithmetic); the smallest correct token bucket, written inline and awaited the same way, runs at ${ratio(inlineVsPeer)} of it, and floodgate at ${ratio(floor)} of that floor`,
            }
          : {}),
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
    const allocRun = data.extra.memory as AllocRun | undefined;
    const alloc = allocSection(allocRun);
    const figures: Figure[] = CASES.filter(([name]) => data.speed.floodgate?.[name]).flatMap(
      ([name]) => [
        {
          name: `in-memory ${name} floodgate ÷ inline (await)`,
          value: speedRatio(data, "floodgate", "inline-await", name),
          better: "higher" as const,
        },
        {
          name: `in-memory ${name} floodgate ÷ best peer`,
          value: bestPeer(data, name).ratio,
          better: "higher" as const,
        },
      ],
    );
    for (const [id, byCase] of Object.entries(allocRun?.runs ?? {})) {
      for (const name of Object.keys(byCase)) {
        figures.push({
          name: `in-memory ${name} ${id} (B allocated/decision)`,
          value: allocOf(allocRun, id, name),
          better: "lower",
        });
      }
    }
    return {
      markdown: markdown + alloc.markdown,
      targets: [...targets, ...alloc.targets],
      figures,
    };
  },
};
