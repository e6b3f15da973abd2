// The older majors the adapters are tested against, installed under npm
// aliases; they share the current major's types.
declare module "express4" {
  import express = require("express");
  export = express;
}
declare module "koa2" {
  import Koa = require("koa");
  export = Koa;
}
