// One accepted Unix socket as the broker core sees it: frames in, frames out.

import type { Socket } from "node:net";
import type { BrokerMsg } from "../../client-sdk/protocol/messages.js";
import { encodeFrame, FrameDecoder } from "../../client-sdk/protocol/frame-codec.js";
import type { Outbound, PeerIdentity, PeerInbound, PeerLink, WireEncoder } from "../core/peer-link.js";

/**
 * How long a closing connection may take to flush what is queued to it before
 * it is destroyed: a peer that stopped reading must not hold the broker's
 * shutdown or a slow-consumer cut-off hostage.
 */
export const CLOSE_FLUSH_TIMEOUT_MS = 1_000;

/** Shared by every Unix peer, so a message fanned out to many is framed once. */
export const streamEncoder: WireEncoder<Buffer> = {
  encode: (message: BrokerMsg) => encodeFrame(message),
  sizeOf: (frame: Buffer) => frame.length,
};

export class UnixPeerLink implements PeerLink {
  readonly transport = "unix";
  readonly identity: PeerIdentity;
  bytesSent = 0;
  readonly #socket: Socket;
  #closing = false;

  constructor(socket: Socket, identity: PeerIdentity) {
    this.#socket = socket;
    this.identity = identity;
  }

  send(message: Outbound): number {
    if (this.#socket.destroyed || this.#socket.writableEnded) return 0;
    const frame = message.encodedFor(streamEncoder);
    this.#socket.write(frame);
    this.bytesSent += frame.length;
    return this.#socket.writableLength;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#socket.end();
    const timer = setTimeout(() => this.#socket.destroy(), CLOSE_FLUSH_TIMEOUT_MS);
    timer.unref();
    this.#socket.once("close", () => clearTimeout(timer));
  }

  /** Feeds the socket's bytes to `inbound` until the connection ends or a frame is unreadable. */
  pump(inbound: PeerInbound, maxFrameBytes: number): void {
    const decoder = new FrameDecoder(maxFrameBytes);
    let broken = false;
    const deliver = (map: Record<string, unknown>, bytes: number): void => inbound.message(map, bytes);
    this.#socket.on("data", (chunk: Buffer) => {
      if (broken) return;
      const fault = decoder.push(chunk, deliver);
      if (fault !== undefined) {
        broken = true;
        inbound.fault(fault.code, fault.reason);
      }
    });
    this.#socket.on("end", () => {
      if (broken) return;
      const fault = decoder.end();
      if (fault !== undefined) {
        broken = true;
        inbound.fault(fault.code, fault.reason);
      }
    });
    this.#socket.on("close", () => inbound.ended());
  }
}
