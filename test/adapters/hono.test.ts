import { contract } from "./contract.js";
import { honoHarness } from "./harnesses/hono.js";

contract(honoHarness);
