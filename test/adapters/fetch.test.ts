import { contract } from "./contract.js";
import { fetchHarness } from "./harnesses/fetch.js";

contract(fetchHarness);
