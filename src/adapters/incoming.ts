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

/** readHeader is header `name` (lower case); Node joins repeated fields with ", " except Set-Cookie. */
export function readHeader(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return value === undefined || typeof value === "string" ? value : value.join(", ");
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
