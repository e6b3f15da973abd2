/**
 * A deliberately naive token bucket, written from DESIGN.md's prose rather
 * than from the core: it steps through every refill instant one interval at
 * a time. Slow, obvious, and independent of src/core, so agreement means the
 * fast arithmetic is right. It covers debt ("Debt, refunds and
 * reservations") and blocks ("Blocks") the same way.
 */
export interface RefPolicy {
  name: string;
  capacity: number;
  refillRate: number;
  interval: number;
  /** Default capacity. */
  maxDebt?: number;
  /** Milliseconds; absent or 0 for no block. */
  blockFor?: number;
}

export interface RefDecision {
  allowed: boolean;
  policy: string;
  remaining: number;
  resetAt: number;
  retryAfter: number;
  /** Present (true) only when a block denied the request. */
  blocked?: true;
}

interface Bucket {
  tokens: number;
  refilledAt: number;
}

interface Client {
  buckets: Bucket[];
  /** Epoch ms the key's block ends; -Infinity when never blocked. */
  blockedUntil: number;
}

export class ReferenceLimiter {
  readonly #clients = new Map<string, Client>();

  constructor(readonly policies: RefPolicy[]) {}

  #advance(p: RefPolicy, b: Bucket, now: number): void {
    // A next refill more than one interval away can only come from a clock that stepped back.
    if (b.refilledAt - now > p.interval) b.refilledAt = now;
    while (b.refilledAt + p.interval <= now && b.tokens < p.capacity) {
      b.tokens = Math.min(p.capacity, b.tokens + p.refillRate);
      b.refilledAt += p.interval;
    }
    if (b.tokens === p.capacity) b.refilledAt = now;
  }

  #wait(p: RefPolicy, b: Bucket, cost: number, now: number): number {
    // Walk refill instants until the bucket would hold `cost` (debt included).
    let tokens = b.tokens;
    let t = b.refilledAt;
    while (tokens < cost) {
      t += p.interval;
      tokens += p.refillRate;
    }
    return t - now;
  }

  #client(key: string, now: number): Client {
    let c = this.#clients.get(key);
    if (!c) {
      c = {
        buckets: this.policies.map((p) => ({ tokens: p.capacity, refilledAt: now })),
        blockedUntil: Number.NEGATIVE_INFINITY,
      };
      this.#clients.set(key, c);
    }
    for (const [i, p] of this.policies.entries()) this.#advance(p, c.buckets[i] as Bucket, now);
    return c;
  }

  decide(key: string, cost: number, now: number, spend = true): RefDecision {
    const c = this.#client(key, now);
    const buckets = c.buckets;
    if (c.blockedUntil > now) return this.#blocked(c, cost, now);
    const allowed = buckets.every((b) => b.tokens >= cost);
    if (allowed && spend) for (const b of buckets) b.tokens -= cost;
    if (!allowed && spend) {
      // A policy with blockFor that denies blocks the key from now.
      for (const [i, p] of this.policies.entries()) {
        const b = buckets[i] as Bucket;
        if (p.blockFor && b.tokens < cost) {
          c.blockedUntil = Math.max(c.blockedUntil, now + p.blockFor);
        }
      }
      if (c.blockedUntil > now) return this.#blocked(c, cost, now);
    }
    const rows = this.policies.map((p, i) => {
      const b = buckets[i] as Bucket;
      return {
        policy: p.name,
        remaining: Math.max(0, b.tokens),
        resetAt: b.refilledAt + p.interval,
        retryAfter: allowed ? 0 : b.tokens >= cost ? 0 : this.#wait(p, b, cost, now),
      };
    });
    let pick = rows[0] as (typeof rows)[number];
    for (const r of rows) {
      if (allowed ? r.remaining < pick.remaining : r.retryAfter > pick.retryAfter) pick = r;
    }
    return { allowed, ...pick };
  }

  /** A request a block denies waits for the block's end, or its bucket's, whichever is later. */
  #blocked(c: Client, cost: number, now: number): RefDecision {
    let pick = -1;
    let longest = -1;
    const left = c.blockedUntil - now;
    for (const [i, p] of this.policies.entries()) {
      const b = c.buckets[i] as Bucket;
      const wait = b.tokens >= cost ? 0 : this.#wait(p, b, cost, now);
      if (wait > longest) {
        longest = wait;
        pick = i;
      }
    }
    const p = this.policies[pick] as RefPolicy;
    const b = c.buckets[pick] as Bucket;
    return {
      allowed: false,
      policy: p.name,
      remaining: Math.max(0, b.tokens),
      resetAt: b.refilledAt + p.interval,
      retryAfter: Math.max(left, longest),
      blocked: true,
    };
  }

  /**
   * settle charges `extra` more after the fact (negative gives it back);
   * returns the most tokens a policy dropped beyond its maxDebt.
   */
  settle(key: string, extra: number, now: number): number {
    const c = this.#client(key, now);
    let dropped = 0;
    for (const [i, p] of this.policies.entries()) {
      const b = c.buckets[i] as Bucket;
      const floor = -(p.maxDebt ?? p.capacity);
      b.tokens -= extra;
      if (b.tokens < floor) {
        dropped = Math.max(dropped, floor - b.tokens);
        b.tokens = floor;
      }
      if (b.tokens >= p.capacity) {
        b.tokens = p.capacity;
        b.refilledAt = now;
      }
    }
    return dropped;
  }

  /** block keeps the key out until now + ms, or later if a block already ends later. */
  block(key: string, ms: number, now: number): void {
    const c = this.#client(key, now);
    c.blockedUntil = Math.max(c.blockedUntil, now + ms);
  }

  reset(key: string): void {
    this.#clients.delete(key);
  }
}
