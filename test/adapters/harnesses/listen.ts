// Serving a harness's app on 127.0.0.1 at a free port, and closing it
// without waiting for the test client's keep-alive connections.
import { once } from "node:events";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Route, Server } from "../contract.js";

/** served waits for `server` to listen and returns its URL and a close that drops idle connections. */
export async function served(server: HttpServer): Promise<Server> {
  if (!server.listening) await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** findRoute picks the route for a method and path (the query string ignored). */
export function findRoute(
  routes: readonly Route[],
  method: string | undefined,
  url: string | undefined,
): Route | undefined {
  const path = (url ?? "/").split("?")[0];
  return routes.find(
    (r) => r.path === path && (r.method === method || (r.method === "GET" && method === "HEAD")),
  );
}
