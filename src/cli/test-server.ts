// A rate-limited HTTP server for the probe's tests: floodgate's own
// RateLimiter decides, and the headers are written here, as DESIGN.md
// describes them, so the probe's tests do not depend on the HTTP layer.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Decision, type PolicyInput, RateLimiter } from "../index.js";

/** TestServerOptions chooses the policy, the clock and which headers the server sends. */
export interface TestServerOptions {
  readonly policies: readonly PolicyInput[];
  /** Epoch ms; default Date.now. */
  readonly clock?: () => number;
  readonly headers?: "both" | "legacy" | "ietf" | "none";
}

/** TestServer is a listening server on 127.0.0.1 and how to stop it. */
export interface TestServer {
  readonly url: string;
  /** Requests answered so far. */
  readonly hits: () => number;
  /** Every request's headers, in order. */
  readonly requests: IncomingMessage["headers"][];
  readonly close: () => Promise<void>;
}

/** startTestServer listens on a free loopback port. Every request is one client. */
export async function startTestServer(options: TestServerOptions): Promise<TestServer> {
  const clock = options.clock ?? Date.now;
  const mode = options.headers ?? "both";
  const limiter = new RateLimiter({ policies: options.policies, clock });
  const requests: IncomingMessage["headers"][] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    limiter.consume("client").then(
      (d) => answer(res, d, clock(), mode),
      () => {
        res.statusCode = 500;
        res.end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/data`,
    hits: () => requests.length,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(
  res: ServerResponse,
  d: Decision,
  now: number,
  mode: NonNullable<TestServerOptions["headers"]>,
): void {
  if (mode === "both" || mode === "legacy") {
    res.setHeader("X-RateLimit-Limit", d.limit);
    res.setHeader("X-RateLimit-Remaining", d.remaining);
    res.setHeader("X-RateLimit-Reset", Math.ceil(d.resetAt / 1000));
  }
  const t = (resetAt: number) => Math.max(0, Math.ceil((resetAt - now) / 1000));
  if (mode === "both" || mode === "ietf") {
    res.setHeader(
      "RateLimit-Policy",
      d.policies
        .map((p) => `"${p.name}";q=${p.limit};w=${Math.max(1, Math.ceil(p.policy.window / 1000))}`)
        .join(", "),
    );
    res.setHeader(
      "RateLimit",
      d.policies.map((p) => `"${p.name}";r=${p.remaining};t=${t(p.resetAt)}`).join(", "),
    );
  }
  res.setHeader("Content-Type", "application/json");
  if (d.allowed) {
    res.end(JSON.stringify({ data: "Some important information" }));
    return;
  }
  if (mode !== "none") {
    const denying = d.policies.find((p) => p.name === d.policy);
    const seconds = Math.max(1, Math.ceil(d.retryAfter / 1000), denying ? t(denying.resetAt) : 0);
    res.setHeader("Retry-After", seconds);
  }
  res.statusCode = 429;
  res.end(JSON.stringify({ detail: "Too many requests. Try again later." }));
}
