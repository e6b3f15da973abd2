import type { Machine } from "./machine.js";

/** Config is one run's settings; `--quick` shortens every part. */
export interface Config {
  quick: boolean;
  /** Rounds of the decision-rate jobs; each round runs every contender once, in a rotated order. */
  rounds: number;
  /** Rounds of the heap jobs at the largest key count (smaller counts run once). */
  heapRounds: number;
  /** Timed milliseconds per case, after `warmupMs` of untimed decisions. */
  durationMs: number;
  warmupMs: number;
  /** Contender ids to run; all when empty. */
  only: string[];
}

/**
 * SpeedRuns maps contender id -> case -> decisions per CPU-second per round
 * (NaN when a round failed); `wall` holds decisions per wall-clock second.
 */
export type SpeedRuns = Record<string, Record<string, number[]>>;
/** AllowedShares maps contender id -> case -> share allowed per round (checks the setup). */
export type AllowedShares = Record<string, Record<string, number[]>>;
/** HeapRuns maps contender id -> key count -> bytes per key per round. */
export type HeapRuns = Record<string, Record<string, number[]>>;

export interface RunData {
  config: Config;
  machine: Machine;
  speed: SpeedRuns;
  wall: SpeedRuns;
  allowed: AllowedShares;
  heap: HeapRuns;
  /** Results of scenarios that run their own processes (HTTP, Redis), by scenario id. */
  extra: Record<string, unknown>;
}

/** Target is one of issue 7's targets as this run measured it. */
export interface Target {
  target: string;
  measured: string;
  /** null when the run did not measure it. */
  met: boolean | null;
  /** For a target not met: what this run measured that bounds it (a floor, a trade). */
  why?: string;
}

/** Figure is one measured figure by a name stable across runs, for `--baseline` comparisons. */
export interface Figure {
  name: string;
  value: number;
  better: "higher" | "lower";
}

export interface Section {
  markdown: string;
  targets: Target[];
  summary?: unknown;
  /** The scenario's own figures (beyond data.speed and data.heap), compared against a baseline. */
  figures?: Figure[];
}

export interface Scenario {
  id: string;
  title: string;
  /** Decision-rate cases the scenario needs from the memory workers. */
  speedCases?(config: Config): string[];
  /** Key counts the scenario needs from the heap workers. */
  heapSizes?(config: Config): number[];
  /** Scenarios with their own processes (HTTP servers, redis-server) run here. */
  run?(config: Config): Promise<unknown>;
  report(data: RunData): Section;
}
