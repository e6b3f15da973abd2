export type { Clock } from "./clock.js";
export type { BucketState } from "./core/bucket.js";
export type { Decision, DecisionReason, PolicyState, StoreReply } from "./core/decision.js";
export {
  ClosedError,
  ConfigError,
  CostError,
  FloodgateError,
  isFloodgateError,
  WaitTimeoutError,
} from "./core/errors.js";
export type { Duration, Policy, PolicyInput } from "./core/policy.js";
export type {
  AdjustOperation,
  LimiterEventMap,
  LimiterEventName,
  LimiterEvents,
  LimiterListener,
  Outcome,
  StoreErrorKind,
} from "./events.js";
export {
  type HeaderKeyOptions,
  type HeaderMode,
  type IpKeyOptions,
  type Key,
  type KeyFunction,
  keys,
  type LimitedBody,
  type Mode,
  type PoliciesFunction,
  type PolicyChoice,
  type RateLimitOptions,
  type RequestReader,
} from "./http/index.js";
export {
  type BreakerState,
  type ConsumeOptions,
  type LimiterStats,
  RateLimiter,
  type RateLimiterOptions,
  type Reservation,
  type Settlement,
  type StoreErrorMode,
  type WaitOptions,
} from "./limiter.js";
export type { Logger, LogMethod } from "./logger.js";
export {
  type EvictionKind,
  type EvictionListener,
  MemoryStore,
  type MemoryStoreOptions,
  type MemoryStoreStats,
} from "./stores/memory-store.js";
export type {
  IORedisLike,
  NodeRedisLike,
  RedisClientLike,
} from "./stores/redis/clients.js";
export {
  RedisStore,
  type RedisStoreOptions,
  type RedisWarningCode,
} from "./stores/redis/redis-store.js";
export type { Store } from "./stores/store.js";
export {
  StoreReplyError,
  StoreTimeoutError,
  StoreUnavailableError,
} from "./stores/store-errors.js";
export type { TopKey } from "./top-keys.js";
