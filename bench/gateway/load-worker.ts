// The load of the gateway benchmark: `inFlight` calls outstanding at once
// for `durationMs` (after `warmupMs`), over HTTP keep-alive (GET) or gRPC
// (ShouldRateLimit), each call from one of 10,000 client addresses; prints
// decisions per second and latency percentiles as JSON. With a `floor`, the
// load alternates between the target and the floor in slices of SLICE_MS,
// so both are measured under the same moment's machine: on a shared machine
// whose speed swings within seconds, only figures taken that close together
// make a fair ratio.
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
  /** A second target of the same mode, measured in alternating slices. */
  floor?: string;
}

export interface PairedResult {
  target: LoadResult;
  floor: LoadResult;
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
const SLICE_MS = 100;

type Call = (i: number) => Promise<boolean>;

function httpCall(target: string): Call {
  const agent = new Agent({ keepAlive: true, maxSockets: job.inFlight });
  const url = new URL(target);
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

function grpcCall(target: string): Call {
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
    target,
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

/** Tally is one target's calls, latencies and active time. */
class Tally {
  latencies = new Float64Array(1 << 16);
  count = 0;
  allowed = 0;
  errors = 0;
  ms = 0;

  add(ms: number, ok: boolean): void {
    if (this.count === this.latencies.length) {
      const bigger = new Float64Array(this.latencies.length * 2);
      bigger.set(this.latencies);
      this.latencies = bigger;
    }
    this.latencies[this.count++] = ms;
    if (ok) this.allowed++;
  }

  result(): LoadResult {
    const n = this.count;
    const sorted = this.latencies.subarray(0, n).sort();
    const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))] ?? Number.NaN;
    return {
      perSecond: this.ms > 0 ? (n / this.ms) * 1000 : Number.NaN,
      p50: at(0.5),
      p99: at(0.99),
      calls: n,
      errors: this.errors,
      allowed: n === 0 ? 0 : this.allowed / n,
    };
  }
}

const make = job.mode === "http" ? httpCall : grpcCall;
const sides = [
  { call: make(job.target), tally: new Tally() },
  ...(job.floor === undefined ? [] : [{ call: make(job.floor), tally: new Tally() }]),
];
let next = 0;

/** slice runs `inFlight` callers against one side until `until`, waiting for the last calls. */
async function slice(side: (typeof sides)[number], until: number, measure: boolean): Promise<void> {
  const started = performance.now();
  const caller = async () => {
    while (performance.now() < until) {
      const i = next++;
      const t = performance.now();
      try {
        const ok = await side.call(i);
        if (measure) side.tally.add(performance.now() - t, ok);
      } catch {
        if (measure) side.tally.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: job.inFlight }, caller));
  if (measure) side.tally.ms += performance.now() - started;
}

const sliceMs = sides.length === 1 ? job.durationMs : SLICE_MS;
for (const side of sides) await slice(side, performance.now() + job.warmupMs, false);
const end = performance.now() + job.durationMs;
for (let s = 0; performance.now() < end; s++) {
  const side = sides[s % sides.length] as (typeof sides)[number];
  await slice(side, performance.now() + sliceMs, true);
}
const [target, floor] = sides.map((x) => x.tally.result());
process.stdout.write(`${JSON.stringify(floor === undefined ? target : { target, floor })}\n`);
process.exit(0);
