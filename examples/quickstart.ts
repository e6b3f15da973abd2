// A runnable taste of floodgate until the demo service lands: 15 requests
// from one client at one instant, against 10 tokens of burst and 2 back per second.
import { RateLimiter } from "../src/index.js";

const limiter = new RateLimiter({
  policy: { name: "burst", capacity: 10, refillRate: 2, interval: 1000 },
});
for (let i = 1; i <= 15; i++) {
  const d = await limiter.consume("client");
  console.log(
    `#${i} ${d.allowed ? "allowed" : "limited"} remaining=${d.remaining} retryAfter=${d.retryAfter}ms`,
  );
}
