// A peer that speaks the wire protocol by hand, to send what no well-behaved
// client would: over a raw Unix socket (a path), or over the in-memory
// transport (a MemoryTransport) where the same frames go through the same
// codec with no socket.
import { createConnection, type Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../../protocol/index.js";
import type { MemoryConnection, MemoryTransport } from "../index.js";

/** Where a raw peer connects: a Unix socket path, or a started MemoryTransport. */
export type RawTarget = string | MemoryTransport;

export class RawPeer {
  readonly received: Array<Record<string, unknown>> = [];
  readonly closed: Promise<void>;
  readonly #socket: Socket | undefined;
  readonly #memory: MemoryConnection | undefined;
  #waiters: Array<() => void> = [];

  private constructor(socket: Socket | undefined, memory: MemoryConnection | undefined, closed: Promise<void>) {
    this.#socket = socket;
    this.#memory = memory;
    this.closed = closed;
  }

  /** The Unix socket (real-socket peers only: pause/resume to play a slow reader). */
  get socket(): Socket {
    if (this.#socket === undefined) throw new Error("this raw peer is on the memory transport; it has no socket");
    return this.#socket;
  }

  #got(m: Record<string, unknown>): void {
    this.received.push(m);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  static connect(target: RawTarget): Promise<RawPeer> {
    if (typeof target !== "string") return RawPeer.#connectMemory(target);
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: target });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        const peer: RawPeer = new RawPeer(socket, undefined, new Promise((r) => socket.once("close", () => r())));
        const decoder = new FrameDecoder(1 << 24);
        socket.on("data", (chunk: Buffer) => {
          decoder.push(chunk, (m) => peer.#got(m));
          peer.#wake();
        });
        socket.on("error", () => {});
        socket.on("close", () => peer.#wake());
        resolve(peer);
      });
    });
  }

  static async #connectMemory(transport: MemoryTransport): Promise<RawPeer> {
    let peer: RawPeer | undefined;
    const early: Array<Record<string, unknown>> = [];
    let closedNow!: () => void;
    const closed = new Promise<void>((r) => (closedNow = r));
    const connection = await transport.connect({
      message: (m) => {
        if (peer === undefined) early.push(m);
        else {
          peer.#got(m);
          peer.#wake();
        }
      },
      closed: () => {
        closedNow();
        if (peer !== undefined) peer.#wake();
      },
    });
    peer = new RawPeer(undefined, connection, closed);
    for (const m of early) peer.#got(m);
    return peer;
  }

  /** Connects and completes hello. */
  static async greeted(target: RawTarget): Promise<RawPeer> {
    const peer = await RawPeer.connect(target);
    peer.send({ op: "hello", v: 1, name: "raw", id: 0 });
    await peer.next((m) => m["op"] === "welcome");
    return peer;
  }

  send(message: object): void {
    this.sendBytes(encodeFrame(message));
  }

  sendBytes(bytes: Uint8Array): void {
    if (this.#memory !== undefined) this.#memory.sendBytes(bytes);
    else this.socket.write(bytes);
  }

  /** Half-closes: says it will send no more, and keeps reading until the broker closes. */
  end(): void {
    if (this.#memory !== undefined) this.#memory.close();
    else this.socket.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    if (this.#memory !== undefined) this.#memory.destroy();
    else this.socket.destroy();
  }

  get destroyed(): boolean {
    return this.#memory !== undefined ? this.#memory.destroyed : this.socket.destroyed;
  }

  /** Resolves with the first received frame (past or future) that passes `test`. */
  async next(test: (m: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(test);
      if (found !== undefined) return found;
      if (Date.now() > deadline || this.destroyed) {
        throw new Error(`no matching frame; received: ${JSON.stringify(this.received)}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The `err` answering op `id`. */
  errFor(id: number): Promise<Record<string, unknown>> {
    return this.next((m) => m["op"] === "err" && m["id"] === id);
  }

  /** Round-trips a ping: proves the connection is still served. */
  async alive(id: number): Promise<void> {
    this.send({ op: "ping", id });
    await this.next((m) => m["op"] === "pong" && m["id"] === id);
  }
}

export function frameHeader(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
}
