// The SDK's errors: the shared base and codes come from the protocol layer;
// the classes below name what only a client meets (a broker's refusal, a lost
// connection, a full buffer, …).

import { XpcbusError, isWireErrorCode, type PermanentRefusalCode, type WireErrorCode } from "../protocol/index.js";

export {
  WIRE_ERROR_CODES,
  PERMANENT_REFUSAL_CODES,
  XpcbusError,
  InvalidArgumentError,
  InvalidSubjectError,
  InvalidQueueError,
  isWireErrorCode,
  isPermanentRefusalCode,
  type WireErrorCode,
  type LocalErrorCode,
  type ErrorCode,
  type PermanentRefusalCode,
} from "../protocol/index.js";

/** The broker refused an operation; `code` is the broker's wire code. */
export class BrokerError extends XpcbusError {
  /** The refused op's subject, when the broker named it (`err.subject`): what an unacknowledged publish's refusal is about. */
  subject?: string;

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

/** The broker could not be reached (no socket, refused, or it said bye). */
export class ConnectionError extends XpcbusError {
  constructor(code: "connection_failed" | "disconnected" | "not_connected", message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = "ConnectionError";
  }
}

/**
 * What answered on the broker's socket is not a broker this client trusts:
 * it runs as another uid than this process's, root's or the one trusted on
 * purpose (`brokerUid`, `--broker-uid`, `$XPCBUS_BROKER_UID`), or the default
 * socket's directory could have been made by someone else. Nothing was sent
 * to it. docs/SECURITY.md, "Trusting the broker".
 */
export class UntrustedBrokerError extends XpcbusError {
  /** The socket path (or directory) that was refused. */
  readonly address: string;
  /** The uid that answered on it, when it was read (undefined for a refused directory). */
  readonly brokerUid: number | undefined;

  constructor(address: string, brokerUid: number | undefined, message: string, cause?: unknown) {
    super("untrusted_broker", message, { cause });
    this.name = "UntrustedBrokerError";
    this.address = address;
    this.brokerUid = brokerUid;
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
