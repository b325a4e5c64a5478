// The Unix socket transport, client side: length-prefixed CBOR frames.

import { createConnection, type Socket } from "node:net";
import { lstat } from "node:fs/promises";
import { dirname } from "node:path";
import { assertCredentialsReadable, checkBrokerPeer, directoryProblem, parseBrokerUid, untrustedDirectory } from "./broker-trust.js";
import type { ClientConnection, ClientConnectionHandlers, ClientTransport } from "./client-transport.js";
import { RESERVE_MAX_BYTES, encodeFrame, isWellTypedPub, FrameDecoder, DEFAULT_MAX_FRAME_BYTES, pubFrameBytes, TurnWriter, writePubFrame } from "../protocol/index.js";
import type { ClientOp } from "../protocol/index.js";
import { InvalidArgumentError } from "./errors.js";

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
  readonly brokerUid: number;

  constructor(socket: Socket, brokerUid: number) {
    this.#socket = socket;
    this.#writer = new TurnWriter(socket);
    this.brokerUid = brokerUid;
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

export interface UnixClientTransportOptions {
  /**
   * One more uid whose broker this client talks to, besides its own and
   * root's (e.g. a system broker's service user). Any other uid answering on
   * the socket is refused with UntrustedBrokerError before anything is sent.
   */
  brokerUid?: number;
  /**
   * Set for the default socket path only: the uid that must own the socket's
   * directory (the client's own for the per-user path, 0 for the system
   * one), which must also be writable by neither group nor others.
   */
  directoryOwner?: number;
}

const TRANSPORT_OPTION_NAMES = ["brokerUid", "directoryOwner"];

export class UnixClientTransport implements ClientTransport {
  readonly address: string;
  readonly #brokerUid: number | undefined;
  readonly #directoryOwner: number | undefined;

  /** Does no I/O; every connect() checks the broker (docs/SECURITY.md, "Trusting the broker"). */
  constructor(path: string, options: UnixClientTransportOptions = {}) {
    for (const key of Object.keys(options)) {
      if (!TRANSPORT_OPTION_NAMES.includes(key)) {
        throw new InvalidArgumentError(`unknown UnixClientTransport option "${key}"; known: ${TRANSPORT_OPTION_NAMES.join(", ")}`);
      }
    }
    this.address = path;
    this.#brokerUid = options.brokerUid === undefined ? undefined : parseBrokerUid(options.brokerUid, 'option "brokerUid"');
    this.#directoryOwner = options.directoryOwner === undefined ? undefined : parseBrokerUid(options.directoryOwner, 'option "directoryOwner"');
  }

  async connect(handlers: ClientConnectionHandlers): Promise<ClientConnection> {
    // Fail closed before connecting at all: an unchecked broker gets nothing.
    assertCredentialsReadable();
    if (this.#directoryOwner !== undefined) {
      const dir = dirname(this.address);
      // A missing directory is left to connect()'s ENOENT: there is no broker to trust or not.
      const stat = await lstat(dir).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error)));
      const problem = stat === undefined ? undefined : directoryProblem(dir, stat, this.#directoryOwner);
      if (problem !== undefined) throw untrustedDirectory(this.address, dir, problem);
    }
    return this.#open(handlers);
  }

  #open(handlers: ClientConnectionHandlers): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: this.address });
      socket.setNoDelay?.(true);
      const onConnectError = (error: Error): void => reject(error);
      socket.once("error", onConnectError);
      socket.once("connect", () => {
        socket.off("error", onConnectError);
        let brokerUid: number;
        try {
          // Before anything is written: a fake broker must not even see `hello`.
          brokerUid = checkBrokerPeer(socket, this.address, this.#brokerUid);
        } catch (error) {
          socket.destroy();
          reject(error as Error);
          return;
        }
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
        resolve(new UnixClientConnection(socket, brokerUid));
      });
    });
  }
}
