// The client side of a transport: connect to the broker, send op maps, get
// message maps back. The Unix socket is one implementation; XPC is the other.

import type { ClientOp } from "../protocol/index.js";

export interface ClientConnectionHandlers {
  /** One message map from the broker. */
  message(map: Record<string, unknown>): void;
  /** The connection is gone; `error` says why when it was not a clean close. */
  closed(error?: Error): void;
}

export interface ClientConnection {
  /**
   * Sends one op. Returns false when the transport's buffer is above its
   * high-water mark (the caller may wait for `drained()`).
   */
  send(op: ClientOp): boolean;
  /** Bytes accepted by send() but not yet handed to the OS. */
  readonly bufferedBytes: number;
  /** Resolves when the buffer has drained below the high-water mark (or the connection closed). */
  drained(): Promise<void>;
  /**
   * The broker's uid as the transport read it from the connection and
   * trusted it, before anything was sent (the Unix socket); undefined when
   * the transport checks no uid. The Linux notify table is mapped only when
   * it is known, and only a table owned by it.
   */
  readonly brokerUid?: number;
  /** Flushes and closes. */
  close(): void;
}

export interface ClientTransport {
  /** Where it connects: a socket path, a mach service name. */
  readonly address: string;
  /** Opens one connection; rejects with the OS's reason when the broker is unreachable. */
  connect(handlers: ClientConnectionHandlers): Promise<ClientConnection>;
}
