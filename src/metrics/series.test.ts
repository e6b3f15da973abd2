import { describe, expect, it } from "vitest";
import { DecisionSeries } from "./series.js";

describe("DecisionSeries", () => {
  it("counts per policy and second, oldest first, the current second last", () => {
    const s = new DecisionSeries(60);
    const t = 1_700_000_000_000;
    for (let i = 0; i < 3; i++) s.add("burst", "allowed", t);
    s.add("burst", "limited", t + 999);
    s.add("burst", "fallback_limited", t + 1000);
    s.add("burst", "shadow_limited", t + 1000);
    s.add("burst", "fallback_allowed", t + 1000);
    const snap = s.snapshot(t + 1500).burst;
    expect(snap?.allowed.slice(-2)).toEqual([3, 1]);
    expect(snap?.limited.slice(-2)).toEqual([1, 1]);
    expect(snap?.shadow.slice(-2)).toEqual([0, 1]);
    expect(snap?.allowed).toHaveLength(60);
  });

  it("forgets seconds that left the window, in fixed memory", () => {
    const s = new DecisionSeries(60);
    const t = 1_700_000_000_000;
    s.add("p", "allowed", t);
    expect(s.snapshot(t + 59_000).p?.allowed[0]).toBe(1);
    expect(s.snapshot(t + 60_000).p?.allowed.every((v) => v === 0)).toBe(true);
    // The ring slot is reused for the new second and starts from zero.
    s.add("p", "allowed", t + 60_000);
    expect(s.snapshot(t + 60_000).p?.allowed.at(-1)).toBe(1);
  });

  it("keeps at most 32 policies apart and adds up the rest", () => {
    const s = new DecisionSeries(60);
    for (let i = 0; i < 40; i++) s.add(`p${i}`, "limited", 0);
    const snap = s.snapshot(0);
    expect(Object.keys(snap)).toHaveLength(33);
    expect(snap._other?.limited.at(-1)).toBe(8);
  });
});
