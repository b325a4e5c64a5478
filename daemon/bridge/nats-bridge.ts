// The NATS bridge: carries chosen local subjects to a NATS cluster and chosen
// NATS subjects into the local broker (issue 16). The local side is an
// ordinary SDK client over an in-memory transport, admitted as the bridge
// identity; the NATS side is the official `nats` client. Nothing here throws
// into the daemon: with NATS down the broker serves locally, exports wait in a
// bounded FIFO, and `status()` says what is going on.
//
// Loops are broken twice over: the local connection is `noEcho`, so what the
// bridge publishes locally (imports) never reaches its own export
// subscriptions; and every export carries `Xpcbus-Origin`, so a broker whose
// import pattern matches its own exports skips them when they come back.

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import {
  connect as natsConnect,
  credsAuthenticator,
  DebugEvents,
  ErrorCode,
  Events,
  headers as natsHeaders,
  nkeyAuthenticator,
  type Authenticator,
  type ConnectionOptions,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type NatsError,
} from "nats";
import type { Logger } from "pino";
import { connect, type Client, type Message, type PayloadEncoding } from "../../client-sdk/index.js";
import { decodePayload, DEFAULT_REQUEST_TIMEOUT_MS, INBOX_PREFIX } from "../../protocol/index.js";
import { MemoryTransport } from "../transports/memory-transport.js";
import type { BrokerAttachment } from "../transports/server-transport.js";
import { exportedSubject, mapImportedSubject } from "./bridge-config.js";
import { BRIDGE_IDENTITY } from "./bridge-identity.js";
import type { BridgeConfig, BridgeExport, BridgeImport, BridgeStatus } from "./bridge-types.js";

/** NATS header naming the broker a message left from, so that broker does not import it back. */
export const ORIGIN_HEADER = "Xpcbus-Origin";
/** NATS header carrying the xpcbus payload encoding (text, json, bytes): NATS itself has only bytes. */
export const ENCODING_HEADER = "Xpcbus-Enc";
/** NATS header of a reply the bridge gives for a local failure (no_responders, timeout, …); the payload is the reason. */
export const ERROR_HEADER = "Xpcbus-Error";

/**
 * This process's origin: one random id for the life of the process, so a
 * bridge started by a reload still recognises what its predecessor exported
 * (a restart is a new broker, whose own exports are new too). The host name
 * is only there for a person reading NATS traffic.
 */
export const PROCESS_ORIGIN = `${hostname()}/${randomUUID()}`;

/**
 * How long close() lets NATS take what was already handed to the client
 * before closing the connection: a reload or a shutdown must not hang on an
 * unreachable server.
 */
const CLOSE_FLUSH_MS = 1_000;

/** Reply of a request that failed on the other side, as a responder error (docs/PROTOCOL.md, Appendix A): the requester's request() rejects at once. */
const responderError = (message: string, code = "responder_error"): Record<string, unknown> => ({ $xpcbusError: { code, message } });

const ENCODINGS: readonly string[] = ["text", "json", "bytes"];

export interface NatsBridgeOptions {
  config: BridgeConfig;
  /** The broker to attach the bridge's local connection to (the daemon's Broker). */
  broker: BrokerAttachment;
  log: Logger;
  /** This broker's id in `Xpcbus-Origin` (default PROCESS_ORIGIN). */
  origin?: string;
}

/** An exported message waiting for NATS. */
interface Held {
  subject: string;
  raw: Uint8Array;
  encoding: PayloadEncoding;
  /** Counted against bufferBytes: payload + subject. */
  bytes: number;
}

/** A FIFO of held exports with O(1) take from the front. */
class HeldQueue {
  #items: Held[] = [];
  #head = 0;
  bytes = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: Held): void {
    this.#items.push(item);
    this.bytes += item.bytes;
  }

  peek(): Held | undefined {
    return this.#items[this.#head];
  }

  shift(): Held | undefined {
    const item = this.#items[this.#head];
    if (item === undefined) return undefined;
    this.#items[this.#head] = undefined as unknown as Held;
    this.#head++;
    this.bytes -= item.bytes;
    // Compact once the taken part is most of the array.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): number {
    const n = this.length;
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
    return n;
  }
}

