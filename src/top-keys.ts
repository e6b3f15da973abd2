import { ownCopy } from "./core/own-copy.js";

/** TopKey is one heavy hitter: `count` may overstate the truth by at most `error`. */
export interface TopKey {
  key: string;
  count: number;
  error: number;
}

/**
 * SpaceSaving keeps the approximate top `size` keys of a stream in fixed
 * memory (Metwally et al.'s space-saving summary over a min-heap). Any key
 * seen more than total/size times is guaranteed to be kept, and each count
 * overstates by at most its `error`. O(log size) per observation.
 */
export class SpaceSaving {
  readonly size: number;
  total = 0;
  readonly #slot = new Map<string, number>();
  readonly #keys: string[] = [];
  readonly #counts: number[] = [];
  readonly #errors: number[] = [];
  /** heap[i] is a slot; ordered by count, smallest first. */
  readonly #heap: number[] = [];
  /** pos[slot] is the slot's index in the heap. */
  readonly #pos: number[] = [];
  /** The key counted last and its slot: a client limited many times in a row skips the Map. */
  #lastKey: string | undefined;
  #lastSlot = 0;

  constructor(size: number) {
    this.size = size;
  }

  /** add counts one observation of `key` (or `weight` of them). */
  add(key: string, weight = 1): void {
    this.total += weight;
    const slot = key === this.#lastKey ? this.#lastSlot : this.#slot.get(key);
    if (slot !== undefined) {
      this.#lastKey = key;
      this.#lastSlot = slot;
      this.#counts[slot] = (this.#counts[slot] as number) + weight;
      this.#down(this.#pos[slot] as number);
      return;
    }
    key = ownCopy(key);
    if (this.#keys.length < this.size) {
      const s = this.#keys.length;
      this.#keys.push(key);
      this.#counts.push(weight);
      this.#errors.push(0);
      this.#heap.push(s);
      this.#pos.push(this.#heap.length - 1);
      this.#slot.set(key, s);
      this.#up(this.#heap.length - 1);
      return;
    }
    // Replace the smallest counter: the newcomer inherits its count as error.
    const s = this.#heap[0] as number;
    const min = this.#counts[s] as number;
    if (s === this.#lastSlot) this.#lastKey = undefined;
    this.#slot.delete(this.#keys[s] as string);
    this.#keys[s] = key;
    this.#errors[s] = min;
    this.#counts[s] = min + weight;
    this.#slot.set(key, s);
    this.#down(0);
  }

  /** top returns up to `n` keys, largest count first. */
  top(n = this.size): TopKey[] {
    const out: TopKey[] = this.#keys.map((key, s) => ({
      key,
      count: this.#counts[s] as number,
      error: this.#errors[s] as number,
    }));
    out.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    return out.slice(0, n);
  }

  #swap(i: number, j: number): void {
    const h = this.#heap;
    const a = h[i] as number;
    const b = h[j] as number;
    h[i] = b;
    h[j] = a;
    this.#pos[b] = i;
    this.#pos[a] = j;
  }

  #less(i: number, j: number): boolean {
    return (
      (this.#counts[this.#heap[i] as number] as number) <
      (this.#counts[this.#heap[j] as number] as number)
    );
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.#less(l, m)) m = l;
      if (r < n && this.#less(r, m)) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/**
 * TopLimited answers "who is hammering us?" over a recent window: two
 * SpaceSaving summaries, the current window and the one before, so a read
 * always covers between one and two windows of history in fixed memory.
 */
export class TopLimited {
  readonly size: number;
  /** Window length in ms. */
  readonly window: number;
  #current: SpaceSaving;
  #previous: SpaceSaving;
  #startedAt = Number.NEGATIVE_INFINITY;

  constructor(size = 100, window = 60_000) {
    this.size = size;
    this.window = window;
    this.#current = new SpaceSaving(size);
    this.#previous = new SpaceSaving(size);
  }

  /** add records one limited request of `key` at `now` (epoch ms). */
  add(key: string, now: number): void {
    this.#rotate(now);
    this.#current.add(key);
  }

  /** top returns up to `n` keys limited most in the last one to two windows, most first. */
  top(n: number, now: number): TopKey[] {
    this.#rotate(now);
    const merged = new Map<string, TopKey>();
    for (const summary of [this.#previous, this.#current]) {
      for (const t of summary.top()) {
        const m = merged.get(t.key);
        if (m) {
          m.count += t.count;
          m.error += t.error;
        } else merged.set(t.key, { ...t });
      }
    }
    return [...merged.values()]
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1))
      .slice(0, n);
  }

  #rotate(now: number): void {
    const elapsed = now - this.#startedAt;
    if (elapsed < 0) {
      // The clock stepped back: this window starts now, so what it holds ages
      // out within two windows instead of when the clock catches up.
      this.#startedAt = now;
      return;
    }
    if (elapsed < this.window) return;
    const adjacent = elapsed < 2 * this.window;
    this.#previous = adjacent ? this.#current : new SpaceSaving(this.size);
    this.#current = new SpaceSaving(this.size);
    this.#startedAt = adjacent ? this.#startedAt + this.window : now;
  }
}
