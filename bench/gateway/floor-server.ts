// The floors of the gateway benchmark, each in its own process: a bare
// node:http server answering 200, and a bare grpc-js unary service answering
// the Envoy method with a constant reply (the same messages, no decision).
// Prints "ready <port>" once listening.
import { createServer } from "node:http";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const mode = process.argv[2];
if (mode === "http") {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-length": "0" });
    res.end();
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    process.stdout.write(`ready ${typeof a === "object" && a ? a.port : 0}\n`);
  });
} else {
  const root = join(import.meta.dirname, "..", "..", "proto");
  const def = loadSync("envoy/service/ratelimit/v3/rls.proto", {
    includeDirs: [root],
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: {
      service: { ratelimit: { v3: { RateLimitService: { service: grpc.ServiceDefinition } } } };
    };
  };
  const server = new grpc.Server();
  const reply = { overall_code: "OK" };
  server.addService(pkg.envoy.service.ratelimit.v3.RateLimitService.service, {
    ShouldRateLimit(_call: unknown, callback: (e: null, r: unknown) => void) {
      callback(null, reply);
    },
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    process.stdout.write(`ready ${port}\n`);
  });
}
