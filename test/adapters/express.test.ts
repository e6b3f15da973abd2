import express5 from "express";
import express4 from "express4";
import { contract } from "./contract.js";
import { expressHarness } from "./harnesses/express.js";

contract(expressHarness("express 5", express5));
contract(expressHarness("express 4", express4));
