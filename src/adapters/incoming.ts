// The RequestReader of every adapter whose framework hands over Node's own
// IncomingMessage (node:http, Express, Koa): the socket's peer address and
// the raw headers as the client sent them, never a framework's idea of the
// client (Express's req.ip follows its own `trust proxy`; floodgate's
// keys.ip has its own trustProxy, so both cannot disagree silently).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestReader } from "../http/index.js";

/** readAddress is the socket's peer address; undefined once the socket is gone. */
export function readAddress(request: IncomingMessage): string | undefined {
  return request.socket?.remoteAddress;
}

/**
 * Node's limit on the header lines it keeps, counted as names plus values,
 * when the server sets none (`maxHeadersCount` null): 1000 lines.
 */
const NODE_HEADER_ITEMS = 2000;

/**
 * linesDropped tells whether Node may have dropped header lines of
 * `request`: it keeps the first `server.maxHeadersCount` lines (1000 by
 * default) in `headers`, and not many more in `rawHeaders`, and drops the
 * rest without a word. An HTTP/1 request with that many lines is taken as
 * cut; an HTTP/2 one never is.
 */
export function linesDropped(request: IncomingMessage): boolean {
  // A stand-in request without rawHeaders (a test's fake) has dropped nothing.
  const lines = (request.rawHeaders as string[] | undefined)?.length ?? 0;
  if (lines < 2) return false;
  const server = (request.socket as { server?: { maxHeadersCount?: unknown } } | null)?.server;
  const count = server?.maxHeadersCount;
  // As Node computes its parser's limit: a number of lines, doubled; 0 (or less) is no limit.
  const limit = typeof count === "number" ? count << 1 : NODE_HEADER_ITEMS;
  // maxHeadersCount is HTTP/1's: an HTTP/2 request (http2's compat API, as
  // Fastify's and @hono/node-server's http2 use it, or an allowHTTP1 server's
  // h2 clients) drops no header lines, a list past maxHeaderListPairs resets
  // the stream, and its rawHeaders count the pseudo-headers too.
  return limit > 0 && lines >= limit && request.httpVersionMajor !== 2;
}

/**
 * proxyLinesDropped tells whether `name` is a proxy header (X-Forwarded-For,
 * Forwarded) that cannot be believed because Node dropped header lines of
 * `request`: a proxy appends its own line after the client's, so the lines
 * lost are the proxies' and the ones kept may all be the client's. False for
 * every other header (cheap: two comparisons) and when `request` is undefined.
 */
export function proxyLinesDropped(name: string, request: IncomingMessage | undefined): boolean {
  return (
    (name === "x-forwarded-for" || name === "forwarded") &&
    request !== undefined &&
    linesDropped(request)
  );
}

/**
 * readHeader is header `name` (lower case); Node joins repeated fields with
 * ", " except Set-Cookie. A proxy header (X-Forwarded-For, Forwarded) reads
 * as absent when Node dropped header lines (see `linesDropped`): the proxy's
 * own line, appended last, may be among them, and what is left is whatever
 * the client wrote. keys.ip then stops at the socket, the last hop it can
 * vouch for.
 */
export function readHeader(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  if (value === undefined || proxyLinesDropped(name, request)) return undefined;
  return typeof value === "string" ? value : value.join(", ");
}

/**
 * whenSent calls `sent` (the `refund` option's hook) with the status once
 * Node has sent `res` ('finish'); a response cut off before it was sent
 * never finishes, and its request stays charged.
 */
export function whenSent(res: ServerResponse, sent: ((status: number) => void) | undefined): void {
  if (sent !== undefined) res.once("finish", () => sent(res.statusCode));
}

/** incomingReader reads a Node IncomingMessage. */
export const incomingReader: RequestReader<IncomingMessage> = {
  address: readAddress,
  header: readHeader,
  method: (request) => request.method,
};
