// One fixed sequence of requests through all six adapters (and both majors
// of Express and Koa) in one run: every client must see the same statuses,
// the same rate-limit headers and the same 429 body, byte for byte.
import { describe, expect, it } from "vitest";
import { transcript } from "./contract.js";
import { allHarnesses } from "./harnesses/all.js";

const harnesses = allHarnesses;

describe("identical answers across frameworks", () => {
  it("gives the same statuses, rate-limit headers and 429 bodies for the same sequence", async () => {
    const seen = new Map<string, unknown[]>();
    for (const harness of harnesses) seen.set(harness.name, await transcript(harness));
    const reference = seen.get("fastify") as unknown[];
    // The sequence covers allowed, denied, stacked, overridden and unlimited answers.
    expect(reference).toHaveLength(15);
    expect(reference.filter((step) => (step as { status: number }).status === 429)).toHaveLength(5);
    for (const [name, steps] of seen) {
      expect({ name, steps }).toEqual({ name, steps: reference });
    }
  });
});
