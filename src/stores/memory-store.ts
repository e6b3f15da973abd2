import type { Clock } from "../clock.js";
import { turnNow } from "../clock.js";
import type { BucketState } from "../core/bucket.js";
import { adjust, refill, untilFull } from "../core/bucket.js";
import { BLOCK_STARTED, BLOCKED, charge } from "../core/decision.js";
import { ConfigError } from "../core/errors.js";
import { boundKey } from "../core/key.js";
import { checkOptions } from "../core/options.js";
import { ownCopy } from "../core/own-copy.js";
import type { Policy } from "../core/policy.js";
import type { Store } from "./store.js";

/** EvictionKind says why a bucket left a full MemoryStore. */
export type EvictionKind = "full" | "active" | "throttled";

export interface MemoryStoreOptions {
  /**
   * Most buckets kept per policy. When reached, buckets that are full again
   * are dropped first (invisible to clients), then those closest to full,
   * and clients being throttled only when nothing else is left. Default 2,000,000.
   */
  maxKeys?: number | undefined;
  /**
   * Returns epoch ms. Default: a clock that never jumps (the wall clock at
   * start plus monotonic time, read once per event-loop turn), so a
   * wall-clock step changes no decision. Pass a fake clock to test limits
   * without sleeping.
   */
  clock?: Clock | undefined;
  /** Hears each bucket evicted at `maxKeys`; see MemoryStore.onEvict. */
  onEvict?: EvictionListener | undefined;
}

/** EvictionListener hears one bucket evicted to make room: `kind`, the policy's name, the client key. */
export type EvictionListener = (kind: "active" | "throttled", policy: string, key: string) => void;

/** MemoryStoreStats counts what a MemoryStore holds and has evicted since it was built. */
export interface MemoryStoreStats {
  trackedKeys: number;
  /** Policies whose buckets it holds: one table each, dropped once it holds none. */
  policies: number;
  evictions: Record<EvictionKind, number>;
}

const OPTIONS = ["maxKeys", "clock", "onEvict"];
const MIN_SLOTS = 8;
/**
 * Tables (one per policy name) a store holds before a new one first drops
 * the tables that hold no bucket; the count doubles after each trim.
 */
const TRIM_TABLES_AT = 1024;
/**
 * Most tables a store keeps: a caller naming a policy per client (the
 * gateway's buckets under one domain key, on a fallback store) past this
 * many loses the oldest tables whole, their buckets evicted as at maxKeys.
 */
const MAX_TABLES = 65_536;
/** A `blocked` time meaning no block: below every clock's now. */
const NONE = Number.NEGATIVE_INFINITY;
/** Added to an eviction score to evict throttled and blocked clients last: above any wait (at most 2^53). */
const THROTTLED = 2 ** 60;
/** Longest probe into a table's index; keys that would need more go to its overflow Map. */
const MAX_PROBE = 32;
/** Per-process hash seed, so clients cannot choose keys that collide. */
const SEED = crypto.getRandomValues(new Int32Array(1))[0] as number;

/**
 * hashOf is FNV-1a over the key's UTF-16 code units from a random seed, then
 * a final mix so the low bits (the index position) depend on every character.
 */
function hashOf(key: string): number {
  let h = SEED;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return h ^ (h >>> 13);
}

/**
 * Table holds one policy's buckets in typed arrays indexed by a slot number.
 * Its own open-addressing index (linear probing, at most 70% full) finds a
 * key's slot: each position is one Int32, the slot + 1 in its low bits and
 * the key's hash in the bits the slot number leaves free (a tag), so a lookup
 * touches one 4-byte cell where a Map<string, number> chases pointers through
 * its hash chain; the index stays small enough (6 MB at 1M clients) that the
 * cost per decision barely grows with the number of clients. A key's slot
 * never moves, buckets are `[tokens, refilledAt]` pairs (Float64: tokens
 * may be negative, in debt, and up to 2^53, exactly), a free slot keeps
 * the next free slot in its tokens, and `hashes` keeps each slot's full
 * hash for deletion and growth: about 38 bytes a bucket besides the key
 * string, and nothing allocated when a tracked client is charged. Blocks
 * are rare, so they live in a Map from slot to the epoch ms the block ends,
 * absent while no key of the table is blocked: the common path checks one
 * field, and a million clients pay nothing for them.
 * Probes stop after MAX_PROBE positions (the hash is seeded, but a key set
 * that still collides lands in `overflow`, a Map, instead of slowing every
 * lookup). `hash` is replaceable only so tests can force collisions.
 * @internal
 */
