import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SpaceSaving, TopLimited } from "./top-keys.js";

describe("SpaceSaving", () => {
  it("counts exactly while it has room", () => {
    const s = new SpaceSaving(4);
    for (const k of ["a", "b", "a", "c", "a", "b"]) s.add(k);
    expect(s.top()).toEqual([
      { key: "a", count: 3, error: 0 },
      { key: "b", count: 2, error: 0 },
      { key: "c", count: 1, error: 0 },
    ]);
    expect(s.top(1).map((t) => t.key)).toEqual(["a"]);
  });

  it("counts a key again after its counter went to another key", () => {
    const s = new SpaceSaving(1);
    s.add("a");
    s.add("a");
    s.add("b");
    s.add("a");
    expect(s.top()).toEqual([{ key: "a", count: 4, error: 3 }]);
  });

  it("keeps every key above total/size and never undercounts (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 2000 }),
        fc.integer({ min: 1, max: 20 }),
        (stream, size) => {
          const s = new SpaceSaving(size);
          const truth = new Map<string, number>();
          for (const n of stream) {
            const key = `k${n % 7 === 0 ? 0 : n}`;
            s.add(key);
            truth.set(key, (truth.get(key) ?? 0) + 1);
          }
          const top = s.top();
          expect(top.length).toBeLessThanOrEqual(size);
          const kept = new Map(top.map((t) => [t.key, t]));
          for (const [key, count] of truth) {
            const t = kept.get(key);
            if (count > stream.length / size) expect(t, key).toBeDefined();
            if (t) {
              expect(t.count).toBeGreaterThanOrEqual(count);
              expect(t.count - t.error).toBeLessThanOrEqual(count);
            }
          }
        },
      ),
    );
  });
});

describe("TopLimited", () => {
  it("covers the recent window and forgets older ones", () => {
    const t = new TopLimited(10, 1000);
    for (let i = 0; i < 5; i++) t.add("old", 0);
    for (let i = 0; i < 3; i++) t.add("new", 1500);
    expect(t.top(10, 1500)).toEqual([
      { key: "old", count: 5, error: 0 },
      { key: "new", count: 3, error: 0 },
    ]);
    expect(t.top(10, 2100).map((x) => x.key)).toEqual(["new"]);
    expect(t.top(10, 10_000)).toEqual([]);
  });

  it("after the clock steps back a year, forgets within two windows, not a year", () => {
    const year = 365 * 86_400_000;
    const t = new TopLimited(10, 1000);
    t.add("before", 2 * year);
    expect(t.top(10, year).map((x) => x.key)).toEqual(["before"]);
    t.add("after", year + 500);
    expect(t.top(10, year + 1500).map((x) => x.key)).toEqual(["after", "before"]);
    expect(t.top(10, year + 2000)).toEqual([]);
  });
});
