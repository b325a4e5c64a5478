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

/** Codes raised only inside the SDK, never sent by the broker. */
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
  | "transport_unavailable";

export type ErrorCode = WireErrorCode | LocalErrorCode;

const wireCodes: ReadonlySet<string> = new Set(WIRE_ERROR_CODES);

export function isWireErrorCode(code: unknown): code is WireErrorCode {
  return typeof code === "string" && wireCodes.has(code);
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

/** A subject (or queue group name) broke the rules of docs/PROTOCOL.md, "Subjects". */
export class InvalidSubjectError extends XpcbusError {
  constructor(reason: string) {
    super("invalid_subject", reason);
    this.name = "InvalidSubjectError";
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
    default:
      return new BrokerError(code, text);
  }
}
