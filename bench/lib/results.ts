import { CONTENDERS, PEERS } from "../memory/contenders.js";
import { median, pairedRatio } from "./stats.js";
import type { RunData } from "./types.js";

/** speedOf returns the per-round decisions/s of `id` in `name` ([] when not run). */
export function speedOf(data: RunData, id: string, name: string): number[] {
  return data.speed[id]?.[name] ?? [];
}

/** speedMedian is the median decisions/s of `id` in `name`. */
export function speedMedian(data: RunData, id: string, name: string): number {
  return median(speedOf(data, id, name));
}

/** speedRatio is `a` over `b` in `name`, the median of the per-round ratios. */
export function speedRatio(data: RunData, a: string, b: string, name: string): number {
  return pairedRatio(speedOf(data, a, name), speedOf(data, b, name));
}

/** bestPeer is the peer with the highest median in `name`, and floodgate's ratio to it. */
export function bestPeer(data: RunData, name: string): { id: string; ratio: number } {
  let best = { id: "", value: -1 };
  for (const id of PEERS) {
    const value = speedMedian(data, id, name);
    if (value > best.value) best = { id, value };
  }
  return { id: best.id, ratio: speedRatio(data, "floodgate", best.id, name) };
}

/** label is a contender's display name. */
export function label(id: string): string {
  return CONTENDERS.find((c) => c.id === id)?.label ?? id;
}

/** ran lists the contenders that have speed results, in table order. */
export function ranSpeed(data: RunData): string[] {
  return CONTENDERS.filter((c) => data.speed[c.id] !== undefined).map((c) => c.id);
}

/** heapMedian is the median bytes per key of `id` at `keys`. */
export function heapMedian(data: RunData, id: string, keys: number): number {
  return median(data.heap[id]?.[String(keys)] ?? []);
}

/** ranHeap lists the contenders that have heap results, in table order. */
export function ranHeap(data: RunData): string[] {
  return CONTENDERS.filter((c) => data.heap[c.id] !== undefined).map((c) => c.id);
}

/** keysLabel writes 1000000 as 1M and 100000 as 100k. */
export function keysLabel(n: number): string {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`;
  return String(n);
}
