/**
 * The adapter servers of the client-key suites: each harness's app on a
 * RecordingStore, so a test sees which key every request was charged to.
 */
import { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, vi } from "vitest";
import { MemoryStore } from "../../src/index.js";
import { appSpec, type Harness } from "../adapters/contract.js";
import { closeAgents } from "./http-client.js";
import type { Closer } from "./local-server.js";

/** A bucket big enough that nothing is denied: every request must spend from the one bucket its key names. */
export const roomy = { name: "roomy", capacity: 1_000_000_000, refillRate: 1, interval: 60_000 };

/** RecordingStore is a MemoryStore that remembers every key it was asked about, in order. */
export class RecordingStore extends MemoryStore {
  readonly keys: string[] = [];
  override consume(...args: Parameters<MemoryStore["consume"]>) {
    this.keys.push(args[0]);
    return super.consume(...args);
  }
}

/**
 * keyServers is called once at a suite's top level. It registers the hooks
 * that run `closers` (and close the keep-alive agents) after each test, and
 * returns them with `serve`, which starts `harness` keyed by `key` on a new
 * RecordingStore and resolves its port, URL, store and Node server.
 */
export function keyServers() {
  const listen = vi.spyOn(Server.prototype, "listen");
  const closers: Closer[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    closeAgents();
  });
  afterAll(() => listen.mockRestore());

  async function serve(
    harness: Harness,
    key: unknown,
    policy: object = roomy,
  ): Promise<{ port: number; url: string; store: RecordingStore; server: Server }> {
    const store = new RecordingStore();
    const from = listen.mock.contexts.length;
    const app = await harness.start(appSpec({ policy, store, key }, store));
    closers.push(() => app.close());
    const server = listen.mock.contexts.slice(from).find((s) => s instanceof Server) as Server;
    return { port: (server.address() as AddressInfo).port, url: app.url, store, server };
  }
  return { serve, closers };
}
