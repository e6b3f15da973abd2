import { contract } from "./contract.js";
import { nodeHarness } from "./harnesses/node.js";

contract(nodeHarness);