export class Table {
  index = new Int32Array(positionsFor(MIN_SLOTS));
  /** A hash's home position is its high bits scaled to the index's length. */
  scale = this.index.length / 2 ** 32;
  /** Index cells: the low bits hold slot + 1, the others a tag from the hash's low bits. */
  slotBits = slotMaskFor(MIN_SLOTS);
  tagShift = 32 - Math.clz32(this.slotBits);
  overflow: Map<string, number> | undefined;
  keys: (string | undefined)[] = new Array(MIN_SLOTS);
  hashes = new Int32Array(MIN_SLOTS);
  buckets = new Float64Array(MIN_SLOTS * 2);
  throttled = new Uint8Array(MIN_SLOTS);
  /** Slot -> epoch ms its block ends; undefined while none is held. */
  blocks: Map<number, number> | undefined;
  /** Head of the free-slot chain, -1 when empty. */
  free = -1;
  /** Slots handed out so far: slots from `used` on were never taken. */
  used = 0;
  /** Buckets held. */
  size = 0;
  /** The key found last and its slot: a client sending many requests in a row is not looked up again. */
  #hotKey: string | undefined;
  #hotSlot = -1;

  constructor(
    public policy: Policy,
    readonly hash: (key: string) => number = hashOf,
  ) {}

  get slots(): number {
    return this.throttled.length;
  }

  /** find returns the slot of `key` (whose hash is `h`), or -1. */
  find(key: string, h: number): number {
    if (key === this.#hotKey) return this.#hotSlot;
    const slot = this.#lookup(key, h);
    if (slot >= 0) {
      this.#hotKey = key;
      this.#hotSlot = slot;
    }
    return slot;
  }

  #home(h: number): number {
    return ((h >>> 0) * this.scale) | 0;
  }

  #lookup(key: string, h: number): number {
    const index = this.index;
    const slotBits = this.slotBits;
    const tag = h << this.tagShift;
    let at = ((h >>> 0) * this.scale) | 0;
    for (let probe = 0; probe < MAX_PROBE; probe++) {
      const cell = index[at] as number;
      if (cell === 0) break;
      if ((cell & ~slotBits) === tag) {
        const slot = (cell & slotBits) - 1;
        if (this.keys[slot] === key) return slot;
      }
      if (++at === index.length) at = 0;
    }
    return this.overflow === undefined ? -1 : (this.overflow.get(key) ?? -1);
  }

  /** add takes a slot for `key`, known to be absent; the table has a free or unused slot. */
  add(key: string, h: number): number {
    // Held until evicted: a copy of its own, not a view into the header it was cut from.
    key = ownCopy(key);
    let slot = this.free;
    if (slot >= 0) this.free = this.buckets[2 * slot] as number;
    else slot = this.used++;
    this.keys[slot] = key;
    this.hashes[slot] = h;
    this.throttled[slot] = 0;
    this.size++;
    this.#link(key, h, slot);
    return slot;
  }

  #link(key: string, h: number, slot: number): void {
    const index = this.index;
    let at = ((h >>> 0) * this.scale) | 0;
    for (let probe = 0; probe < MAX_PROBE; probe++) {
      if (index[at] === 0) {
        index[at] = (h << this.tagShift) | (slot + 1);
        return;
      }
      if (++at === index.length) at = 0;
    }
    this.overflow ??= new Map();
    this.overflow.set(key, slot);
  }

  /** blockedUntil is when `slot`'s block ends, NONE when it has none. */
  blockedUntil(slot: number): number {
    return this.blocks?.get(slot) ?? NONE;
  }

  block(slot: number, until: number): void {
    this.blocks ??= new Map();
    this.blocks.set(slot, until);
  }

  unblock(slot: number): void {
    if (this.blocks?.delete(slot) && this.blocks.size === 0) this.blocks = undefined;
  }

  remove(slot: number): void {
    if (this.blocks !== undefined) this.unblock(slot);
    const key = this.keys[slot] as string;
    if (slot === this.#hotSlot) this.#hotKey = undefined;
    this.keys[slot] = undefined;
    this.buckets[2 * slot] = this.free;
    this.free = slot;
    this.size--;
    if (this.overflow?.delete(key)) return;
    // Backward-shift deletion: pull later entries of the run into the hole so
    // no probe ever stops early at it.
    const index = this.index;
    const n = index.length;
    const slotBits = this.slotBits;
    let hole = this.#home(this.hashes[slot] as number);
    while (((index[hole] as number) & slotBits) !== slot + 1) hole = hole + 1 === n ? 0 : hole + 1;
    let at = hole;
    for (;;) {
      at = at + 1 === n ? 0 : at + 1;
      const cell = index[at] as number;
      if (cell === 0) break;
      const home = this.#home(this.hashes[(cell & slotBits) - 1] as number);
      const stays = hole <= at ? hole < home && home <= at : hole < home || home <= at;
      if (stays) continue;
      index[hole] = cell;
      hole = at;
    }
    index[hole] = 0;
  }

  resize(slots: number): void {
    const buckets = new Float64Array(slots * 2);
    buckets.set(this.buckets.subarray(0, Math.min(this.buckets.length, buckets.length)));
    this.buckets = buckets;
    const throttled = new Uint8Array(slots);
    throttled.set(this.throttled.subarray(0, Math.min(this.throttled.length, slots)));
    this.throttled = throttled;
    const hashes = new Int32Array(slots);
    hashes.set(this.hashes.subarray(0, Math.min(this.hashes.length, slots)));
    this.hashes = hashes;
    this.keys.length = slots;
    this.index = new Int32Array(positionsFor(slots));
    this.scale = this.index.length / 2 ** 32;
    this.slotBits = slotMaskFor(slots);
    this.tagShift = 32 - Math.clz32(this.slotBits);
    this.overflow = undefined;
    for (let slot = 0; slot < this.used; slot++) {
      const key = this.keys[slot];
      if (key !== undefined) this.#link(key, this.hashes[slot] as number, slot);
    }
  }
}

