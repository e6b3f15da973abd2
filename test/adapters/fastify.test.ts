import { contract } from "./contract.js";
import { fastifyHarness } from "./harnesses/fastify.js";

contract(fastifyHarness);
