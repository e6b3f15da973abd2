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
  type BreakerState,
  type ConsumeOptions,
  type LimiterStats,
  RateLimiter,
  type RateLimiterOptions,
  type StoreErrorMode,
  type WaitOptions,
} from "./limiter.js";
export {
  type EvictionKind,
  MemoryStore,
  type MemoryStoreOptions,
  type MemoryStoreStats,
} from "./stores/memory-store.js";
export type {
  IORedisLike,
  NodeRedisLike,
  RedisClientLike,
} from "./stores/redis/clients.js";
export { RedisStore, type RedisStoreOptions } from "./stores/redis/redis-store.js";
export type { Clock, Store } from "./stores/store.js";
export {
  StoreReplyError,
  StoreTimeoutError,
  StoreUnavailableError,
} from "./stores/store-errors.js";
