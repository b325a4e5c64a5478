// Every failure xpcbus reports is an XpcbusError with a stable string `code`.
// The codes that travel on the wire are listed in docs/PROTOCOL.md; the
// broker and the SDK share this file so both sides name failures alike.

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
  "code_signing_failed",
  "connection_denied",
  "permission_denied",
  "shutdown",
  "internal",
] as const;

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/**
 * Codes raised only inside the SDK, never sent by the broker in `err`.
 * `responder_error` travels between SDKs inside a reply's payload
 * (docs/PROTOCOL.md, Appendix A, "Responder errors"), not as a broker code.
 */
export type LocalErrorCode =
  | "not_connected"
  | "connection_failed"
  | "disconnected"
  | "closed"
  | "buffer_full"
  | "invalid_argument"
  | "native_unavailable"
  | "broker_running"
  | "socket_unusable"
  | "transport_unavailable"
  | "responder_error"
  | "callback_failed"
  | "drain_timeout";

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

/** The broker refused an operation; `code` is the broker's wire code. */
export class BrokerError extends XpcbusError {
  constructor(code: WireErrorCode, reason: string) {
    super(code, reason);
    this.name = "BrokerError";
  }
}

/** A request found no subscriber to answer it. */
export class NoRespondersError extends BrokerError {
  constructor(reason: string) {
    super("no_responders", reason);
    this.name = "NoRespondersError";
  }
}

/** A request was not answered in time. */
export class RequestTimeoutError extends BrokerError {
  constructor(reason: string) {
    super("timeout", reason);
    this.name = "RequestTimeoutError";
  }
}

/** The responder chosen for a request disconnected before it answered. */
export class ResponderGoneError extends BrokerError {
  constructor(reason: string) {
    super("responder_gone", reason);
    this.name = "ResponderGoneError";
  }
}

/**
 * The broker refused this client for a reason retrying will not change
 * (PERMANENT_REFUSAL_CODES): the policy no longer admits it, its code
 * signature fails, or the broker speaks another protocol version. The client
 * stops reconnecting and closes with this error; `reason` is the broker's.
 */
export class ConnectionRefusedError extends BrokerError {
  readonly reason: string;

  constructor(code: PermanentRefusalCode, reason: string) {
    super(code, `the broker refused this client: ${reason}`);
    this.name = "ConnectionRefusedError";
    this.reason = reason;
  }
}

/**
 * The responder's handler failed (it threw, or returned a value that cannot be
 * sent); the message is the handler's. It reaches the requester as a reply
 * (docs/PROTOCOL.md, Appendix A, "Responder errors"), so it comes at once
 * rather than as a timeout.
 */
export class ResponderError extends XpcbusError {
  constructor(message: string) {
    super("responder_error", message);
    this.name = "ResponderError";
  }
}

/**
 * A subscription, watch or respond() callback of this process threw (or its
 * promise rejected). Reported through the client's `callbackError` event, never
 * thrown: `cause` is what the callback threw, and the subscription goes on.
 */
export class CallbackError extends XpcbusError {
  /** Which kind of callback failed. */
  readonly source: "subscription" | "watch" | "responder";
  /** The subscription's subject, or the watched name. */
  readonly subject: string;

  constructor(source: "subscription" | "watch" | "responder", subject: string, cause: unknown) {
    super("callback_failed", `a ${source} callback on "${subject}" threw: ${describeThrown(cause)}`, { cause });
    this.name = "CallbackError";
    this.source = source;
    this.subject = subject;
  }
}

/** drain() did not finish within its timeout; the client was closed anyway. */
export class DrainTimeoutError extends XpcbusError {
  constructor(timeoutMs: number) {
    super("drain_timeout", `drain did not finish within ${timeoutMs} ms; the client was closed anyway`);
    this.name = "DrainTimeoutError";
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

/** The broker could not be reached (no socket, refused, or it said bye). */
export class ConnectionError extends XpcbusError {
  constructor(code: "connection_failed" | "disconnected" | "not_connected", message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = "ConnectionError";
  }
}

/** The client was closed; nothing more can be sent through it. */
export class ClosedError extends XpcbusError {
  constructor(message = "the client is closed") {
    super("closed", message);
    this.name = "ClosedError";
  }
}

/** The bounded buffer that holds publishes while reconnecting is full. */
export class BufferFullError extends XpcbusError {
  constructor(message: string) {
    super("buffer_full", message);
    this.name = "BufferFullError";
  }
}

/** Maps an `err` frame to the most specific error class. */
export function brokerErrorFromWire(code: unknown, reason: unknown): BrokerError {
  const text = typeof reason === "string" ? reason : "the broker gave no reason";
  if (!isWireErrorCode(code)) return new BrokerError("internal", `unrecognised error code ${String(code)}: ${text}`);
  switch (code) {
    case "no_responders":
      return new NoRespondersError(text);
    case "timeout":
      return new RequestTimeoutError(text);
    case "responder_gone":
      return new ResponderGoneError(text);
    case "connection_denied":
    case "code_signing_failed":
    case "unsupported_version":
      return new ConnectionRefusedError(code, text);
    default:
      return new BrokerError(code, text);
  }
}

/** The message of whatever a callback threw: an Error's message, else the value as text. */
function describeThrown(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    return typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
