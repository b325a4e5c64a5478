// The broker side of a transport. A transport accepts connections, wraps each
// in a PeerLink, and attaches it to whatever implements BrokerAttachment (the
// broker core). The Unix socket is one implementation; XPC is the other.

import type { PeerInbound, PeerLink } from "../core/peer-link.js";

export interface BrokerAttachment {
  attach(link: PeerLink): PeerInbound;
}

export interface ServerTransport {
  /** "unix", "xpc", … (also each PeerLink's `transport`). */
  readonly name: string;
  /** Where clients reach it: a socket path, a mach service name. */
  readonly address: string;
  /** Starts accepting; resolves once clients can connect. */
  start(broker: BrokerAttachment): Promise<void>;
  /** Stops accepting new connections and releases the address; open connections stay. */
  stopAccepting(): Promise<void>;
  /** Resolves once every accepted connection has closed. */
  drained(): Promise<void>;
  /** Releases what is left (XPC's listener) once drained. */
  close?(): void;
}
