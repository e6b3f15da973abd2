import type { BucketState } from "../core/bucket.js";
import { refill, untilFull } from "../core/bucket.js";
import { charge } from "../core/decision.js";
import { ConfigError } from "../core/errors.js";
import type { Policy } from "../core/policy.js";
import type { Clock, Store } from "./store.js";

/** EvictionKind says why a bucket left a full MemoryStore. */
export type EvictionKind = "full" | "active" | "throttled";

export interface MemoryStoreOptions {
  /**
   * Most buckets kept per policy. When reached, buckets that are full again
   * are dropped first (invisible to clients), then those closest to full,
   * and clients being throttled only when nothing else is left. Default 2,000,000.
   */
  maxKeys?: number;
  /** Returns epoch ms; default `Date.now`. Pass a fake clock to test limits without sleeping. */
  clock?: Clock;
  /** Hears each bucket evicted at `maxKeys`; see MemoryStore.onEvict. */
  onEvict?: EvictionListener;
}

/** EvictionListener hears one bucket evicted to make room: `kind`, the policy's name, the client key. */
export type EvictionListener = (kind: "active" | "throttled", policy: string, key: string) => void;

/** MemoryStoreStats counts what a MemoryStore holds and has evicted since it was built. */
export interface MemoryStoreStats {
  trackedKeys: number;
  evictions: Record<EvictionKind, number>;
}

const MIN_SLOTS = 64;
const THROTTLED = 2 ** 52;

/**
 * Table holds one policy's buckets in typed arrays indexed by a slot number
 * that a Map gives each key: about 25 bytes a bucket beyond the Map entry, and
 * nothing allocated when a tracked client is charged.
 */
class Table {
  readonly index = new Map<string, number>();
  keys: (string | undefined)[] = [];
  tokens = new Float64Array(MIN_SLOTS);
  refilledAt = new Float64Array(MIN_SLOTS);
  throttled = new Uint8Array(MIN_SLOTS);
  free: number[] = [];
  used = 0;

  constructor(public policy: Policy) {}

  get slots(): number {
    return this.tokens.length;
  }

  resize(slots: number): void {
    const grow = <T extends Float64Array | Uint8Array>(a: T, b: T): T => {
      b.set(a.subarray(0, Math.min(a.length, b.length)));
      return b;
    };
    this.tokens = grow(this.tokens, new Float64Array(slots));
    this.refilledAt = grow(this.refilledAt, new Float64Array(slots));
    this.throttled = grow(this.throttled, new Uint8Array(slots));
  }

  remove(slot: number): void {
    this.index.delete(this.keys[slot] as string);
    this.keys[slot] = undefined;
    this.free.push(slot);
  }
}

/**
 * MemoryStore keeps buckets in this process. A bucket that would be full is
 * not kept (it is indistinguishable from a new one), so memory follows the
 * clients active in the last refill window, capped by `maxKeys`. It holds no
 * timer, so it never keeps the process alive.
 */
export class MemoryStore implements Store {
  readonly maxKeys: number;
  readonly clock: Clock;
  /**
   * onEvict, when set, hears each bucket evicted at `maxKeys` (not the full
   * buckets dropped, which no client can tell apart). A RateLimiter built on
   * this store sets it, when unset, to emit its `eviction` event.
   */
  onEvict: EvictionListener | undefined;
  readonly #tables = new Map<string, Table>();
  readonly #states: BucketState[] = [];
  readonly #slots: number[] = [];
  readonly #reply: number[] = [0, 0];
  #evictions: Record<EvictionKind, number> = { full: 0, active: 0, throttled: 0 };
  #scores = new Float64Array(0);

