// One client process of test/chaos/gateway.chaos.ts: CALLERS calls in flight
// to a floodgate service, over HTTP (GET /check) or gRPC (ShouldRateLimit),
// from "go" on stdin for DURATION_MS; prints its counts as JSON.

import { Agent, request } from "node:http";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const MODE = process.env.MODE as "http" | "grpc";
const TARGET = process.env.TARGET as string;
const CALLERS = Number(process.env.CALLERS ?? 32);
const DURATION_MS = Number(process.env.DURATION_MS ?? 5000);
const DEADLINE_MS = Number(process.env.DEADLINE_MS ?? 5000);
const counts = { allowed: 0, denied: 0, errors: 0, calls: 0, maxMs: 0, firstError: "" };

type Call = () => Promise<boolean>;

function httpCall(): Call {
  const agent = new Agent({ keepAlive: true, maxSockets: CALLERS });
  const url = new URL(TARGET);
  return () =>
    new Promise<boolean>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          agent,
          timeout: DEADLINE_MS,
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200) resolve(true);
            else if (res.statusCode === 429) resolve(false);
            else reject(new Error(`status ${res.statusCode}`));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("deadline")));
      req.on("error", reject);
      req.end();
    });
}

function grpcCall(): Call {
  const root = join(import.meta.dirname, "..", "..", "proto");
  const def = loadSync("envoy/service/ratelimit/v3/rls.proto", {
    includeDirs: [root],
    keepCase: true,
    enums: String,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: {
      service: {
        ratelimit: {
          v3: { RateLimitService: new (t: string, c: grpc.ChannelCredentials) => grpc.Client };
        };
      };
    };
  };
  const client = new pkg.envoy.service.ratelimit.v3.RateLimitService(
    TARGET,
    grpc.credentials.createInsecure(),
  ) as unknown as {
    ShouldRateLimit(
      req: unknown,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (e: Error | null, r?: { overall_code: string }) => void,
    ): void;
  };
  const req = {
    domain: "edge",
    descriptors: [{ entries: [{ key: "generic_key", value: "shared" }] }],
  };
  return () =>
    new Promise<boolean>((resolve, reject) => {
      client.ShouldRateLimit(
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + DEADLINE_MS },
        (error, reply) => {
          if (error) reject(error);
          else if (reply?.overall_code === "OK") resolve(true);
          else if (reply?.overall_code === "OVER_LIMIT") resolve(false);
          else reject(new Error(`code ${reply?.overall_code}`));
        },
      );
    });
}

const call = MODE === "http" ? httpCall() : grpcCall();
process.stdout.write("ready\n");
process.stdin.once("data", async () => {
  const until = performance.now() + DURATION_MS;
  const caller = async () => {
    while (performance.now() < until) {
      const t = performance.now();
      counts.calls++;
      try {
        if (await call()) counts.allowed++;
        else counts.denied++;
      } catch (error) {
        counts.errors++;
        counts.firstError ||= (error as Error).message;
      }
      counts.maxMs = Math.max(counts.maxMs, performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, caller));
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  process.exit(0);
});
