/**
 * A deliberately naive token bucket, written from DESIGN.md's prose rather
 * than from the core: it steps through every refill instant one interval at
 * a time. Slow, obvious, and independent of src/core, so agreement means the
 * fast arithmetic is right.
 */
export interface RefPolicy {
  name: string;
  capacity: number;
  refillRate: number;
  interval: number;
}

export interface RefDecision {
  allowed: boolean;
  policy: string;
  remaining: number;
  resetAt: number;
  retryAfter: number;
}

interface Bucket {
  tokens: number;
  refilledAt: number;
}

export class ReferenceLimiter {
  readonly #buckets = new Map<string, Bucket[]>();

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
    // Walk refill instants until the bucket would hold `cost`.
    let tokens = b.tokens;
    let t = b.refilledAt;
    while (tokens < cost) {
      t += p.interval;
      tokens += p.refillRate;
    }
    return t - now;
  }

  decide(key: string, cost: number, now: number, spend = true): RefDecision {
    let buckets = this.#buckets.get(key);
    if (!buckets) {
      buckets = this.policies.map((p) => ({ tokens: p.capacity, refilledAt: now }));
      this.#buckets.set(key, buckets);
    }
    for (const [i, p] of this.policies.entries()) this.#advance(p, buckets[i] as Bucket, now);
    const allowed = buckets.every((b) => b.tokens >= cost);
    if (allowed && spend) for (const b of buckets) b.tokens -= cost;
    const rows = this.policies.map((p, i) => {
      const b = buckets[i] as Bucket;
      return {
        policy: p.name,
        remaining: b.tokens,
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
}
