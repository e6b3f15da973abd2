// The gRPC side of `floodgate serve`: envoy.service.ratelimit.v3's
// ShouldRateLimit and grpc.health.v1's Check, from the vendored upstream
// protos. @grpc/grpc-js and @grpc/proto-loader are optional dependencies,
// imported here only, and this module is imported only by `serve`.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Engine, Verdict } from "./engine.js";
import type { Tracker } from "./http.js";
import { grpcResponse, RequestError, readCall } from "./protocol.js";

/** The proto files, relative to the vendored `proto/` folder. */
export const PROTO_FILES = ["envoy/service/ratelimit/v3/rls.proto", "grpc/health/v1/health.proto"];

/** protoRoot finds the package's `proto/` folder from this module (src/gateway or dist). */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, PROTO_FILES[0] as string))) return candidate;
    dir = dirname(dir);
  }
  throw new Error("the vendored proto/ folder is missing from the floodgate package");
}

/** GrpcServer is a started gRPC server. */
export interface GrpcServer {
  readonly port: number;
  /** Stops taking calls, lets those in flight finish (at most `ms`), then ends. */
  close(ms: number): Promise<void>;
}

/** A gRPC status code (grpc-js's `status`). */
const INVALID_ARGUMENT = 3;
const INTERNAL = 13;
const UNAVAILABLE = 14;

type Callback = (error: { code: number; details: string } | null, value?: unknown) => void;

/** loadGrpc imports the optional gRPC packages, or explains how to install them. */
async function loadGrpc() {
  try {
    const grpc = await import("@grpc/grpc-js");
    const loader = await import("@grpc/proto-loader");
    return { grpc, loader };
  } catch {
    throw new Error(
      "gRPC needs the optional packages @grpc/grpc-js and @grpc/proto-loader: run npm install @grpc/grpc-js @grpc/proto-loader, or pass --grpc-port off",
    );
  }
}

/** startGrpc serves the Envoy protocol and health on `host:port` (0 picks a free port). */
export async function startGrpc(
  engine: Engine,
  tracker: Tracker,
  host: string,
  port: number,
  log: (line: string) => void,
): Promise<GrpcServer> {
  const { grpc, loader } = await loadGrpc();
  // grpc-js logs through one logger per process: its lines go through serve's
  // log, one line each, and the failed bind that serve reports in its own
  // words ("port ... is in use") is not said twice.
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const line = args.map(String).join(" ");
      if (!line.startsWith("No address added")) log(`grpc-js: ${line}`);
    },
  });
  const root = protoRoot();
  const definition = loader.loadSync(PROTO_FILES, {
    includeDirs: [root],
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { ratelimit: { v3: { RateLimitService: { service: object } } } } };
    grpc: { health: { v1: { Health: { service: object } } } };
  };
  // Room for Envoy's largest default request head (60 KiB) in many
  // descriptors: a message refused for its size is an error, and Envoy's
  // default failure_mode_deny: false lets an errored request through.
  const server = new grpc.Server({ "grpc.max_receive_message_length": 1024 * 1024 });
  server.addService(pkg.envoy.service.ratelimit.v3.RateLimitService.service as never, {
    ShouldRateLimit(call: { request: unknown }, callback: Callback) {
      if (tracker.draining) {
        callback({ code: UNAVAILABLE, details: "floodgate is shutting down" });
        return;
      }
      tracker.enter();
      const done = (error: { code: number; details: string } | null, value?: unknown) => {
        tracker.leave();
        callback(error, value);
      };
      try {
        const c = readCall(call.request);
        const v = engine.decide(c.domain, c.descriptors, c.cost);
        const answer = (verdict: Verdict) => done(null, grpcResponse(verdict));
        if (v instanceof Promise) {
          v.then(answer, (error: unknown) => {
            log(`gRPC call failed: ${(error as Error).message}`);
            done({ code: INTERNAL, details: "internal error" });
          });
        } else answer(v);
      } catch (error) {
        if (error instanceof RequestError) done({ code: INVALID_ARGUMENT, details: error.message });
        else {
          log(`gRPC call failed: ${(error as Error).message}`);
          done({ code: INTERNAL, details: "internal error" });
        }
      }
    },
  });
  server.addService(pkg.grpc.health.v1.Health.service as never, {
    Check(_call: unknown, callback: Callback) {
      callback(null, { status: tracker.draining ? "NOT_SERVING" : "SERVING" });
    },
    Watch(call: { write(v: unknown): void; end(): void }) {
      call.write({ status: tracker.draining ? "NOT_SERVING" : "SERVING" });
      call.end();
    },
    List(_call: unknown, callback: Callback) {
      const status = tracker.draining ? "NOT_SERVING" : "SERVING";
      callback(null, {
        statuses: { "": { status }, "envoy.service.ratelimit.v3.RateLimitService": { status } },
      });
    },
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${host.includes(":") ? `[${host}]` : host}:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, p) => {
        if (error) reject(error);
        else resolve(p);
      },
    );
  });
  return {
    port: bound,
    close: (ms) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, ms);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
