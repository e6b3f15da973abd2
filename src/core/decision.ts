import { type BucketState, retryAfter } from "./bucket.js";
import type { Policy } from "./policy.js";

/**
 * DecisionReason says which path decided: `"store"` (the store's buckets),
 * `"cached"` (a denial the store gave earlier, still in force), `"insurance"`
 * (the store failed; an in-process limiter decided), `"fail-open"` or
 * `"fail-closed"` (the store failed; `onStoreError` said allow or deny),
 * `"blocked"` (the key is blocked: by `limiter.block`, or by a policy's
 * `blockFor` after a denial, this one included).
 */
export type DecisionReason =
  | "store"
  | "cached"
  | "insurance"
  | "fail-open"
  | "fail-closed"
  | "blocked";

/** PolicyState is one policy's bucket after a decision. Times are epoch ms, durations ms. */
export interface PolicyState {
  readonly name: string;
  /** The policy's capacity. */
  readonly limit: number;
  /** Tokens left after this request; never below 0, even when the bucket is in debt. */
  readonly remaining: number;
  /** Epoch ms of the bucket's next refill. */
  readonly resetAt: number;
  /** Milliseconds until this bucket holds the request's cost; 0 when it does. */
  readonly retryAfter: number;
  readonly policy: Policy;
}

/**
 * Decision is the answer to one request. Its top-level fields describe the
 * most restrictive policy: when denied, the one with the longest wait; when
 * allowed, the one with the fewest tokens left (the first listed on a tie).
 */
export interface Decision {
  readonly allowed: boolean;
  /** Name of the most restrictive policy. */
  readonly policy: string;
  /** Its capacity. */
  readonly limit: number;
  /** Its tokens after this request. */
  readonly remaining: number;
  /** Epoch ms of its next refill. */
  readonly resetAt: number;
  /** Milliseconds until this request could pass; 0 when allowed. */
  readonly retryAfter: number;
  /** Every policy's state, in the order the policies were given. */
  readonly policies: readonly PolicyState[];
  readonly reason: DecisionReason;
  /**
   * Epoch ms at which the store decided, by the store's clock (Redis `TIME`
   * for Redis), so `resetAt - now` is exact even when this process's clock is
   * skewed or faked: HTTP headers derive their seconds-until-reset from it.
   */
  readonly now: number;
}

/**
 * StoreReply is what a store answers, flat so a Lua script can return it as
 * is: `[now, allowed, tokens_0, refilledAt_0, tokens_1, refilledAt_1, ...]`,
 * one pair per policy in order, after the request was (or was not) charged
 * (tokens may be negative: debt). `allowed` is 1 (allowed), 0 (denied),
 * BLOCKED (denied by a block in force) or BLOCK_STARTED (denied, and the
 * denial started a block); for these two one more number follows the
 * pairs: the epoch ms the block ends.
 */
export type StoreReply = ArrayLike<number>;

/** BLOCKED is a StoreReply's `allowed` when a block in force denied the request. */
export const BLOCKED = 2;
/** BLOCK_STARTED is a StoreReply's `allowed` when this denial started a block (a policy's `blockFor`). */
export const BLOCK_STARTED = 3;

const scratch: BucketState = { tokens: 0, refilledAt: 0 };
const MAX = Number.MAX_SAFE_INTEGER;

/** policyState is the one place a PolicyState is built, so every one has the same shape. */
function policyState(p: Policy, remaining: number, resetAt: number, wait: number): PolicyState {
  return { name: p.name, limit: p.capacity, remaining, resetAt, retryAfter: wait, policy: p };
}

/**
 * snapshot is the one place a Decision is built: the top-level fields are
 * those of `top`, the state of the policy reported.
 */
function snapshot(
  allowed: boolean,
  top: PolicyState,
  policies: readonly PolicyState[],
  reason: DecisionReason,
  now: number,
): Decision {
  return {
    allowed,
    policy: top.name,
    limit: top.limit,
    remaining: top.remaining,
    resetAt: top.resetAt,
    retryAfter: top.retryAfter,
    policies,
    reason,
    now,
  };
}

/*
 * V8 gives an object field a representation from the values stored in it.
 * A field that first holds a number read from a Float64Array (as tokens and
 * times are) becomes a "double" field, and then every object built gets its
 * own 16-byte box for it, even for a whole number like `remaining`. This one
 * snapshot, built when the module loads with non-numbers in the number
 * fields, makes them general fields instead: a whole number up to 2^31 is
 * then stored in the field itself, and the Decision shares the boxes of its
 * top PolicyState's times. 555 -> 510 bytes allocated per admitted hot-key
 * decision (bench/memory/alloc-worker.ts); the values are the same.
 */
const GENERAL = null as unknown as number;
snapshot(
  false,
  policyState({ name: "" } as Policy, GENERAL, GENERAL, GENERAL),
  [],
  "store",
  GENERAL,
);

/**
 * decide turns a store's reply into a Decision: pure, and the only place
 * that chooses the reported policy, so every store reports alike.
 */
export function decide(
  list: readonly Policy[],
  reply: StoreReply,
  cost: number,
  reason: DecisionReason,
): Decision {
  const now = reply[0] as number;
  const allowed = reply[1] === 1;
  if (!allowed && (reply[1] as number) >= BLOCKED) return decideBlocked(list, reply, cost, now);
  if (list.length === 1) return decideOne(list[0] as Policy, reply, cost, reason, now, allowed);
  return decideMany(list, reply, cost, reason, now, allowed);
}

