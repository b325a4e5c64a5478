// The Unix socket transport, client side: length-prefixed CBOR frames.

import { createConnection, type Socket } from "node:net";
import type { ClientConnection, ClientConnectionHandlers, ClientTransport } from "./client-transport.js";
import { RESERVE_MAX_BYTES, encodeFrame, isWellTypedPub, FrameDecoder, DEFAULT_MAX_FRAME_BYTES, pubFrameBytes, TurnWriter, writePubFrame } from "../protocol/index.js";
import type { ClientOp } from "../protocol/index.js";

/**
 * Largest frame accepted from the broker. Its messages are at most its payload
 * limit plus headers, and a `status` answer is bounded to a few MiB; 16x the
 * default frame leaves room for a broker configured with larger payloads
 * without trusting any length.
 */
export const MAX_INBOUND_FRAME_BYTES = 16 * DEFAULT_MAX_FRAME_BYTES;

class UnixClientConnection implements ClientConnection {
  readonly #socket: Socket;
  /** Gathers the ops of one event-loop turn into one write (protocol/turn-writer.ts). */
  readonly #writer: TurnWriter;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#writer = new TurnWriter(socket);
  }

  /** Sends with the rest of this turn; the answer is false once past the socket's mark. */
  send(op: ClientOp): boolean {
    if (isWellTypedPub(op)) {
      // The publish path: encoded in place in this turn's write, no frame buffer of its own.
      const size = pubFrameBytes(op);
      if (size <= RESERVE_MAX_BYTES) {
        const at = this.#writer.reserve(size);
        writePubFrame(op, this.#writer.slab, at, size);
        return this.#writer.belowMark;
      }
    }
    return this.#writer.write(encodeFrame(op));
  }

  get bufferedBytes(): number {
    return this.#writer.bufferedBytes;
  }

  /** One shared wait for room, whatever the number of callers. */
  drained(): Promise<void> {
    return this.#writer.whenWritable();
  }

  close(): void {
    this.#writer.flush();
    this.#socket.end();
  }
}

export class UnixClientTransport implements ClientTransport {
  readonly address: string;

  constructor(path: string) {
    this.address = path;
  }

  connect(handlers: ClientConnectionHandlers): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: this.address });
      socket.setNoDelay?.(true);
      const onConnectError = (error: Error): void => reject(error);
      socket.once("error", onConnectError);
      socket.once("connect", () => {
        socket.off("error", onConnectError);
        let failure: Error | undefined;
        const decoder = new FrameDecoder(MAX_INBOUND_FRAME_BYTES);
        socket.on("data", (chunk: Buffer) => {
          if (failure !== undefined) return;
          const fault = decoder.push(chunk, (map) => handlers.message(map));
          if (fault !== undefined) {
            failure = new Error(`unreadable frame from the broker (${fault.code}): ${fault.reason}`);
            socket.destroy(failure);
          }
        });
        socket.on("error", (error) => {
          failure ??= error;
        });
        socket.on("close", () => handlers.closed(failure));
        resolve(new UnixClientConnection(socket));
      });
    });
  }
}