export class NatsBridge {
  readonly #config: BridgeConfig;
  readonly #log: Logger;
  readonly #origin: string;
  readonly #transport = new MemoryTransport();
  #client: Client | undefined;
  #nc: NatsConnection | undefined;
  #state: BridgeStatus["state"] = "connecting";
  #server: string | undefined;
  #lastError: string | undefined;
  #exported = 0;
  #imported = 0;
  #dropped = 0;
  readonly #held = new HeldQueue();
  /** A warning was logged for the current run of buffer overflows (reset when NATS is back). */
  #dropWarned = false;
  /** Local subjects whose refusal was logged already (once each). */
  readonly #refusedSubjects = new Set<string>();
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Failed attempts since the last connection, for the backoff. */
  #attempt = 0;

  private constructor(options: NatsBridgeOptions) {
    this.#config = options.config;
    this.#log = options.log.child({ bridge: options.config.source });
    this.#origin = options.origin ?? PROCESS_ORIGIN;
  }

  /**
   * Starts the bridge: its local connection at once, NATS in the background
   * (a NATS that is down or slow never holds up the broker). Never rejects:
   * a failure is logged and shown in status().
   */
  static async start(options: NatsBridgeOptions): Promise<NatsBridge> {
    const bridge = new NatsBridge(options);
    await bridge.#startLocal(options.broker);
    if (!bridge.#closed) bridge.#connectNats();
    return bridge;
  }

  status(): BridgeStatus {
    const status: BridgeStatus = {
      state: this.#state,
      source: this.#config.source,
      servers: [...this.#config.nats.servers],
      exported: this.#exported,
      imported: this.#imported,
      dropped: this.#dropped,
      bufferedBytes: this.#held.bytes,
    };
    if (this.#server !== undefined) status.server = this.#server;
    if (this.#lastError !== undefined) status.lastError = this.#lastError;
    return status;
  }

  /**
   * Stops both sides. What NATS already took is flushed (bounded by
   * CLOSE_FLUSH_MS); exports still held for an absent NATS are dropped,
   * counted and logged.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#state = "closed";
    this.#server = undefined;
    clearTimeout(this.#retryTimer);
    const held = this.#held.clear();
    if (held > 0) {
      this.#dropped += held;
      this.#log.warn({ dropped: held }, "bridge closed with exports still waiting for NATS; they are dropped");
    }
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc !== undefined && !nc.isClosed()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([nc.flush().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_FLUSH_MS)))]);
      clearTimeout(timer);
      await nc.close().catch(() => undefined);
    }
    await this.#client?.close().catch(() => undefined);
    this.#transport.close();
  }

  // ---- the local side ----

  async #startLocal(broker: BrokerAttachment): Promise<void> {
    try {
      await this.#transport.start(broker);
      const client = await connect({ transport: this.#transport.as(BRIDGE_IDENTITY), name: "bridge", noEcho: true, reconnect: false });
      this.#client = client;
      client.on("closed", (error) => {
        if (this.#closed) return;
        // The broker is going away (daemon shutdown) or dropped the bridge: nothing more can cross.
        this.#fail(`the local connection closed${error ? `: ${error.message}` : ""}`);
        void this.close();
      });
      // An import the broker refused (unacknowledged publishes: the refusal names the subject).
      client.on("brokerError", (error) => {
        if (error.subject !== undefined && !error.subject.startsWith(INBOX_PREFIX)) {
          this.#imported--;
          this.#refused(error.subject, error.message);
        } else this.#failed(error.message);
      });
      // The broker dropped messages meant for the bridge (it did not read fast enough): lost exports.
      client.on("dropped", ({ count }) => {
        this.#dropped += count;
        this.#fail(`the broker dropped ${count} messages on their way to the bridge (slow consumer)`);
      });
      for (const entry of this.#config.export) {
        await client.subscribe(entry.subject, { callback: (msg) => this.#export(entry, msg) });
      }
    } catch (error) {
      // A policy that does not admit the bridge, most likely: the broker runs on without it.
      this.#fail(`the bridge cannot work locally: ${(error as Error).message}`);
      await this.close();
    }
  }

  // ---- export: local → NATS ----

  #export(entry: BridgeExport, msg: Message): void {
    const subject = exportedSubject(entry, msg.subject);
    if (msg.reply !== undefined && msg.reply.startsWith(INBOX_PREFIX)) {
      this.#forwardRequest(subject, msg);
      return;
    }
    const item: Held = { subject, raw: msg.raw, encoding: msg.encoding, bytes: msg.raw.byteLength + Buffer.byteLength(subject) };
    // Behind held ones, a message waits its turn: order is kept.
    if (this.#state === "connected" && this.#held.length === 0 && this.#send(item)) return;
    this.#hold(item);
  }

  #headers(encoding: PayloadEncoding): MsgHdrs {
    const h = natsHeaders();
    h.set(ORIGIN_HEADER, this.#origin);
    h.set(ENCODING_HEADER, encoding);
    return h;
  }

  /** Hands one export to NATS; false when the connection refused it for going away (the caller holds it). */
  #send(item: Held): boolean {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed() || nc.isDraining()) return false;
    try {
      nc.publish(item.subject, item.raw, { headers: this.#headers(item.encoding) });
      this.#exported++;
      return true;
    } catch (error) {
      const code = (error as NatsError).code;
      if (code === ErrorCode.ConnectionClosed || code === ErrorCode.ConnectionDraining) return false;
      // Not the connection's fault (a subject NATS does not take, a payload over its max): this one message is lost.
      this.#dropped++;
      this.#failed(`export to "${item.subject}" refused by the NATS client: ${(error as Error).message}`);
      return true;
    }
  }

  #hold(item: Held): void {
    const bound = this.#config.bufferBytes;
    if (item.bytes > bound) {
      this.#dropped++;
      this.#warnDrops();
      return;
    }
    this.#held.push(item);
    let dropped = 0;
    while (this.#held.bytes > bound) {
      this.#held.shift();
      dropped++;
    }
    if (dropped > 0) {
      this.#dropped += dropped;
      this.#warnDrops();
    }
  }

  #warnDrops(): void {
    if (this.#dropWarned) return;
    this.#dropWarned = true;
    this.#log.warn(
      { bufferBytes: this.#config.bufferBytes, dropped: this.#dropped },
      "bridge buffer full while NATS is away: the oldest exports are being dropped (counted in status.bridge.dropped)",
    );
  }

  /** NATS is back: what was held goes out first, in order. */
  #flushHeld(): void {
    const before = this.#held.length;
    for (let item = this.#held.peek(); item !== undefined; item = this.#held.peek()) {
      if (!this.#send(item)) break;
      this.#held.shift();
    }
    const sent = before - this.#held.length;
    if (sent > 0) this.#log.info({ sent, stillHeld: this.#held.length }, "bridge: held exports sent to NATS");
    if (this.#held.length === 0) this.#dropWarned = false;
  }

  /** A local request on an exported subject: asked on NATS, the answer published to the local inbox. */
  #forwardRequest(subject: string, msg: Message): void {
    const nc = this.#nc;
    if (nc === undefined || this.#state !== "connected") {
      void msg.respond(responderError(`NATS is not reachable from the bridge (${this.#state})`)).catch(() => undefined);
      return;
    }
    nc.request(subject, msg.raw, { timeout: DEFAULT_REQUEST_TIMEOUT_MS, headers: this.#headers(msg.encoding) }).then(
      (reply) => {
        this.#exported++;
        const failure = reply.headers?.get(ERROR_HEADER);
        // A failure on the other broker comes back as the same kind of error (no_responders stays no_responders).
        const data = failure ? responderError(`${failure}: ${reply.string()}`, failure === "no_responders" ? "no_responders" : "responder_error") : decodePayload(reply.data, importedEncoding(reply));
        return msg.respond(data);
      },
      (error: NatsError) => {
        // A timeout is left to the local broker, which answers the requester `timeout` (its own deadline).
        if (error.code === ErrorCode.Timeout) return;
        // No responder over there: the requester gets no_responders, as for a subject nobody answers here.
        if (error.code === ErrorCode.NoResponders) return msg.respond(responderError(`no responders on NATS for "${subject}"`, "no_responders"));
        return msg.respond(responderError(`NATS request failed: ${error.message}`));
      },
    ).catch(() => undefined);
  }

  // ---- import: NATS → local ----

  #import(entry: BridgeImport, m: Msg): void {
    // Our own export come back through a pattern that matches it.
    if (m.headers?.get(ORIGIN_HEADER) === this.#origin) return;
    const client = this.#client;
    if (client === undefined || this.#closed) return;
    const local = mapImportedSubject(entry, m.subject);
    if (local === undefined) {
      this.#refused(m.subject, "it maps to no subject xpcbus can publish");
      return;
    }
    const encoding = importedEncoding(m);
    if (m.reply !== undefined && m.reply !== "") {
      this.#answerImportedRequest(client, local, decodePayload(m.data, encoding), m);
      return;
    }
    // Unacknowledged (a promise and an answer per message cost the importing
    // broker more than the publish itself); a refusal comes back as a
    // brokerError naming the subject, and is taken off `imported` there.
    client.publish(local, m.data, { encoding, ack: false }).then(
      () => undefined,
      (error: Error) => {
        this.#imported--;
        this.#refused(local, error.message);
      },
    );
    this.#imported++;
  }

  /** A NATS request on an imported subject: asked locally, the answer (or the failure, as ERROR_HEADER) sent back. */
  #answerImportedRequest(client: Client, local: string, data: unknown, m: Msg): void {
    client.request(local, data, { timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS }).then(
      (reply) => {
        this.#imported++;
        m.respond(reply.raw, { headers: this.#headers(reply.encoding) });
      },
      (error: Error & { code?: string }) => {
        const h = this.#headers("text");
        h.set(ERROR_HEADER, error.code ?? "error");
        m.respond(new TextEncoder().encode(error.message), { headers: h });
      },
    );
  }

  #refused(subject: string, reason: string): void {
    this.#dropped++;
    this.#lastError = `import to "${subject}" refused: ${reason}`;
    if (this.#refusedSubjects.has(subject)) return;
    this.#refusedSubjects.add(subject);
    this.#log.warn({ subject, reason }, "bridge: an imported message was refused locally (further refusals of this subject are only counted)");
  }

  // ---- the NATS connection ----

  #delay(): number {
    const { initialDelayMs, maxDelayMs } = this.#config.reconnect;
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return delay;
  }

  #options(): ConnectionOptions {
    const n = this.#config.nats;
    const options: ConnectionOptions = {
      servers: n.servers,
      name: n.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.#config.reconnect.initialDelayMs,
      // The same doubling backoff as the first connection, reset on each reconnect.
      reconnectDelayHandler: () => this.#delay(),
      // Our own loop retries the first connection: a connect() that waits for ever
      // (waitOnFirstConnect) could not be abandoned by close() or a reload.
      waitOnFirstConnect: false,
    };
    if (n.token !== undefined) options.token = n.token;
    if (n.user !== undefined) options.user = n.user;
    if (n.pass !== undefined) options.pass = n.pass;
    const authenticators: Authenticator[] = [];
    // Read at each connection, so a rotated file is picked up without a reload.
    const credentialsFile = n.credentialsFile;
    if (credentialsFile !== undefined) authenticators.push(credsAuthenticator(() => readFileSync(credentialsFile)));
    const nkeySeedFile = n.nkeySeedFile;
    if (nkeySeedFile !== undefined) authenticators.push(nkeyAuthenticator(() => new TextEncoder().encode(readFileSync(nkeySeedFile, "utf8").trim())));
    if (authenticators.length > 0) options.authenticator = authenticators;
    const tls = n.tls;
    if (tls !== undefined) {
      options.tls = {};
      if (tls.caFile !== undefined) options.tls.caFile = tls.caFile;
      if (tls.certFile !== undefined) options.tls.certFile = tls.certFile;
      if (tls.keyFile !== undefined) options.tls.keyFile = tls.keyFile;
    }
    return options;
  }

  /** One attempt at the first connection; on failure another after the backoff, until close(). */
  #connectNats(): void {
    natsConnect(this.#options()).then(
      (nc) => {
        if (this.#closed) {
          void nc.close();
          return;
        }
        this.#connected(nc);
      },
      (error: Error) => {
        if (this.#closed) return;
        const first = this.#attempt === 0 || this.#lastError !== error.message;
        this.#lastError = error.message;
        const delayMs = this.#delay();
        const fields = { servers: this.#config.nats.servers, reason: error.message, retryInMs: delayMs };
        if (first) this.#log.warn(fields, "bridge: cannot reach NATS yet; the broker serves locally meanwhile");
        else this.#log.debug(fields, "bridge: NATS still unreachable");
        this.#retryTimer = setTimeout(() => this.#connectNats(), delayMs);
      },
    );
  }

  #connected(nc: NatsConnection): void {
    this.#nc = nc;
    this.#attempt = 0;
    this.#state = "connected";
    this.#server = nc.getServer();
    this.#log.info({ server: this.#server, exports: this.#config.export.length, imports: this.#config.import.length }, "bridge connected to NATS");
    for (const entry of this.#config.import) {
      nc.subscribe(entry.subject, {
        callback: (error, m) => {
          if (error !== null) this.#failed(`NATS subscription "${entry.subject}": ${error.message}`);
          else this.#import(entry, m);
        },
      });
    }
    void this.#followStatus(nc);
    void nc.closed().then((error) => {
      if (this.#closed || this.#nc !== nc) return;
      // Closed by the client itself (e.g. authorization refused on reconnect): start over with a new connection.
      this.#nc = undefined;
      this.#state = "reconnecting";
      this.#server = undefined;
      this.#fail(`NATS connection closed${error ? `: ${error.message}` : ""}; reconnecting`);
      this.#retryTimer = setTimeout(() => this.#connectNats(), this.#delay());
    });
    this.#flushHeld();
  }

  async #followStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.#closed || this.#nc !== nc) return;
      switch (s.type) {
        case Events.Disconnect:
          if (this.#state === "connected") this.#log.warn({ server: s.data }, "bridge: NATS connection lost; exports are held until it is back");
          this.#state = "reconnecting";
          this.#server = undefined;
          break;
        case DebugEvents.Reconnecting:
          this.#state = "reconnecting";
          break;
        case Events.Reconnect:
          this.#attempt = 0;
          this.#state = "connected";
          this.#server = nc.getServer();
          this.#log.info({ server: this.#server }, "bridge: NATS connection back");
          this.#flushHeld();
          break;
        case Events.Error:
          this.#failed(`NATS: ${String(s.data)}${s.permissionContext ? ` (${s.permissionContext.operation} "${s.permissionContext.subject}")` : ""}`);
          break;
        default:
          break;
      }
    }
  }

  /** Remembers an error for status; logged at debug (callers log what deserves more). */
  #failed(message: string): void {
    this.#lastError = message;
    this.#log.debug({ reason: message }, "bridge error");
  }

  /** Remembers and logs an error that stops something. */
  #fail(message: string): void {
    this.#lastError = message;
    this.#log.error({ reason: message }, "bridge error");
  }
}

/**
 * The encoding a NATS message's bytes are to be read with: what its origin
 * broker gave it (ENCODING_HEADER), "bytes" for a message from any other NATS
 * client. The bytes are published locally as they came.
 */
function importedEncoding(m: Msg): PayloadEncoding {
  const enc = m.headers?.get(ENCODING_HEADER) ?? "bytes";
  return (ENCODINGS.includes(enc) ? enc : "bytes") as PayloadEncoding;
}
