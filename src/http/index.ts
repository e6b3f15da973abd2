// The contract every framework adapter builds on: createRateLimit validates
// the options once, RateLimit.check decides a request, and the adapter only
// translates its request (through a RequestReader) and response.
export {
  type CheckResult,
  createRateLimit,
  RateLimit,
  type RateLimitOutcome,
} from "./handler.js";
export { type HeaderMode, retryAfterSeconds } from "./headers.js";
export {
  type HeaderKeyOptions,
  type IpKeyOptions,
  type Key,
  type KeyFunction,
  keys,
  type RequestReader,
} from "./keys.js";
export {
  DEFAULT_BODY,
  type LimitedBody,
  type LimitedResponse,
  type Mode,
  type PoliciesFunction,
  type PolicyChoice,
  type RateLimitOptions,
} from "./options.js";
export type { ProxyHeader } from "./proxy.js";
