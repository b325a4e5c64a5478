// The seam between the broker core and a transport. A transport wraps each
// accepted connection in a PeerLink and hands it to `broker.attach()`; the
// core then talks to the peer only through it. The core never sees a socket
// or an XPC connection.

import type { BrokerMsg } from "../../protocol/index.js";

/** Who is on the other end, as the transport established it at connect time. */
export interface PeerIdentity {
  pid: number | null;
  uid: number | null;
  gid: number | null;
  /** Executable path, or null when it could not be read safely. */
  exe: string | null;
  /**
   * Whether `exe` is known to be the connecting process's (pidfd, audit
   * token). False when it was read by pid alone (no pidfd could be had):
   * a process that got the pid after the peer exited could pass for it, so
   * the policy never admits on it (docs/SECURITY.md). False when `exe` is null.
   */
  exeVerified: boolean;
  /** How the identity was obtained, e.g. "so_peerpidfd", "pidfd_open", "so_peercred", "none". */
  method: string;
  /** macOS: the team identifier the peer's code is signed with (XPC peers). */
  teamId?: string | null;
  /** macOS: the peer's audit token, for code-signing requirement checks (XPC peers). */
  auditToken?: Uint8Array;
}

/** Turns a message into what a transport writes (bytes for a stream, an XPC dictionary, …). */
export interface WireEncoder<Encoded = unknown> {
  encode(message: BrokerMsg): Encoded;
  /** Size of an encoded message, counted against the peer's outbound bound. */
  sizeOf(encoded: Encoded): number;
}

/**
 * One broker → peer message, encoded at most once per encoder however many
 * peers receive it: a publish to 100 subscribers encodes one frame and hands
 * the same bytes to all 100.
 */
export class Outbound {
  readonly message: BrokerMsg;
  #encoder: WireEncoder | undefined;
  #encoded: unknown;

  constructor(message: BrokerMsg) {
    this.message = message;
  }

  encodedFor<E>(encoder: WireEncoder<E>): E {
    if (this.#encoder !== encoder) {
      this.#encoded = encoder.encode(this.message);
      this.#encoder = encoder;
    }
    return this.#encoded as E;
  }
}

export interface PeerLink {
  /** Transport name, e.g. "unix" or "xpc". */
  readonly transport: string;
  readonly identity: PeerIdentity;
  /**
   * Queues a message towards the peer. Returns the bytes of `msg` frames now
   * waiting in the link's own queue, beyond what the OS has taken: what the
   * core compares with maxOutboundBytesPerPeer (docs/PROTOCOL.md §9.7).
   */
  send(message: Outbound): number;
  /** Bytes written to the peer so far, for `status`. */
  readonly bytesSent: number;
  /**
   * Bytes waiting for the peer on the broker's side (its own queue and what
   * the socket has not yet taken), for `status`; absent where the transport
   * cannot tell (XPC hands messages to the system at once).
   */
  readonly queuedBytes?: number;
  /** Sends what is queued, then closes. Idempotent. */
  close(): void;
  /**
   * Drops the oldest queued `msg` frames (never answers) until `bytes` are
   * freed, or there are none left; returns how many it dropped. The link tells
   * the peer with one `dropped` notice written before anything else still
   * queued; drops made while a notice waits are added to it. A transport that
   * cannot take back what it queued (XPC) leaves this out.
   */
  dropOldest?(bytes: number): number;
}

/** Receives what a PeerLink's transport reads; given to the transport by `broker.attach()`. */
export interface PeerInbound {
  /** One decoded message map and the bytes it took on the wire. */
  message(map: Record<string, unknown>, wireBytes: number): void;
  /** The transport cannot make sense of the stream; the peer is told and closed. */
  fault(code: "bad_frame" | "frame_too_large" | "truncated_frame", reason: string): void;
  /** The connection is gone (closed by either side, or failed). */
  ended(): void;
}
