import Koa3 from "koa";
import Koa2 from "koa2";
import { contract } from "./contract.js";
import { koaHarness } from "./harnesses/koa.js";

contract(koaHarness("koa 3", Koa3));
contract(koaHarness("koa 2", Koa2));
