import { FloodgateError } from "../core/errors.js";

/**
 * StoreTimeoutError: the store did not answer within its `timeout`; the
 * limiter followed `onStoreError`. The call may still run later in the store.
 */
export class StoreTimeoutError extends FloodgateError {
  override name = "StoreTimeoutError" as const;
  readonly timeout: number;
  constructor(timeout: number) {
    super(
      "ERR_FLOODGATE_STORE_TIMEOUT",
      `floodgate: the store did not answer within ${timeout} ms`,
    );
    this.timeout = timeout;
  }
}

/**
 * StoreUnavailableError: the call was not sent because the client has no
 * connection (or is still connecting), so the store never saw it.
 */
export class StoreUnavailableError extends FloodgateError {
  override name = "StoreUnavailableError" as const;
  /** `why` replaces the default "call not sent", e.g. to say what `ready()` waited for. */
  constructor(what: string, why = "call not sent") {
    super("ERR_FLOODGATE_STORE_UNAVAILABLE", `floodgate: ${what} is not connected; ${why}`);
  }
}

/**
 * StoreReplyError: the store answered something the script never returns
 * (another script under the same SHA, a proxy in the way).
 */
export class StoreReplyError extends FloodgateError {
  override name = "StoreReplyError" as const;
  constructor(reply: unknown) {
    super(
      "ERR_FLOODGATE_STORE_REPLY",
      `floodgate: unexpected reply from the store: ${String(JSON.stringify(reply)).slice(0, 200)}`,
    );
  }
}
