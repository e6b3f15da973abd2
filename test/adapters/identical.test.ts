// One fixed sequence of requests through all six adapters (and both majors
// of Express and Koa) in one run: every client must see the same statuses,
// the same rate-limit headers and the same 429 body, byte for byte.
import express5 from "express";
import express4 from "express4";
import Koa3 from "koa";
import Koa2 from "koa2";
import { describe, expect, it } from "vitest";
import { type Harness, transcript } from "./contract.js";
import { expressHarness } from "./harnesses/express.js";
import { fastifyHarness } from "./harnesses/fastify.js";
import { fetchHarness } from "./harnesses/fetch.js";
import { honoHarness } from "./harnesses/hono.js";
import { koaHarness } from "./harnesses/koa.js";
import { nodeHarness } from "./harnesses/node.js";

const harnesses: Harness[] = [
  fastifyHarness,
  expressHarness("express 5", express5),
  expressHarness("express 4", express4),
  honoHarness,
  koaHarness("koa 3", Koa3),
  koaHarness("koa 2", Koa2),
  nodeHarness,
  fetchHarness,
];

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
