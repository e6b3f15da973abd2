// Keys other than the client IP, on Express: an API key header for /api,
// and the user an auth middleware found for /me (the limit runs after it).
// Run: npx tsx examples/express/keys.ts, then
//   curl -i -H "x-api-key: k1" http://127.0.0.1:8000/api
//   curl -i -H "authorization: Bearer alice" http://127.0.0.1:8000/me
import express, { type NextFunction, type Response } from "express";
import { keys, type RateLimitedRequest, rateLimit } from "floodgate/express";
import { wellFormed } from "../well-formed.js";

type Authed = RateLimitedRequest & { user?: { id: string } };

/** auth stands in for your real authentication: it names the user or answers 401. */
function auth(req: Authed, res: Response, next: NextFunction): void {
  const token = req.headers.authorization?.replace(/^Bearer /, "");
  if (!token) {
    res.status(401).json({ detail: "Log in first." });
    return;
  }
  req.user = { id: token };
  next();
}

const app = express();
app.use((req, res, next) => {
  if (wellFormed(req.url, req.headers.host)) next();
  else res.status(400).json({ detail: "Bad request" });
});
// Check API keys before limiting by them, or a client can invent new ones.
app.use(
  "/api",
  rateLimit({
    policy: { name: "api", capacity: 100, refillRate: 10, interval: 1000 },
    key: keys.header("x-api-key"),
  }),
);
app.get("/api", (req: RateLimitedRequest, res) => {
  res.json({ remaining: req.rateLimit?.remaining });
});
app.get(
  "/me",
  auth,
  rateLimit({
    policy: { name: "user", capacity: 5, refillRate: 1, interval: 1000 },
    key: (req: Authed) => `user:${req.user?.id}`,
  }),
  (req: Authed, res) => {
    res.json({ user: req.user?.id, remaining: req.rateLimit?.remaining });
  },
);

const port = Number(process.env.PORT ?? 8000);
app.listen(port, "127.0.0.1", () => console.log(`Express on http://127.0.0.1:${port}`));
