// Errors from the native addon, made XpcbusErrors in one place. The addon
// throws plain Errors (exceptions are off in its C++: it sets a JS exception
// and returns); a failing system call adds `errno` (Linux) and a failing
// notify(3) call adds `status` (NOTIFY_STATUS_*). Callers wrap what it
// throws with toNativeError(), so everything above native/ sees a `code`.

import { XpcbusError } from "../protocol/index.js";

export type NativeErrorCode = "native_unavailable" | "native_failed";

export class NativeError extends XpcbusError {
  /** The errno the failing system call set, when the addon reported one. */
  readonly errno: number | undefined;
  /** macOS notify(3): the NOTIFY_STATUS_* value, when the addon reported one. */
  readonly notifyStatus: number | undefined;

  /**
   * `native_unavailable`: the addon, or the part of it asked for, is not
   * there (not built, not this platform). `native_failed`: it is there, and a
   * call into it failed (usually a system call, with `errno`).
   */
  constructor(
    code: NativeErrorCode,
    message: string,
    options: { errno?: number | undefined; notifyStatus?: number | undefined; cause?: unknown } = {},
  ) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NativeError";
    this.errno = options.errno;
    this.notifyStatus = options.notifyStatus;
  }
}

function numberProperty(value: unknown, key: string): number | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const found = (value as Record<string, unknown>)[key];
  return typeof found === "number" ? found : undefined;
}

/**
 * What the addon threw, as a NativeError (`native_failed`) with its errno or
 * notify status, and the original as `cause`. The addon's messages already
 * say what failed and on what ("cannot map notify table <path>: <strerror>");
 * `context`, when given, leads the message for a caller that knows more.
 * A NativeError passes through unchanged. Anything else the addon throws
 * (a TypeError for an argument of the wrong type: our bug, not the system's)
 * is wrapped the same way.
 */
export function toNativeError(thrown: unknown, context?: string): NativeError {
  if (thrown instanceof NativeError) return thrown;
  const detail = thrown instanceof Error ? thrown.message : String(thrown);
  return new NativeError("native_failed", context === undefined ? detail : `${context}: ${detail}`, {
    errno: numberProperty(thrown, "errno"),
    notifyStatus: numberProperty(thrown, "status"),
    cause: thrown,
  });
}
