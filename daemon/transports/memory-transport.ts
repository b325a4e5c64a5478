// An in-memory transport: clients and the broker in one process, with no
// socket and no second process. It is both ends of the pair: the broker side
// (a ServerTransport that attaches a PeerLink per connection) and the client
// side (a ClientTransport that `connect({ transport })` takes). What crosses is
// what a Unix socket carries: every op and every message is framed with
// encodeFrame and read back by a FrameDecoder, so the wire contract
// (docs/PROTOCOL.md, "Frames") is exercised; only the bytes' path is a queue.
//
// This is how the broker's logic is tested in milliseconds (as aedes tests its
// broker over a duplex pair); real sockets and processes stay for what only
// they can show (identity, crashes, slow sockets). Delivery is always in a
// later turn of the event loop (setImmediate), never inside the call that
// sent, as a socket's would be: a broker answering inside a client's send(),
// or a client's handler running inside the broker's routing, would hide
// ordering bugs that real transports expose.

import type { ClientConnection, ClientConnectionHandlers, ClientTransport } from "../../client-sdk/index.js";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, InvalidArgumentError, type ClientOp } from "../../protocol/index.js";
import type { Outbound, PeerIdentity, PeerInbound, PeerLink, WireEncoder } from "../core/index.js";
import { OutboundQueue } from "./outbound-queue.js";
import type { BrokerAttachment, ServerTransport } from "./server-transport.js";
import { streamEncoder } from "./unix-peer-link.js";

export interface MemoryTransportOptions {
  /**
   * Largest frame body the broker side accepts from a client. Default: the
   * attached broker's `limits.maxFrameBytes`, as the daemon gives its Unix
   * socket, else DEFAULT_MAX_FRAME_BYTES.
   */
  maxFrameBytes?: number;
  /**
   * Who every connection's peer is, unless connect() says otherwise. Default:
   * this process (its pid, uid, gid and executable), which is what a peer in
   * the broker's own process is; `method` is "memory".
   */
  identity?: PeerIdentity;
  /** What `address` says (in the SDK's error messages). Default "memory". */
  address?: string;
  /**
   * Frames the broker's messages. Default: the encoder the Unix transport
   * shares among its peers, so a message fanned out to both is framed once.
   * A test may pass its own to count encodings.
   */
  encoder?: WireEncoder<Buffer>;
}

const OPTION_NAMES = ["maxFrameBytes", "identity", "address", "encoder"];

/**
 * Largest frame the client side accepts from the broker: 16x the default
 * frame, as the SDK's Unix transport (a `status` answer of a full broker is a
 * few MiB; a broker may be configured with larger payloads).
 */
export const MEMORY_MAX_INBOUND_FRAME_BYTES = 16 * DEFAULT_MAX_FRAME_BYTES;

/**
 * Bytes a client may have sent but not yet delivered before send() returns
 * false, as a socket's write buffer would (Node's default high-water mark).
 */
export const MEMORY_CLIENT_HIGH_WATER_BYTES = 16 * 1024;

/** Bytes taken from the broker side's queue per read, as a socket read would. */
const READ_BYTES = 256 * 1024;

const encodeDropped = (count: number, total: number): Buffer => encodeFrame({ op: "dropped", count, total });

function processIdentity(): PeerIdentity {
  return {
    pid: process.pid,
    uid: process.getuid?.() ?? null,
    gid: process.getgid?.() ?? null,
    // The peer is this very process: its executable is known, not inferred from a pid.
    exe: process.execPath,
    exeVerified: true,
    method: "memory",
  };
}

function refused(reason: string): Error {
  return Object.assign(new Error(`connect ECONNREFUSED ${reason}`), { code: "ECONNREFUSED" });
}

/**
 * One connection: both directions between a client and the broker. Bytes go
 * into a direction's queue and are delivered by one pump per turn, so neither
 * side's code ever runs inside the other's call.
 */
class MemoryPair implements PeerLink {
  readonly transport = "memory";
  readonly identity: PeerIdentity;
  bytesSent = 0;
  readonly #handlers: ClientConnectionHandlers;
  readonly #encoder: WireEncoder<Buffer>;
  readonly #gone: (pair: MemoryPair) => void;
  #inbound: PeerInbound | undefined;
  readonly #upDecoder: FrameDecoder;
  readonly #downDecoder = new FrameDecoder(MEMORY_MAX_INBOUND_FRAME_BYTES);
  /** Client → broker bytes not yet delivered. */
  #up: Buffer[] = [];
  upBytes = 0;
  /** The client said all it will (close()); the broker sees the end after what came before it. */
  #upEnded = false;
  #upEndSeen = false;
  /** The broker side could not read the client's stream: nothing more from it is read. */
  #upBroken = false;
  /** Broker → client frames not yet delivered; the oldest messages droppable for a slow reader. */
  readonly #down = new OutboundQueue(encodeDropped);
  /** The broker side closed the link: what it queued goes out, then the connection ends. */
  #closing = false;
  /** Either side destroyed the connection: nothing more is delivered. */
  #aborted = false;
  #failure: Error | undefined;
  #finished = false;
  #scheduled = false;
  #drainWaiters: Array<() => void> = [];