/** decideMany is decide for several policies, kept apart so decide stays small enough to inline. */
function decideMany(
  list: readonly Policy[],
  reply: StoreReply,
  cost: number,
  reason: DecisionReason,
  now: number,
  allowed: boolean,
): Decision {
  const states: PolicyState[] = new Array(list.length);
  let pick = 0;
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as Policy;
    scratch.tokens = reply[2 + 2 * i] as number;
    scratch.refilledAt = reply[3 + 2 * i] as number;
    const state = policyState(
      p,
      Math.max(scratch.tokens, 0),
      scratch.refilledAt + p.interval,
      allowed ? 0 : retryAfter(p, scratch, cost, now),
    );
    states[i] = state;
    const best = states[pick] as PolicyState;
    if (allowed ? state.remaining < best.remaining : state.retryAfter > best.retryAfter) {
      pick = i;
    }
  }
  return snapshot(allowed, states[pick] as PolicyState, states, reason, now);
}

/** decideOne is decide for a single policy (the common case): the same answer, no loop. */
function decideOne(
  p: Policy,
  reply: StoreReply,
  cost: number,
  reason: DecisionReason,
  now: number,
  allowed: boolean,
): Decision {
  let tokens = reply[2] as number;
  const resetAt = (reply[3] as number) + p.interval;
  let wait = 0;
  if (!allowed) {
    scratch.tokens = tokens;
    scratch.refilledAt = reply[3] as number;
    wait = retryAfter(p, scratch, cost, now);
    if (tokens < 0) tokens = 0;
  }
  const state = policyState(p, tokens, resetAt, wait);
  return snapshot(allowed, state, [state], reason, now);
}

/**
 * decideBlocked answers a request a block denied: every policy waits for the
 * block's end, or for its own bucket when that is later; the reported
 * policy is the one whose own bucket waits longest (the first listed on a
 * tie), so a block started by a policy's blockFor reports that policy.
 */
function decideBlocked(
  list: readonly Policy[],
  reply: StoreReply,
  cost: number,
  now: number,
): Decision {
  const n = list.length;
  const left = Math.min(MAX, Math.max(1, (reply[2 + 2 * n] as number) - now));
  const states: PolicyState[] = new Array(n);
  let pick = 0;
  let longest = -1;
  for (let i = 0; i < n; i++) {
    const p = list[i] as Policy;
    scratch.tokens = reply[2 + 2 * i] as number;
    scratch.refilledAt = reply[3 + 2 * i] as number;
    const wait = retryAfter(p, scratch, cost, now);
    if (wait > longest) {
      longest = wait;
      pick = i;
    }
    states[i] = policyState(
      p,
      Math.max(scratch.tokens, 0),
      scratch.refilledAt + p.interval,
      Math.max(wait, left),
    );
  }
  return snapshot(false, states[pick] as PolicyState, states, "blocked", now);
}

/**
 * charge applies one request of `cost` to the already refilled `states`, all
 * or nothing, writing the store reply into `out`. Memory-backed stores share it.
 */
export function charge(
  states: readonly BucketState[],
  count: number,
  cost: number,
  spend: boolean,
  now: number,
  out: number[],
): boolean {
  let allowed = true;
  for (let i = 0; i < count; i++) {
    if ((states[i] as BucketState).tokens < cost) allowed = false;
  }
  out[0] = now;
  out[1] = allowed ? 1 : 0;
  for (let i = 0; i < count; i++) {
    const s = states[i] as BucketState;
    if (allowed && spend) s.tokens -= cost;
    out[2 + 2 * i] = s.tokens;
    out[3 + 2 * i] = s.refilledAt;
  }
  return allowed;
}

/**
 * RepeatMemo answers a denial that repeats the last one exactly (same key,
 * policies, cost and store reply: a client hammering within one clock tick)
 * with the same Decision, frozen, instead of building an equal one: `decide`
 * is pure, so the answer is the same; only the allocation is saved. Allowed
 * decisions always differ (the tokens move), so they are never remembered.
 */
export class RepeatMemo {
  #key: string | undefined;
  #list: readonly Policy[] | undefined;
  #cost = 0;
  readonly #reply: number[] = [];
  #decision: Decision | undefined;
  #frozen = false;

  decide(key: string, list: readonly Policy[], reply: StoreReply, cost: number): Decision {
    const last = this.#decision;
    if (
      reply[1] === 0 &&
      last !== undefined &&
      key === this.#key &&
      list === this.#list &&
      cost === this.#cost &&
      this.#same(reply)
    ) {
      if (!this.#frozen) this.#freeze(last);
      return last;
    }
    const d = decide(list, reply, cost, "store");
    if (d.allowed) return d;
    this.#key = key;
    this.#list = list;
    this.#cost = cost;
    this.#decision = d;
    this.#frozen = false;
    const copy = this.#reply;
    copy.length = reply.length;
    for (let i = 0; i < reply.length; i++) copy[i] = reply[i] as number;
    return d;
  }

  /** freeze makes a Decision given out more than once read-only, its states and their list too. */
  #freeze(last: Decision): void {
    for (const state of last.policies) Object.freeze(state);
    Object.freeze(last.policies);
    Object.freeze(last);
    this.#frozen = true;
  }

  #same(reply: StoreReply): boolean {
    const copy = this.#reply;
    const n = reply.length;
    if (copy.length !== n) return false;
    // One policy (the common case): four numbers, compared without a loop.
    if (n === 4) {
      return (
        copy[0] === reply[0] && copy[1] === reply[1] && copy[2] === reply[2] && copy[3] === reply[3]
      );
    }
    for (let i = 0; i < n; i++) if (copy[i] !== reply[i]) return false;
    return true;
  }
}
