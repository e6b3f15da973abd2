// A byte budget: each client may download so many bytes a day. The size of a
// response is known only once its body has been sent, so each request
// reserves a small estimate and settles the bytes really written after the
// body (or after the client went away, for the bytes sent until then).
// A real budget is written as it is, e.g. capacity 10_000_000_000 (10 GB);
// this demo uses 1 MB so that the fourth download is refused.
// Run: npx tsx examples/recipes/byte-budget.ts
import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { RateLimiter } from "floodgate";

const DAILY_BYTES = 1_000_000;
const bytes = new RateLimiter({
  policy: {
    name: "bytes",
    capacity: DAILY_BYTES,
    refillRate: DAILY_BYTES,
    interval: "1d",
    maxDebt: DAILY_BYTES,
  },
});

/** The estimate each request reserves before its size is known: one chunk. */
const ESTIMATE = 64 * 1024;

/** sendFile streams `size` bytes in chunks, as a file or a generated export would be. */
function sendFile(res: ServerResponse, size: number): number {
  let sent = 0;
  const chunk = Buffer.alloc(16 * 1024, 120);
  while (sent < size) {
    const n = Math.min(chunk.length, size - sent);
    res.write(n === chunk.length ? chunk : chunk.subarray(0, n));
    sent += n;
  }
  res.end();
  return sent;
}

const server = createServer(async (req, res) => {
  const client = req.socket.remoteAddress ?? "unknown";
  const reservation = await bytes.reserve(client, { cost: ESTIMATE });
  const decision = reservation.decision;
  if (!decision.allowed) {
    res.writeHead(429, { "Retry-After": String(Math.ceil(decision.retryAfter / 1000)) });
    res.end("daily byte budget spent\n");
    return;
  }
  let written = 0;
  // Settled once: after the body ('finish'), or when the client went away ('close').
  res.on("close", () => {
    reservation.settle(written).then((s) => {
      console.log(
        `  ${client}: ${written} bytes sent, settled ${s.extra >= 0 ? "+" : ""}${s.extra}`,
      );
    });
  });
  const size = Number(new URL(req.url ?? "/", "http://x").searchParams.get("size") ?? 0);
  res.writeHead(200, { "Content-Type": "application/octet-stream" });
  written = sendFile(res, size);
});

server.listen(0, "127.0.0.1");
await once(server, "listening");
const { port } = server.address() as AddressInfo;
/** settledOnce resolves at the next settle, so the figures printed include it. */
const settledOnce = () =>
  new Promise<void>((resolve) => {
    const off = bytes.events.on("settle", () => {
      off();
      resolve();
    });
  });
// The fourth fits the estimate and takes the budget into debt; the fifth is refused.
for (const size of [300_000, 10_000, 600_000, 200_000, 1_000]) {
  const settled = settledOnce();
  const response = await fetch(`http://127.0.0.1:${port}/export?size=${size}`);
  const body = await response.arrayBuffer();
  if (response.ok) await settled;
  const left = (await bytes.peek("127.0.0.1")).remaining;
  console.log(`${response.status} asked ${size} bytes, got ${body.byteLength}; ${left} bytes left`);
  if (!response.ok) console.log(`  Retry-After: ${response.headers.get("retry-after")}`);
}
server.close();
