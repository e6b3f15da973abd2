// The load of the gateway benchmark: `inFlight` calls outstanding at once
// for `durationMs` (after `warmupMs`), over HTTP keep-alive (GET) or gRPC
// (ShouldRateLimit), each call from one of 10,000 client addresses; prints
// decisions per second and latency percentiles as JSON.
import { Agent, request } from "node:http";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

export interface LoadJob {
  mode: "http" | "grpc";
  /** http: a URL; grpc: host:port. */
  target: string;
  inFlight: number;
  durationMs: number;
  warmupMs: number;
  /** Every call as the same client (a denied hot key) instead of 10,000. */
  oneClient?: boolean;
}

export interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  calls: number;
  errors: number;
  /** Share of calls answered 200 / OK. */
  allowed: number;
}

const job = JSON.parse(process.argv[2] as string) as LoadJob;
const IPS = Array.from(
  { length: 10_000 },
  (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
);

type Call = (i: number) => Promise<boolean>;

function httpCall(): Call {
  const agent = new Agent({ keepAlive: true, maxSockets: job.inFlight });
  const url = new URL(job.target);
  return (i) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          agent,
          headers: {
            "x-forwarded-for": job.oneClient ? "10.0.0.1" : (IPS[i % IPS.length] as string),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode === 200));
        },
      );
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
          v3: { RateLimitService: new (t: string, c: grpc.ChannelCredentials) => unknown };
        };
      };
    };
  };
  const client = new pkg.envoy.service.ratelimit.v3.RateLimitService(
    job.target,
    grpc.credentials.createInsecure(),
  ) as {
    ShouldRateLimit(
      req: unknown,
      cb: (e: Error | null, r?: { overall_code: string }) => void,
    ): void;
  };
  const requests = (job.oneClient ? ["10.0.0.1"] : IPS).map((ip) => ({
    domain: "bench",
    descriptors: [{ entries: [{ key: "remote_address", value: ip }] }],
  }));
  return (i) =>
    new Promise((resolve, reject) => {
      client.ShouldRateLimit(requests[i % requests.length], (error, reply) => {
        if (error) reject(error);
        else resolve(reply?.overall_code === "OK");
      });
    });
}

const call = job.mode === "http" ? httpCall() : grpcCall();
let latencies = new Float64Array(1 << 16);
let count = 0;
let allowed = 0;
let errors = 0;
let measuring = false;
let stop = false;
let next = 0;

async function caller(): Promise<void> {
  while (!stop) {
    const i = next++;
    const t = performance.now();
    let ok = false;
    try {
      ok = await call(i);
    } catch {
      if (measuring) errors++;
      continue;
    }
    if (!measuring) continue;
    if (count === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[count++] = performance.now() - t;
    if (ok) allowed++;
  }
}

const callers = Array.from({ length: job.inFlight }, caller);
await new Promise((r) => setTimeout(r, job.warmupMs));
measuring = true;
const started = performance.now();
await new Promise((r) => setTimeout(r, job.durationMs));
measuring = false;
const elapsed = performance.now() - started;
stop = true;
await Promise.all(callers);
const sorted = latencies.subarray(0, count).sort();
const at = (q: number) => sorted[Math.min(count - 1, Math.floor(q * count))] ?? Number.NaN;
const result: LoadResult = {
  perSecond: (count / elapsed) * 1000,
  p50: at(0.5),
  p99: at(0.99),
  calls: count,
  errors,
  allowed: count === 0 ? 0 : allowed / count,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
