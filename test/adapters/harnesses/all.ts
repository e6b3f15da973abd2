import express5 from "express";
import express4 from "express4";
import Koa3 from "koa";
import Koa2 from "koa2";
import type { Harness } from "../contract.js";
import { expressHarness } from "./express.js";
import { fastifyHarness } from "./fastify.js";
import { fetchHarness } from "./fetch.js";
import { honoHarness } from "./hono.js";
import { koaHarness } from "./koa.js";
import { nodeHarness } from "./node.js";

/** allHarnesses is every adapter through its real server: the eight the guarantees run against. */
export const allHarnesses: readonly Harness[] = [
  fastifyHarness,
  expressHarness("express 5", express5),
  expressHarness("express 4", express4),
  honoHarness,
  koaHarness("koa 3", Koa3),
  koaHarness("koa 2", Koa2),
  nodeHarness,
  fetchHarness,
];