  constructor(options: MemoryStoreOptions = {}) {
    for (const key of Object.keys(options)) {
      if (key !== "maxKeys" && key !== "clock" && key !== "onEvict") {
        throw new ConfigError(
          `MemoryStore.${key}`,
          (options as Record<string, unknown>)[key],
          "is not a MemoryStore option",
          "MemoryStore takes maxKeys, clock and onEvict",
        );
      }
    }
    const maxKeys = options.maxKeys ?? 2_000_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > 2 ** 30) {
      throw new ConfigError(
        "MemoryStore.maxKeys",
        maxKeys,
        "must be an integer from 1 to 2^30",
        "cap the buckets kept per policy, e.g. maxKeys: 100000",
      );
    }
    const clock = options.clock ?? Date.now;
    if (typeof clock !== "function") {
      throw new ConfigError(
        "MemoryStore.clock",
        clock,
        "must be a function returning epoch milliseconds",
        "pass clock: () => Date.now(), or a fake clock in tests",
      );
    }
    this.maxKeys = maxKeys;
    this.clock = clock;
    this.onEvict = options.onEvict;
  }

  consume(key: string, policies: readonly Policy[], cost: number, spend: boolean): number[] {
    const now = this.clock();
    const n = policies.length;
    const states = this.#states;
    const slots = this.#slots;
    while (states.length < n) states.push({ tokens: 0, refilledAt: 0 });
    for (let i = 0; i < n; i++) {
      const p = policies[i] as Policy;
      const table = this.#table(p);
      const slot = table.index.get(key);
      const s = states[i] as BucketState;
      if (slot === undefined) {
        s.tokens = p.capacity;
        s.refilledAt = now;
        slots[i] = -1;
      } else {
        s.tokens = table.tokens[slot] as number;
        s.refilledAt = table.refilledAt[slot] as number;
        refill(p, s, now);
        slots[i] = slot;
      }
    }
    const allowed = charge(states, n, cost, spend, now, this.#reply);
    for (let i = 0; i < n; i++) {
      const p = policies[i] as Policy;
      const s = states[i] as BucketState;
      const table = this.#table(p);
      let slot = slots[i] as number;
      if (s.tokens >= p.capacity) {
        if (slot >= 0) table.remove(slot);
        continue;
      }
      if (slot < 0) slot = this.#insert(table, key, now);
      table.tokens[slot] = s.tokens;
      table.refilledAt[slot] = s.refilledAt;
      if (allowed) table.throttled[slot] = 0;
      else if (s.tokens < cost) table.throttled[slot] = 1;
    }
    return this.#reply;
  }

  reset(key: string, policies: readonly Policy[]): void {
    for (const p of policies) {
      const table = this.#tables.get(p.name);
      const slot = table?.index.get(key);
      if (table && slot !== undefined) table.remove(slot);
    }
  }

  /** stats reports tracked buckets (all policies) and evictions so far. */
  stats(): MemoryStoreStats {
    let trackedKeys = 0;
    for (const t of this.#tables.values()) trackedKeys += t.index.size;
    return { trackedKeys, evictions: { ...this.#evictions } };
  }

  /** close forgets every bucket. */
  close(): void {
    this.#tables.clear();
    this.#scores = new Float64Array(0);
  }

  #table(p: Policy): Table {
    let table = this.#tables.get(p.name);
    if (table === undefined) {
      table = new Table(p);
      this.#tables.set(p.name, table);
    } else if (table.policy !== p) {
      table.policy = p;
    }
    return table;
  }

  #insert(table: Table, key: string, now: number): number {
    let slot = table.free.pop();
    if (slot === undefined) {
      if (table.used === table.slots) this.#makeRoom(table, now);
      slot = table.free.pop() ?? table.used++;
    }
    table.index.set(key, slot);
    table.keys[slot] = key;
    table.throttled[slot] = 0;
    return slot;
  }

  /**
   * makeRoom runs when every slot is taken: drop buckets that are full again;
   * if that freed under a quarter, grow (up to maxKeys), and at maxKeys evict
   * the buckets closest to full, throttled clients last.
   */
  #makeRoom(table: Table, now: number): void {
    const freed = this.#sweep(table, now);
    if (freed * 4 >= table.used) return;
    if (table.slots < this.maxKeys) {
      table.resize(Math.min(this.maxKeys, table.slots * 2));
      return;
    }
    if (freed > 0) return;
    this.#evict(table, now, Math.max(1, table.used >>> 5));
  }

  #sweep(table: Table, now: number): number {
    const p = table.policy;
    const s: BucketState = { tokens: 0, refilledAt: 0 };
    let freed = 0;
    for (let slot = 0; slot < table.used; slot++) {
      if (table.keys[slot] === undefined) continue;
      s.tokens = table.tokens[slot] as number;
      s.refilledAt = table.refilledAt[slot] as number;
      if (untilFull(p, refilled(p, s, now), now) <= 0) {
        table.remove(slot);
        freed++;
      }
    }
    this.#evictions.full += freed;
    return freed;
  }

  #evict(table: Table, now: number, count: number): void {
    const p = table.policy;
    const used = table.used;
    if (this.#scores.length < used) this.#scores = new Float64Array(table.slots);
    const scores = this.#scores;
    const s: BucketState = { tokens: 0, refilledAt: 0 };
    for (let slot = 0; slot < used; slot++) {
      s.tokens = table.tokens[slot] as number;
      s.refilledAt = table.refilledAt[slot] as number;
      const wait = untilFull(p, refilled(p, s, now), now);
      scores[slot] = table.throttled[slot] ? THROTTLED + wait : wait;
    }
    const cut = kth(scores.slice(0, used), count - 1);
    for (let slot = 0; slot < used && count > 0; slot++) {
      const score = scores[slot] as number;
      if (score > cut || table.keys[slot] === undefined) continue;
      const kind = score >= THROTTLED ? "throttled" : "active";
      this.#evictions[kind]++;
      this.onEvict?.(kind, p.name, table.keys[slot] as string);
      table.remove(slot);
      count--;
    }
  }
}

function refilled(p: Policy, s: BucketState, now: number): BucketState {
  refill(p, s, now);
  return s;
}

/** kth returns the k-th smallest value of `a` (0-based), reordering `a` (quickselect). */
function kth(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k] as number;
  }
  return a[k] as number;
}
