// Every failure xpcbus reports is an XpcbusError with a stable string `code`.
// The codes that travel on the wire are listed in docs/PROTOCOL.md; the
// broker, the SDK and the native loader share this file so all name failures
// alike. The SDK's own subclasses (BrokerError, ConnectionError, …) are in
// client-sdk/errors.ts.

/** Codes the broker sends in `err` and `bye` frames (docs/PROTOCOL.md, "Error codes"). */
export const WIRE_ERROR_CODES = [
  "bad_frame",
  "frame_too_large",
  "truncated_frame",
  "hello_required",
  "hello_timeout",
  "already_hello",
  "unsupported_version",
  "unknown_op",
  "bad_field",
  "invalid_subject",
  "invalid_queue",
  "reserved_subject",
  "payload_too_large",
  "unknown_sid",
  "duplicate_sid",
  "too_many_subscriptions",
  "too_many_requests",
  "too_many_peers",
  "no_responders",
  "timeout",
  "responder_gone",
  "slow_consumer",
  "invalid_name",
  "reserved_name",
  "not_watching",
  "too_many_watches",
  "notify_table_full",
  "notify_unavailable",
  "notify_failed",
  "retained_full",
  "store_full",
  "store_failed",
  "code_signing_failed",
  "connection_denied",
  "permission_denied",
  "shutdown",
  "internal",
] as const;

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/**
 * Codes raised only inside a process (the SDK, the daemon, the native
 * loader), never sent by the broker in `err`.
 * `responder_error` travels between SDKs inside a reply's payload
 * (docs/PROTOCOL.md, Appendix A, "Responder errors"), not as a broker code.
 * `native_unavailable`: the addon, or the part of it asked for, is missing
 * (not built, not this platform). `native_failed`: a call into the addon
 * failed, usually a system call; the NativeError (native/native-error.ts)
 * carries its `errno`. `untrusted_broker`: the SDK refused to talk to what
 * answered on the broker's socket (its uid, or the socket's directory, is not
 * one this client trusts; docs/SECURITY.md, "Trusting the broker").
 */
export type LocalErrorCode =
  | "not_connected"
  | "connection_failed"
  | "disconnected"
  | "closed"
  | "buffer_full"
  | "invalid_argument"
  | "native_unavailable"
  | "native_failed"
  | "broker_running"
  | "socket_unusable"
  | "transport_unavailable"
  | "responder_error"
  | "callback_failed"
  | "drain_timeout"
  | "store_unavailable"
  | "store_corrupt"
  | "store_newer_schema"
  | "store_unwritable"
  | "store_locked"
  | "untrusted_broker";

export type ErrorCode = WireErrorCode | LocalErrorCode;

const wireCodes: ReadonlySet<string> = new Set(WIRE_ERROR_CODES);

export function isWireErrorCode(code: unknown): code is WireErrorCode {
  return typeof code === "string" && wireCodes.has(code);
}

/**
 * Closing codes that say who the client is or what it speaks, not how the
 * broker is doing: reconnecting would be refused again the same way, so the
 * SDK stops and closes with a ConnectionRefusedError (docs/PROTOCOL.md,
 * section 10, "Retrying"). The other closing codes (`too_many_peers`,
 * `shutdown`, `hello_timeout`, `slow_consumer`, the framing faults) are about
 * this connection or the broker's load, and the SDK keeps backing off.
 */
export const PERMANENT_REFUSAL_CODES = ["connection_denied", "code_signing_failed", "unsupported_version"] as const;

export type PermanentRefusalCode = (typeof PERMANENT_REFUSAL_CODES)[number];

const permanentCodes: ReadonlySet<string> = new Set(PERMANENT_REFUSAL_CODES);

export function isPermanentRefusalCode(code: unknown): code is PermanentRefusalCode {
  return typeof code === "string" && permanentCodes.has(code);
}

export class XpcbusError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "XpcbusError";
    this.code = code;
  }
}

/** A subject broke the rules of docs/PROTOCOL.md, "Subjects". */
export class InvalidSubjectError extends XpcbusError {
  constructor(reason: string) {
    super("invalid_subject", reason);
    this.name = "InvalidSubjectError";
  }
}

/** A queue group name broke the rules of docs/PROTOCOL.md, "Subjects" (the broker's `invalid_queue`). */
export class InvalidQueueError extends XpcbusError {
  constructor(reason: string) {
    super("invalid_queue", reason);
    this.name = "InvalidQueueError";
  }
}

/** A caller passed an argument the API does not accept. */
export class InvalidArgumentError extends XpcbusError {
  constructor(reason: string) {
    super("invalid_argument", reason);
    this.name = "InvalidArgumentError";
  }
}
