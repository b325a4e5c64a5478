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

/**
 * Bytes handed to the socket before further frames wait in the link's own
 * queue, where the oldest messages can still be dropped for a slow reader.
 * What the socket holds is out of reach; this keeps it small.
 */
export const SOCKET_HIGH_WATER_BYTES = 256 * 1024;

/** Shared by every Unix peer, so a message fanned out to many is framed once. */
export const streamEncoder: WireEncoder<Buffer> = {
  encode: (message: BrokerMsg) => encodeFrame(message),
  sizeOf: (frame: Buffer) => frame.length,
};

interface Pending {
  readonly frame: Buffer;
  readonly droppable: boolean;
}

export class UnixPeerLink implements PeerLink {
  readonly transport = "unix";
  readonly identity: PeerIdentity;
  bytesSent = 0;
  readonly #socket: Socket;
  #closing = false;
  /** Frames waiting behind the socket's high-water mark, oldest first. */
  #pending: Pending[] = [];
  #pendingHead = 0;
  #pendingBytes = 0;

  constructor(socket: Socket, identity: PeerIdentity) {
    this.#socket = socket;
    this.identity = identity;
    socket.on("drain", () => this.#flush());
  }

  send(message: Outbound): number {
    if (this.#socket.destroyed || this.#socket.writableEnded) return 0;
    const frame = message.encodedFor(streamEncoder);
    if (this.#pendingBytes === 0 && this.#socket.writableLength < SOCKET_HIGH_WATER_BYTES) {
      this.#socket.write(frame);
      this.bytesSent += frame.length;
    } else {
      this.#pending.push({ frame, droppable: message.message.op === "msg" });
      this.#pendingBytes += frame.length;
    }
    return this.#socket.writableLength + this.#pendingBytes;
  }

  dropOldest(bytes: number): number {
    // From the head, and only as far as needed: under a sustained overload
    // this runs once per delivery, so it must not scan the whole queue.
    let freed = 0;
    let dropped = 0;
    let i = this.#pendingHead;
    const kept: Pending[] = [];
    while (i < this.#pending.length && freed < bytes) {
      const item = this.#pending[i++] as Pending;
      if (item.droppable) {
        freed += item.frame.length;
        dropped++;
      } else {
        kept.push(item);
      }
    }
    this.#pendingHead = i - kept.length;
    kept.forEach((item, k) => (this.#pending[this.#pendingHead + k] = item));
    this.#pendingBytes -= freed;
    this.#compact();
    return dropped;
  }

  #compact(): void {
    if (this.#pendingHead === this.#pending.length) {
      this.#pending = [];
      this.#pendingHead = 0;
    } else if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
  }

  #flush(): void {
    while (this.#pendingHead < this.#pending.length && this.#socket.writableLength < SOCKET_HIGH_WATER_BYTES) {
      const { frame } = this.#pending[this.#pendingHead++] as Pending;
      this.#pendingBytes -= frame.length;
      this.#socket.write(frame);
      this.bytesSent += frame.length;
    }
    this.#compact();
    if (this.#closing && this.#pendingBytes === 0 && !this.#socket.writableEnded) this.#socket.end();
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    // What waits in the link goes out first (flushed on drain), then the end.
    if (this.#pendingBytes === 0) this.#socket.end();
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
