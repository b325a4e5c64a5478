// The Unix socket transport, broker side. The socket's directory and mode are
// the first gate (only the owner may connect by default); peer identity from
// SO_PEERCRED + pidfd is recorded on every connection for the policy layer.

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import type { Logger } from "pino";
import { XpcbusError } from "../../protocol/index.js";
import type { BrokerAttachment, ServerTransport } from "./server-transport.js";
import { unixPeerIdentity } from "./peer-identity.js";
import { UnixPeerLink } from "./unix-peer-link.js";

export interface UnixServerOptions {
  /** Socket path to listen on. */
  path: string;
  /** Mode of the socket file; 0o600 unless widened on purpose. */
  socketMode?: number;
  /** Largest frame body accepted from a peer. */
  maxFrameBytes: number;
  /**
   * A listening socket inherited from systemd (socket activation, fd 3):
   * used as is; its file is systemd's, so it is neither replaced nor removed.
   */
  inheritedFd?: number;
  logger: Logger;
}

/** How long the "is a broker already there?" probe waits for an answer. */
export const LIVE_PROBE_TIMEOUT_MS = 500;

/** True when something accepts connections on `path` (a live broker, or another server). */
export function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe: Socket = createConnection({ path });
    const done = (live: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), LIVE_PROBE_TIMEOUT_MS);
    probe.once("connect", () => done(true));
    probe.once("error", () => done(false));
  });
}

export class UnixServerTransport implements ServerTransport {
  readonly name = "unix";
  readonly address: string;
  readonly #options: UnixServerOptions;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #created = false;
  // The daemon checks before it creates files beside the socket; start() need not probe again.
  #addressChecked = false;
  #drainWaiters: Array<() => void> = [];

  constructor(options: UnixServerOptions) {
    this.#options = options;
    this.address = options.path;
  }

  /** Refuses when a live broker answers on the path; replaces a stale socket file. start() does this too. */
  async checkAddress(): Promise<void> {
    if (this.#options.inheritedFd !== undefined || this.#addressChecked) return;
    await this.#clearStaleSocket(this.#options.path);
    this.#addressChecked = true;
  }

  async start(broker: BrokerAttachment): Promise<void> {
    const { path, logger, inheritedFd } = this.#options;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.#accept(socket, broker));
    this.#server = server;
    if (inheritedFd !== undefined) {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ fd: inheritedFd }, () => {
          server.off("error", reject);
          resolve();
        });
      }).catch((cause: unknown) => {
        throw new XpcbusError("socket_unusable", `cannot listen on the inherited socket (fd ${inheritedFd}): ${(cause as Error).message}`, { cause });
      });
      server.on("error", (error) => logger.error({ err: error }, "unix socket server error"));
      return;
    }
    await this.checkAddress();
    // The socket file is created by bind() with the process umask: make it
    // owner-only from birth rather than chmod it after a window of exposure.
    const previousUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ path }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (cause) {
      throw new XpcbusError("socket_unusable", `cannot listen on ${path}: ${(cause as Error).message}`, { cause });
    } finally {
      process.umask(previousUmask);
    }
    this.#created = true;
    const mode = this.#options.socketMode ?? 0o600;
    if (mode !== 0o600) chmodSync(path, mode);
    server.on("error", (error) => logger.error({ err: error }, "unix socket server error"));
  }

  async stopAccepting(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // close() waits for open connections; those are ended by the broker.
      setImmediate(resolve);
    });
    if (this.#created) {
      this.#created = false;
      try {
        unlinkSync(this.address);
      } catch {
        // Already gone: nothing to clean.
      }
    }
  }

  drained(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #accept(socket: Socket, broker: BrokerAttachment): void {
    const { logger, maxFrameBytes } = this.#options;
    this.#sockets.add(socket);
    socket.on("error", (error) => logger.debug({ err: error }, "peer socket error"));
    socket.on("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
    });
    const link = new UnixPeerLink(socket, unixPeerIdentity(socket, logger));
    link.pump(broker.attach(link), maxFrameBytes);
    // A peer that half-closes has said all it will: finish our side too
    // (after pump's own "end" handler has reported any truncated frame).
    socket.on("end", () => link.close());
  }

  /**
   * A socket file with nobody behind it is left by a crash: replace it. A live
   * one means another broker: refuse. Anything that is not a socket is not ours.
   */
  async #clearStaleSocket(path: string): Promise<void> {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return;
    }
    if (!stat.isSocket()) {
      throw new XpcbusError("socket_unusable", `${path} exists and is not a socket; refusing to replace it`);
    }
    if (await socketIsLive(path)) {
      throw new XpcbusError("broker_running", `a broker is already running on ${path}`);
    }
    this.#options.logger.info({ socket: path }, "replacing stale socket file");
    unlinkSync(path);
  }
}
