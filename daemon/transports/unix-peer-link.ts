// One accepted Unix socket as the broker core sees it: frames in, frames out.

import type { Socket } from "node:net";
import type { BrokerMsg } from "../../protocol/index.js";
import { encodeFrame, FrameDecoder, TurnWriter } from "../../protocol/index.js";
import type { Outbound, PeerIdentity, PeerInbound, PeerLink, WireEncoder } from "../core/peer-link.js";
import { OutboundQueue } from "./outbound-queue.js";

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

/**
 * Answers (everything but `msg`) waiting for a peer before the broker stops
 * reading from it: answers are never dropped, and a peer that sends ops
 * without reading what they answer is held back by its own socket instead of
 * growing the broker (docs/PROTOCOL.md §9.7). Reading resumes below half.
 */
export const MAX_QUEUED_ANSWER_BYTES = 1024 * 1024;

/** Shared by every Unix peer, so a message fanned out to many is framed once. */
export const streamEncoder: WireEncoder<Buffer> = {
  encode: (message: BrokerMsg) => encodeFrame(message),
  sizeOf: (frame: Buffer) => frame.length,
};

const encodeDropped = (count: number, total: number): Buffer => encodeFrame({ op: "dropped", count, total });

export class UnixPeerLink implements PeerLink {
  readonly transport = "unix";
  readonly identity: PeerIdentity;
  bytesSent = 0;
  readonly #socket: Socket;
  #closing = false;
  /** Frames waiting behind the socket's high-water mark. */
  readonly #queue = new OutboundQueue(encodeDropped);
  #inputPaused = false;
  /** Gathers what one event-loop turn produces for the peer into one write (protocol/turn-writer.ts). */
  readonly #writer: TurnWriter;

  constructor(socket: Socket, identity: PeerIdentity) {
    this.#socket = socket;
    this.identity = identity;
    this.#writer = new TurnWriter(socket);
    socket.on("drain", () => this.#flush());
  }

  /** Every frame written to the peer goes through here: at once, or with the rest of this turn. */
  #write(bytes: Buffer): void {
    this.#writer.write(bytes);
    this.bytesSent += bytes.length;
  }

  send(message: Outbound): number {
    if (this.#socket.destroyed || this.#socket.writableEnded) return 0;
    const frame = message.encodedFor(streamEncoder);
    if (this.#queue.isEmpty && this.#writer.bufferedBytes < SOCKET_HIGH_WATER_BYTES) {
      this.#write(frame);
      return 0;
    }
    // Queued only while the socket is past its mark, so a "drain" is due.
    const droppable = message.message.op === "msg";
    this.#queue.push(frame, droppable);
    if (!droppable && !this.#inputPaused && this.#queue.answerBytes > MAX_QUEUED_ANSWER_BYTES) {
      this.#inputPaused = true;
      this.#socket.pause();
    }
    return this.#queue.messageBytes;
  }

  get queuedBytes(): number {
    return this.#queue.messageBytes + this.#queue.answerBytes + this.#writer.bufferedBytes;
  }

  dropOldest(bytes: number): number {
    return this.#queue.dropOldest(bytes);
  }

  #flush(): void {
    while (this.#writer.bufferedBytes < SOCKET_HIGH_WATER_BYTES) {
      const bytes = this.#queue.take(SOCKET_HIGH_WATER_BYTES);
      if (bytes === undefined) break;
      this.#write(bytes);
    }
    if (this.#inputPaused && this.#queue.answerBytes <= MAX_QUEUED_ANSWER_BYTES / 2) {
      this.#inputPaused = false;
      this.#socket.resume();
    }
    if (this.#closing && this.#queue.isEmpty && !this.#socket.writableEnded) this.#end();
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    // What waits in the link goes out first (flushed on drain), then the end.
    if (this.#queue.isEmpty) this.#end();
    const timer = setTimeout(() => this.#socket.destroy(), CLOSE_FLUSH_TIMEOUT_MS);
    timer.unref();
    this.#socket.once("close", () => clearTimeout(timer));
  }

  /** Ends the stream after what this turn gathered for it. */
  #end(): void {
    this.#writer.flush();
    this.#socket.end();
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
