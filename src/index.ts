export type { BucketState } from "./core/bucket.js";
export type { Decision, DecisionReason, PolicyState, StoreReply } from "./core/decision.js";
export {
  ConfigError,
  CostError,
  FloodgateError,
  isFloodgateError,
  WaitTimeoutError,
} from "./core/errors.js";
export type { Duration, Policy, PolicyInput } from "./core/policy.js";
export {
  type ConsumeOptions,
  RateLimiter,
  type RateLimiterOptions,
  type WaitOptions,
} from "./limiter.js";
export {
  type EvictionKind,
  MemoryStore,
  type MemoryStoreOptions,
  type MemoryStoreStats,
} from "./stores/memory-store.js";
export type { Clock, Store } from "./stores/store.js";