  constructor(identity: PeerIdentity, maxFrameBytes: number, encoder: WireEncoder<Buffer>, handlers: ClientConnectionHandlers, gone: (pair: MemoryPair) => void) {
    this.identity = identity;
    this.#encoder = encoder;
    this.#upDecoder = new FrameDecoder(maxFrameBytes);
    this.#handlers = handlers;
    this.#gone = gone;
  }

  attach(broker: BrokerAttachment): void {
    this.#inbound = broker.attach(this);
  }

  get finished(): boolean {
    return this.#finished;
  }

  // ---- PeerLink (the broker side) ----

  send(message: Outbound): number {
    if (this.#closing || this.#aborted) return 0;
    const frame = message.encodedFor(this.#encoder);
    this.#down.push(frame, message.message.op === "msg");
    this.#schedule();
    return this.#down.messageBytes;
  }

  dropOldest(bytes: number): number {
    return this.#down.dropOldest(bytes);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#schedule();
  }

  // ---- the client side ----

  write(bytes: Buffer): boolean {
    if (this.#upEnded || this.#aborted || this.#finished) return false;
    this.#up.push(bytes);
    this.upBytes += bytes.length;
    this.#schedule();
    return this.upBytes < MEMORY_CLIENT_HIGH_WATER_BYTES;
  }

  drained(): Promise<void> {
    if (this.upBytes < MEMORY_CLIENT_HIGH_WATER_BYTES || this.#finished) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  end(): void {
    if (this.#upEnded) return;
    this.#upEnded = true;
    this.#schedule();
  }

  abort(failure?: Error): void {
    if (this.#aborted || this.#finished) return;
    this.#aborted = true;
    this.#failure ??= failure;
    this.#up = [];
    this.upBytes = 0;
    this.#schedule();
  }

  // ---- delivery ----

  #schedule(): void {
    if (this.#scheduled || this.#finished) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#finished) return;
    const inbound = this.#inbound as PeerInbound;
    if (!this.#aborted) {
      this.#deliverUp(inbound);
      this.#deliverDown();
    }
    if (this.#aborted || (this.#closing && this.#down.isEmpty)) this.#finish(inbound);
  }

  #deliverUp(inbound: PeerInbound): void {
    if (this.#up.length > 0) {
      const chunk = this.#up.length === 1 ? (this.#up[0] as Buffer) : Buffer.concat(this.#up);
      this.#up = [];
      this.upBytes = 0;
      for (const resolve of this.#drainWaiters.splice(0)) resolve();
      // The broker side stops reading once its link closed (the session is gone), as a socket's reader would.
      if (!this.#upBroken && !this.#closing) {
        const fault = this.#upDecoder.push(chunk, (map, bytes) => inbound.message(map, bytes));
        if (fault !== undefined) {
          this.#upBroken = true;
          inbound.fault(fault.code, fault.reason);
        }
      }
    }
    if (this.#upEnded && !this.#upEndSeen) {
      this.#upEndSeen = true;
      if (!this.#upBroken && !this.#closing) {
        const fault = this.#upDecoder.end();
        if (fault !== undefined) {
          this.#upBroken = true;
          inbound.fault(fault.code, fault.reason);
        }
      }
      // A peer that half-closes has said all it will: the broker side finishes too (as the Unix transport does).
      this.close();
    }
  }

  #deliverDown(): void {
    const chunks: Buffer[] = [];
    for (let bytes = this.#down.take(READ_BYTES); bytes !== undefined; bytes = this.#down.take(READ_BYTES)) chunks.push(bytes);
    if (chunks.length === 0) return;
    const chunk = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    this.bytesSent += chunk.length;
    const fault = this.#downDecoder.push(chunk, (map) => {
      if (!this.#aborted) this.#handlers.message(map);
    });
    if (fault !== undefined) this.abort(new Error(`unreadable frame from the broker (${fault.code}): ${fault.reason}`));
  }

  #finish(inbound: PeerInbound): void {
    this.#finished = true;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    this.#gone(this);
    inbound.ended();
    this.#handlers.closed(this.#failure);
  }
}

/** The client's end of one in-memory connection: a ClientConnection, plus what raw-peer tests need. */
export interface MemoryConnection extends ClientConnection {
  /** Sends bytes as they are, for tests of what no good client sends (broken frames). */
  sendBytes(bytes: Uint8Array): boolean;
  /** Drops the connection at once, as a socket's destroy() or a crashed client: nothing more is delivered either way. */
  destroy(): void;
  /** True once the connection has ended (its `closed` handler has run). */
  readonly destroyed: boolean;
}

class MemoryClientConnection implements MemoryConnection {
  readonly #pair: MemoryPair;
  /**
   * The broker is in this process, so it runs as this process's uid: known
   * without asking the kernel, which lets the client map its notify table
   * (docs/SECURITY.md, "Trusting the broker").
   */
  readonly brokerUid: number = typeof process.geteuid === "function" ? process.geteuid() : 0;

  constructor(pair: MemoryPair) {
    this.#pair = pair;
  }

  /** Frames and sends one op; false when more than the high-water mark waits undelivered. */
  send(op: ClientOp): boolean {
    return this.#pair.write(encodeFrame(op));
  }

  sendBytes(bytes: Uint8Array): boolean {
    return this.#pair.write(Buffer.from(bytes));
  }

  get bufferedBytes(): number {
    return this.#pair.upBytes;
  }

  drained(): Promise<void> {
    return this.#pair.drained();
  }

  /** Half-closes, as a socket's end(): what was sent is delivered, then what the broker still sends, then the close. */
  close(): void {
    this.#pair.end();
  }

  destroy(): void {
    this.#pair.abort();
  }

  get destroyed(): boolean {
    return this.#pair.finished;
  }
}

/**
 * Client and broker in one process over the real frame codec. Start it with
 * the broker, then give it to the SDK:
 *
 * ```ts
 * const broker = new Broker();
 * const memory = new MemoryTransport();
 * await memory.start(broker);
 * const client = await connect({ transport: memory });
 * ```
 *
 * `connect(handlers)` is the raw ClientTransport method (op maps in and out);
 * `as(identity)` is a ClientTransport whose peers have another identity (a
 * policy's other uid or executable).
 */
export class MemoryTransport implements ServerTransport, ClientTransport {
  readonly name = "memory";
  readonly address: string;
  readonly #identity: PeerIdentity;
  readonly #maxFrameBytes: number | undefined;
  readonly #encoder: WireEncoder<Buffer>;
  readonly #pairs = new Set<MemoryPair>();
  #broker: BrokerAttachment | undefined;
  #frameLimit = DEFAULT_MAX_FRAME_BYTES;
  #accepting = false;
  #drainWaiters: Array<() => void> = [];

  constructor(options: MemoryTransportOptions = {}) {
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key)) throw new InvalidArgumentError(`unknown memory transport option "${key}"; known: ${OPTION_NAMES.join(", ")}`);
    }
    const { maxFrameBytes, identity, address, encoder } = options;
    if (maxFrameBytes !== undefined && (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1)) {
      throw new InvalidArgumentError(`option "maxFrameBytes" must be a positive integer (got ${String(maxFrameBytes)})`);
    }
    this.#maxFrameBytes = maxFrameBytes;
    this.#identity = identity ?? processIdentity();
    this.address = address ?? "memory";
    this.#encoder = encoder ?? streamEncoder;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#pairs.size;
  }

  async start(broker: BrokerAttachment): Promise<void> {
    this.#broker = broker;
    const limits = (broker as { limits?: { maxFrameBytes?: unknown } }).limits;
    this.#frameLimit = this.#maxFrameBytes ?? (typeof limits?.maxFrameBytes === "number" ? limits.maxFrameBytes : DEFAULT_MAX_FRAME_BYTES);
    this.#accepting = true;
  }

  async stopAccepting(): Promise<void> {
    this.#accepting = false;
  }

  drained(): Promise<void> {
    if (this.#pairs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Stops accepting; there is nothing else to release. */
  close(): void {
    this.#accepting = false;
  }

  /**
   * Opens one connection; the broker attaches it at once (and may refuse it,
   * with an `err` delivered like any other). Rejects with ECONNREFUSED when
   * the transport is not started or has stopped accepting.
   */
  connect(handlers: ClientConnectionHandlers, options: { identity?: PeerIdentity } = {}): Promise<MemoryConnection> {
    const broker = this.#broker;
    if (broker === undefined || !this.#accepting) return Promise.reject(refused(`${this.address}: the memory transport is not accepting`));
    const pair = new MemoryPair(options.identity ?? this.#identity, this.#frameLimit, this.#encoder, handlers, (gone) => {
      this.#pairs.delete(gone);
      if (this.#pairs.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
    });
    this.#pairs.add(pair);
    pair.attach(broker);
    return Promise.resolve(new MemoryClientConnection(pair));
  }

  /** A ClientTransport over this one whose connections have `identity` (for policy tests). */
  as(identity: PeerIdentity): ClientTransport & { connect(handlers: ClientConnectionHandlers): Promise<MemoryConnection> } {
    return { address: this.address, connect: (handlers) => this.connect(handlers, { identity }) };
  }
}
