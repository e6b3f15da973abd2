// The demo's settings, all from environment variables. A bad value is a
// DemoConfigError whose message is one line naming the variable, the value
// and what it should be: the demo prints it instead of a stack trace.

/** DemoConfig is the demo's validated settings. */
export interface DemoConfig {
  /** TCP port, 0 to 65535 (0: any free port). Env `PORT`, default 8000. */
  readonly port: number;
  /** Interface to listen on. Env `HOST`, default 127.0.0.1 (this machine only). */
  readonly host: string;
  /** Burst size in tokens. Env `RATE_LIMIT_CAPACITY`, default 10. */
  readonly capacity: number;
  /** Tokens added each interval. Env `RATE_LIMIT_REFILL_RATE`, default 2. */
  readonly refillRate: number;
  /** Milliseconds between refills. Env `RATE_LIMIT_INTERVAL_MS`, default 1000. */
  readonly interval: number;
  /** Env `REDIS_URL`: when set, buckets live in Redis, shared by every instance. */
  readonly redisUrl?: string;
}

/** DemoConfigError is an invalid setting; its message is meant for the terminal as is. */
export class DemoConfigError extends Error {
  override name = "DemoConfigError" as const;
}

type Env = Readonly<Record<string, string | undefined>>;

const MAX_TOKENS = 1e9;
const MAX_INTERVAL = 365 * 86_400_000;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  // An empty variable (PORT=) counts as unset, as shells and .env files write it.
  if (raw === undefined || raw.trim() === "") return fallback;
  const text = raw.trim();
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new DemoConfigError(
      `${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** hasHost tells whether `url` parses as a URL with a host and, if it names one, a port from 1 to 65535. */
function hasHost(url: string): boolean {
  try {
    const u = new URL(url);
    return u.hostname !== "" && u.port !== "0";
  } catch {
    return false;
  }
}

/** readConfig reads the demo's settings from `env`; it throws DemoConfigError on a bad value. */
export function readConfig(env: Env): DemoConfig {
  const host = (env.HOST ?? "").trim();
  const redisUrl = (env.REDIS_URL ?? "").trim();
  // The password, if any, stays out of the terminal.
  const shown = redisUrl.replace(/\/\/[^@/]*@/, "//***@");
  if (redisUrl !== "" && !/^(rediss?|valkeys?):\/\//.test(redisUrl)) {
    throw new DemoConfigError(
      `REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(shown)}; e.g. REDIS_URL=redis://127.0.0.1:6379`,
    );
  }
  if (redisUrl !== "" && !hasHost(redisUrl)) {
    throw new DemoConfigError(
      `REDIS_URL must be a URL with a host and a port from 1 to 65535, got ${JSON.stringify(shown)}; e.g. REDIS_URL=redis://127.0.0.1:6379`,
    );
  }
  return {
    ...(redisUrl === "" ? {} : { redisUrl }),
    port: integer(env, "PORT", 8000, 0, 65_535),
    host: host === "" ? "127.0.0.1" : host,
    capacity: integer(env, "RATE_LIMIT_CAPACITY", 10, 1, MAX_TOKENS),
    refillRate: integer(env, "RATE_LIMIT_REFILL_RATE", 2, 1, MAX_TOKENS),
    interval: integer(env, "RATE_LIMIT_INTERVAL_MS", 1000, 1, MAX_INTERVAL),
  };
}
