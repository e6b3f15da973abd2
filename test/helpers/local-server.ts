/**
 * A node:http (or node:http2) server on a free loopback port for the adapter
 * tests, closed by the suite's afterEach through its list of closers.
 */
import { once } from "node:events";
import type { Server } from "node:http";
import type { Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";

/** Closer is one clean-up step a suite's afterEach runs (and awaits). */
export type Closer = () => Promise<void> | void;

/**
 * listenLocal starts `server` on 127.0.0.1, on a free port, and pushes onto
 * `closers` a closer that drops its open connections and waits until it has
 * closed. It resolves the port and the base URL (no trailing slash).
 */
export async function listenLocal(
  server: Server | Http2Server,
  closers: Closer[],
): Promise<{ port: number; url: string }> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => {
    if ("closeAllConnections" in server) server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { port, url: `http://127.0.0.1:${port}` };
}