/** positionsFor sizes the index for `slots` keys: at most 70% full, so runs stay short. */
function positionsFor(slots: number): number {
  return Math.ceil(slots / 0.7) + 1;
}

/** slotMaskFor is the mask of the low bits an index cell needs to hold any slot + 1 up to `slots`. */
function slotMaskFor(slots: number): number {
  return 2 ** (32 - Math.clz32(slots)) - 1;
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
  /** The last policy list and its tables: a limiter passes the same frozen list every time. */
  #lastList: readonly Policy[] | undefined;
  #lastTables: Table[] = [];
  /** The last key and its hash: a hot client is not hashed again. */
  #lastKey: string | undefined;
  #lastHash = 0;
  #evictions: Record<EvictionKind, number> = { full: 0, active: 0, throttled: 0 };
  #scores = new Float64Array(0);
  #trimTablesAt = TRIM_TABLES_AT;

  constructor(options: MemoryStoreOptions = {}) {
    checkOptions(options, OPTIONS, {
      name: "MemoryStore options",
      kind: "MemoryStore",
      prefix: "MemoryStore.",
      example: "new MemoryStore() or new MemoryStore({ maxKeys: 100000 })",
    });
    const maxKeys = options.maxKeys ?? 2_000_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > 2 ** 30) {
      throw new ConfigError(
        "MemoryStore.maxKeys",
        maxKeys,
        "must be an integer from 1 to 2^30",
        "cap the buckets kept per policy, e.g. maxKeys: 100000",
      );
    }
    const clock = options.clock ?? turnNow;
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
    const tables = policies === this.#lastList ? this.#lastTables : this.#remember(policies);
    let h = this.#lastHash;
    if (key !== this.#lastKey) {
      // Called directly, a store sees raw keys: hold long ones as digests too.
      key = boundKey(key);
      h = hashOf(key);
      this.#lastKey = key;
      this.#lastHash = h;
    }
    if (tables.length === 1)
      return this.#consumeOne(key, h, tables[0] as Table, policies[0] as Policy, cost, spend, now);
    return this.#consumeMany(key, h, tables, policies, cost, spend, now);
  }

  /** consumeMany is consume for several policies, kept apart so the one-policy path stays small. */
  #consumeMany(
    key: string,
    h: number,
    tables: readonly Table[],
    policies: readonly Policy[],
    cost: number,
    spend: boolean,
    now: number,
  ): number[] {
    const n = tables.length;
    const until = this.#load(key, h, tables, policies, now);
    if (until > now) return this.#blockedReply(n, now, until, BLOCKED);
    const states = this.#states;
    const allowed = charge(states, n, cost, spend, now, this.#reply);
    if (!allowed && spend) {
      const blockUntil = blockEnd(policies, states, cost, now);
      if (blockUntil > now) {
        this.#store(key, h, tables, policies, now, blockUntil);
        return this.#blockedReply(n, now, blockUntil, BLOCK_STARTED);
      }
    }
    const slots = this.#slots;
    for (let i = 0; i < n; i++) {
      const p = policies[i] as Policy;
      const s = states[i] as BucketState;
      const table = tables[i] as Table;
      let slot = slots[i] as number;
      if (s.tokens >= p.capacity) {
        if (slot >= 0) table.remove(slot);
        continue;
      }
      if (slot < 0) slot = this.#insert(table, key, h, now);
      const buckets = table.buckets;
      buckets[2 * slot] = s.tokens;
      buckets[2 * slot + 1] = s.refilledAt;
      if (allowed) table.throttled[slot] = 0;
      else if (s.tokens < cost) table.throttled[slot] = 1;
    }
    return this.#reply;
  }

  /**
   * adjust charges `delta` tokens to `key` under every policy after the fact
   * (a settle: positive, debt allowed down to each policy's maxDebt; a
   * refund: negative, never above capacity). Replies
   * `[now, dropped, tokens_0, refilledAt_0, ...]`, `dropped` the most tokens
   * any policy dropped beyond its maxDebt.
   */
  adjust(key: string, policies: readonly Policy[], delta: number): number[] {
    const now = this.clock();
    const h = hashOf(key);
    const tables = this.#tablesOf(policies);
    const n = tables.length;
    this.#load(key, h, tables, policies, now);
    let dropped = 0;
    const reply = new Array<number>(2 + 2 * n);
    reply[0] = now;
    for (let i = 0; i < n; i++) {
      const s = this.#states[i] as BucketState;
      const d = adjust(policies[i] as Policy, s, delta, now);
      if (d > dropped) dropped = d;
      reply[2 + 2 * i] = s.tokens;
      reply[3 + 2 * i] = s.refilledAt;
    }
    reply[1] = dropped;
    this.#store(key, h, tables, policies, now, NONE);
    return reply;
  }

  /**
   * block keeps `key` out under every policy for `ms` from now (a block in
   * force ends at the later of its end and this one's). Replies as a
   * blocked consume does.
   */
  block(key: string, policies: readonly Policy[], ms: number): number[] {
    const now = this.clock();
    const h = hashOf(key);
    const tables = this.#tablesOf(policies);
    const until = Math.max(now + ms, this.#load(key, h, tables, policies, now));
    this.#store(key, h, tables, policies, now, until);
    return this.#blockedReply(tables.length, now, until, BLOCKED);
  }

  /**
   * load reads and refills `key`'s bucket under each policy into #states
   * (its slot into #slots, -1 when absent: full) and returns the latest end
   * of a block on them (NONE when none was ever set).
   */
  #load(
    key: string,
    h: number,
    tables: readonly Table[],
    policies: readonly Policy[],
    now: number,
  ): number {
    const states = this.#states;
    const slots = this.#slots;
    let until = NONE;
    for (let i = 0; i < tables.length; i++) {
      const p = policies[i] as Policy;
      const table = tables[i] as Table;
      if (table.policy !== p) table.policy = p;
      const slot = table.find(key, h);
      const s = states[i] as BucketState;
      slots[i] = slot;
      if (slot < 0) {
        s.tokens = p.capacity;
        s.refilledAt = now;
      } else {
        s.tokens = table.buckets[2 * slot] as number;
        s.refilledAt = table.buckets[2 * slot + 1] as number;
        refill(p, s, now);
        if (table.blocks !== undefined) {
          const b = table.blockedUntil(slot);
          if (b > until) until = b;
          if (b <= now) table.unblock(slot);
        }
      }
    }
    return until;
  }

  /**
   * store writes #states back for `key` (slots from #load); with `until`
   * above now every bucket is kept, full or not, blocked until then.
   */
  #store(
    key: string,
    h: number,
    tables: readonly Table[],
    policies: readonly Policy[],
    now: number,
    until: number,
  ): void {
    for (let i = 0; i < tables.length; i++) {
      const p = policies[i] as Policy;
      const s = this.#states[i] as BucketState;
      const table = tables[i] as Table;
      let slot = this.#slots[i] as number;
      const keep = until > now || (slot >= 0 && table.blockedUntil(slot) > now);
      if (s.tokens >= p.capacity && !keep) {
        if (slot >= 0) table.remove(slot);
        continue;
      }
      if (slot < 0) slot = this.#insert(table, key, h, now);
      table.buckets[2 * slot] = s.tokens;
      table.buckets[2 * slot + 1] = s.refilledAt;
      if (until > now) {
        table.block(slot, until);
        table.throttled[slot] = 1;
      }
    }
  }

  /** blockedReply is a fresh reply (the hot one stays short) for a request a block denied. */
  #blockedReply(n: number, now: number, until: number, kind: number): number[] {
    const reply = new Array<number>(3 + 2 * n);
    reply[0] = now;
    reply[1] = kind;
    for (let i = 0; i < n; i++) {
      const s = this.#states[i] as BucketState;
      reply[2 + 2 * i] = s.tokens;
      reply[3 + 2 * i] = s.refilledAt;
    }
    reply[2 + 2 * n] = until;
    return reply;
  }

  /** consumeOne is consume for a single policy (the common case): the same steps, no loops. */
  #consumeOne(
    key: string,
    h: number,
    table: Table,
    p: Policy,
    cost: number,
    spend: boolean,
    now: number,
  ): number[] {
    if (table.policy !== p) table.policy = p;
    const s = this.#states[0] as BucketState;
    const slot = table.find(key, h);
    const buckets = table.buckets;
    if (slot < 0) {
      s.tokens = p.capacity;
      s.refilledAt = now;
    } else {
      s.tokens = buckets[2 * slot] as number;
      s.refilledAt = buckets[2 * slot + 1] as number;
      refill(p, s, now);
      if (table.blocks !== undefined && this.#blockedOne(table, slot, now)) {
        return this.#blockedReply(1, now, table.blockedUntil(slot), BLOCKED);
      }
    }
    const allowed = s.tokens >= cost;
    if (allowed) {
      if (spend) s.tokens -= cost;
    } else if (spend && p.blockFor > 0) return this.#startBlockOne(key, h, table, p, slot, now);
    const reply = this.#reply;
    reply[0] = now;
    reply[1] = allowed ? 1 : 0;
    reply[2] = s.tokens;
    reply[3] = s.refilledAt;
    // A tracked bucket that stays below capacity (the hot path) is written in place.
    if (slot >= 0 && s.tokens < p.capacity) {
      buckets[2 * slot] = s.tokens;
      buckets[2 * slot + 1] = s.refilledAt;
      table.throttled[slot] = allowed ? 0 : 1;
    } else this.#placeOne(key, h, table, slot, now, allowed);
    return reply;
  }

  /** placeOne stores the single-policy bucket in #states[0] for a new key, or drops it once full. */
  #placeOne(
    key: string,
    h: number,
    table: Table,
    slot: number,
    now: number,
    allowed: boolean,
  ): void {
    const s = this.#states[0] as BucketState;
    if (s.tokens >= table.policy.capacity) {
      if (slot >= 0) table.remove(slot);
      return;
    }
    const at = this.#insert(table, key, h, now);
    table.buckets[2 * at] = s.tokens;
    table.buckets[2 * at + 1] = s.refilledAt;
    table.throttled[at] = allowed ? 0 : 1;
  }

  /**
   * blockedOne tells whether `slot` has a block in force; one that has
   * ended is forgotten here, once touched (as Redis rewrites the bucket
   * without it). Kept out of #consumeOne so the hot path stays small.
   */
  #blockedOne(table: Table, slot: number, now: number): boolean {
    if (table.blockedUntil(slot) > now) return true;
    table.unblock(slot);
    return false;
  }

  /** startBlockOne blocks `key` after a denial by policy `p` (its blockFor). */
  #startBlockOne(
    key: string,
    h: number,
    table: Table,
    p: Policy,
    slot: number,
    now: number,
  ): number[] {
    this.#slots[0] = slot;
    this.#store(key, h, [table], [p], now, now + p.blockFor);
    return this.#blockedReply(1, now, now + p.blockFor, BLOCK_STARTED);
  }

  reset(key: string, policies: readonly Policy[]): void {
    key = boundKey(key);
    const h = hashOf(key);
    for (const p of policies) {
      const table = this.#tables.get(p.name);
      const slot = table?.find(key, h) ?? -1;
      if (table && slot >= 0) table.remove(slot);
    }
  }

  /** stats reports tracked buckets (all policies) and evictions so far. */
  stats(): MemoryStoreStats {
    let trackedKeys = 0;
    for (const t of this.#tables.values()) trackedKeys += t.size;
    return { trackedKeys, policies: this.#tables.size, evictions: { ...this.#evictions } };
  }

  /** close forgets every bucket. */
  close(): void {
    this.#tables.clear();
    this.#lastList = undefined;
    this.#lastTables = [];
    this.#scores = new Float64Array(0);
  }

  /** remember is tablesOf for consume, which keeps the list and its tables for its next call. */
  #remember(policies: readonly Policy[]): Table[] {
    const tables = this.#tablesOf(policies);
    this.#lastList = policies;
    this.#lastTables = tables;
    return tables;
  }

  /**
   * tablesOf finds (or makes) the table of each policy, by name. A refund or
   * block leaves consume's remembered list alone: a limiter's decisions go
   * through a list of its own (see RateLimiter), its refunds through another.
   */
  #tablesOf(policies: readonly Policy[]): Table[] {
    if (policies === this.#lastList) return this.#lastTables;
    const tables: Table[] = [];
    for (const p of policies) {
      let table = this.#tables.get(p.name);
      if (table === undefined) {
        if (this.#tables.size >= this.#trimTablesAt) this.#trimTables(policies);
        table = new Table(p);
        this.#tables.set(p.name, table);
      }
      tables.push(table);
    }
    while (this.#states.length < tables.length) this.#states.push({ tokens: 0, refilledAt: 0 });
    return tables;
  }

  /**
   * trimTables runs when a new policy name would pass the count the last
   * trim left: every table not in use is swept of buckets that are full
   * again and dropped once it holds none; past MAX_TABLES the oldest go whole
   * (down to three quarters of it), each bucket evicted as at maxKeys. So a
   * caller that names a policy per client keeps a table only while its
   * bucket is not full, and never more than MAX_TABLES.
   */
  #trimTables(using: readonly Policy[]): void {
    const now = this.clock();
    const inUse = (name: string, table: Table) =>
      using.some((p) => p.name === name) || this.#lastTables.includes(table);
    for (const [name, table] of this.#tables) {
      if (inUse(name, table)) continue;
      this.#sweep(table, now);
      if (table.size === 0) this.#tables.delete(name);
    }
    if (this.#tables.size >= MAX_TABLES) {
      for (const [name, table] of this.#tables) {
        if (this.#tables.size < (MAX_TABLES * 3) / 4) break;
        if (inUse(name, table)) continue;
        this.#evictTable(name, table);
      }
    }
    this.#trimTablesAt = Math.min(MAX_TABLES, Math.max(TRIM_TABLES_AT, 2 * this.#tables.size));
  }

  /** evictTable drops a whole table, each bucket it holds counted and heard as evicted. */
  #evictTable(name: string, table: Table): void {
    this.#tables.delete(name);
    for (let slot = 0; slot < table.used; slot++) {
      const key = table.keys[slot];
      if (key === undefined) continue;
      const kind = table.throttled[slot] ? "throttled" : "active";
      this.#evictions[kind]++;
      this.onEvict?.(kind, name, key);
    }
  }

  #insert(table: Table, key: string, h: number, now: number): number {
    if (table.free < 0 && table.used === table.slots) this.#makeRoom(table, now);
    return table.add(key, h);
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
      s.tokens = table.buckets[2 * slot] as number;
      s.refilledAt = table.buckets[2 * slot + 1] as number;
      if (untilFull(p, refilled(p, s, now), now) <= 0 && !(table.blockedUntil(slot) > now)) {
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
      s.tokens = table.buckets[2 * slot] as number;
      s.refilledAt = table.buckets[2 * slot + 1] as number;
      const wait = Math.max(untilFull(p, refilled(p, s, now), now), table.blockedUntil(slot) - now);
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

/**
 * blockEnd is when a denial of `cost` starts a block ends: now plus the
 * longest blockFor among the policies that denied it; NONE when none blocks.
 */
function blockEnd(
  policies: readonly Policy[],
  states: readonly BucketState[],
  cost: number,
  now: number,
): number {
  let until = NONE;
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i] as Policy;
    if (p.blockFor > 0 && (states[i] as BucketState).tokens < cost && now + p.blockFor > until) {
      until = now + p.blockFor;
    }
  }
  return until;
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
