/**
 * What the suite's HTTP servers (bench/http/server.ts) and the in-process
 * floor (bench/http/floor.ts) share: the hello-world body, the fixed headers
 * of the header floor, and how floodgate's adapters are loaded from dist/.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { DIST_ENV } from "../lib/floodgate.js";

export const HOUR = 3_600_000;
export const BODY = { message: "Hello, world!" };
/** floodgate's default headers on the allowed path of this bench's policy, as one response sent them. */
export const FIXED_HEADERS: readonly (readonly [string, string])[] = [
  ["X-RateLimit-Limit", "1000000000"],
  ["X-RateLimit-Remaining", "999999999"],
  ["X-RateLimit-Reset", "1795787700"],
  ["RateLimit-Policy", '"default";q=1000000000;w=3600000000000'],
  ["RateLimit", '"default";r=999999999;t=3600'],
];

/** floodgateModule imports a floodgate subpath from the run's copy of dist/. */
export async function floodgateModule<T>(name: string): Promise<T> {
  const dir = process.env[DIST_ENV];
  const url = dir
    ? pathToFileURL(join(dir, `${name}.js`))
    : new URL(`../../dist/${name}.js`, import.meta.url);
  return (await import(url.href)) as T;
}
