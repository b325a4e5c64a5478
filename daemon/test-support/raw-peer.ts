// A peer that speaks the wire protocol by hand over a raw Unix socket, to
// send what no well-behaved client would.
import { createConnection, type Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../../protocol/index.js";

export class RawPeer {
  readonly socket: Socket;
  readonly received: Array<Record<string, unknown>> = [];
  readonly closed: Promise<void>;
  #waiters: Array<() => void> = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder(1 << 24);
    socket.on("data", (chunk: Buffer) => {
      decoder.push(chunk, (m) => this.received.push(m));
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("error", () => {});
    this.closed = new Promise((r) => socket.once("close", () => r()));
  }

  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RawPeer(socket));
      });
    });
  }

  /** Connects and completes hello. */
  static async greeted(path: string): Promise<RawPeer> {
    const peer = await RawPeer.connect(path);
    peer.send({ op: "hello", v: 1, name: "raw", id: 0 });
    await peer.next((m) => m["op"] === "welcome");
    return peer;
  }

  send(message: object): void {
    this.socket.write(encodeFrame(message));
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Resolves with the first received frame (past or future) that passes `test`. */
  async next(test: (m: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(test);
      if (found !== undefined) return found;
      if (Date.now() > deadline || this.socket.destroyed) {
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
