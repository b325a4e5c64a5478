// The client: one connection to the broker, kept alive across broker
// restarts. It owns the subscriptions (and re-sends them after a reconnect),
// correlates replies to ops by `id`, dispatches messages to subscriptions
// locally, and holds publishes made while disconnected in a bounded buffer.

import { EventEmitter } from "node:events";
import {
  BufferFullError,
  brokerErrorFromWire,
  ClosedError,
  ConnectionError,
  InvalidArgumentError,
  InvalidSubjectError,
  XpcbusError,
  type BrokerError,
} from "./errors.js";
import type { ClientConnection, ClientTransport } from "./client-transport.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, MAX_ID, PROTOCOL_VERSION } from "./protocol/limits.js";
import type { BrokerLimits, BrokerStatus, ClientOp, PayloadEncoding } from "./protocol/messages.js";
import { decodePayload, encodePayload, type Payload } from "./protocol/payload.js";
import { subjectMatches, subjectProblem, queueNameProblem } from "./protocol/subject.js";
import { Subscription, type Message, type SubscribeOptions, type SubscriptionOwner } from "./subscription.js";
import { Watch, type WatchOptions, type WatchOwner } from "./watch.js";
import { openNotifyBackend, type NotifyBackend, type NotifyToken } from "./notify/notify-backend.js";
import { notifyNameProblem, subjectNotifyName } from "./protocol/notify-name.js";
import type { NotifyInfo } from "./protocol/messages.js";

export interface ReconnectOptions {
  /** Reconnect after losing the broker (default true). */
  enabled: boolean;
  /** First delay, in ms, doubled at each failed attempt (default 50). */
  initialDelayMs: number;
  /** Longest delay between attempts, in ms (default 2000). */
  maxDelayMs: number;
  /** Attempts before giving up and closing with an error; 0 = never give up (default 0). */
  maxAttempts: number;
  /** Bytes of publishes and requests held while disconnected (default 1 MiB); past it they fail with BufferFullError. */
  bufferBytes: number;
}

export const DEFAULT_RECONNECT: Readonly<ReconnectOptions> = Object.freeze({
  enabled: true,
  initialDelayMs: 50,
  maxDelayMs: 2_000,
  maxAttempts: 0,
  bufferBytes: 1024 * 1024,
});

/**
 * Bytes a connected client lets pile up in its socket buffer before
 * publishes fail with BufferFullError: the broker is not reading, and
 * growing without bound would only move the problem into this process.
 */
export const MAX_WRITE_BUFFER_BYTES = 64 * 1024 * 1024;

// Counted per buffered op besides its payload, for the reconnect buffer bound.
const OP_OVERHEAD_BYTES = 64;

export interface PublishOptions {
  /** Keep this value as the subject's retained value. */
  retain?: boolean;
  /** Subject the receivers should reply to. */
  reply?: string;
  /** Wait for the broker's acknowledgement (default true). */
  ack?: boolean;
}

export interface PublishAck {
  /** The subject's sequence number given to this publish (undefined when `ack: false`). */
  seq: number | undefined;
}

export interface RequestOptions {
  /** How long the broker waits for a reply, in ms (default 5000). */
  timeoutMs?: number;
}

export interface RespondOptions {
  /** Queue group shared by the responders of this subject (default "responders"). */
  queue?: string;
}

export type GetResult =
  | { found: true; subject: string; data: Payload; raw: Uint8Array; encoding: PayloadEncoding; seq: number }
  | { found: false; subject: string; seq: 0 };

export interface ClientEvents {
  disconnected: [error: Error | undefined];
  reconnecting: [info: { attempt: number; delayMs: number }];
  reconnected: [info: { peer: number }];
  /** A subscription's queue overflowed; `dropped` is its running total. */
  slowConsumer: [info: { subject: string; sid: number; dropped: number }];
  /** The broker dropped messages for this connection because it was not reading fast enough. */
  dropped: [info: { count: number; total: number }];
  /** An `err` from the broker that no pending call was waiting for (e.g. a fire-and-forget publish). */
  brokerError: [error: BrokerError];
  closed: [error: Error | undefined];
}

interface PendingOp {
  resolve(fields: Record<string, unknown>): void;
  reject(error: Error): void;
  /** Ops sent while connected fail on disconnect; buffered ones were never sent. */
  sent: boolean;
}

type State = "connected" | "reconnecting" | "closed";

/** One watched notification name: its registration and the Watch objects on it. */
interface WatchedName {
  readonly name: string;
  readonly subject: string | undefined;
  readonly watches: Set<Watch>;
  token: NotifyToken | undefined;
  fetching: boolean;
  fetchAgain: boolean;
}

export interface ClientSettings {
  name: string;
  reconnect: ReconnectOptions;
  requestTimeoutMs: number;
}

export class Client extends EventEmitter<ClientEvents> implements SubscriptionOwner, WatchOwner {
  readonly #transport: ClientTransport;
  readonly #settings: ClientSettings;
  #connection: ClientConnection | undefined;
  #state: State = "reconnecting";
  #peerId = 0;
  #limits: BrokerLimits | undefined;
  #nextId = 1;
  #nextSid = 1;
  readonly #pending = new Map<number, PendingOp>();
  /** Every call awaiting its reply, for drain(). */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #subs = new Map<number, Subscription>();
  /** Ops waiting for a connection, in order, with their byte estimate. */
  #outbox: Array<{ op: ClientOp; bytes: number }> = [];
  #outboxBytes = 0;
  #closedError: Error | undefined;
  #resolveClosed!: (error: Error | undefined) => void;
  readonly #closed = new Promise<Error | undefined>((resolve) => {
    this.#resolveClosed = resolve;
  });
  #reconnectTimer: NodeJS.Timeout | undefined;
  #notifyInfo: NotifyInfo | undefined;
  #notifyBackend: NotifyBackend | undefined;
  readonly #watched = new Map<string, WatchedName>();

  /** Use `connect()`; the constructor does no I/O. */
  constructor(transport: ClientTransport, settings: ClientSettings) {
    super();
    this.#transport = transport;
    this.#settings = settings;
  }

  /** The broker's id for this connection (changes after a reconnect). */
  get peerId(): number {
    return this.#peerId;
  }

  get isClosed(): boolean {
    return this.#state === "closed";
  }

  get isConnected(): boolean {
    return this.#state === "connected";
  }

  /** Opens the first connection; rejects (and closes the client) if the broker cannot be reached. */
  async open(): Promise<void> {
    try {
      await this.#establish();
    } catch (error) {
      this.#shutdown(error as Error);
      throw error;
    }
  }

  // ---- publishing ----

  publish(subject: string, data?: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    try {
      this.#checkOpen();
      checkSubject(subject, false);
      if (options.reply !== undefined) checkSubject(options.reply, false);
      const payload = encodePayload(data);
      this.#checkPayload(payload.bytes);
      const op: ClientOp = { op: "pub", subject, p: payload.bytes, enc: payload.enc };
      if (options.retain === true) op.retain = true;
      if (options.reply !== undefined) op.reply = options.reply;
      if (options.ack === false) return this.#sendUnacked(op).then(() => ({ seq: undefined }));
      return this.#call(op).then((fields) => ({ seq: fields["seq"] as number }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The retained value of `subject`, or `{ found: false }`. */
  async get(subject: string): Promise<GetResult> {
    this.#checkOpen();
    checkSubject(subject, false);
    const fields = await this.#call({ op: "get", subject, id: 0 });
    if (fields["found"] !== true) return { found: false, subject, seq: 0 };
    const raw = fields["p"] as Uint8Array;
    const encoding = (fields["enc"] as PayloadEncoding | undefined) ?? "bytes";
    return { found: true, subject, raw, encoding, data: decodePayload(raw, encoding), seq: fields["seq"] as number };
  }

  /** Sends a request to one subscriber of `subject` and resolves with its reply. */
  async request(subject: string, data?: unknown, options: RequestOptions = {}): Promise<Message> {
    this.#checkOpen();
    checkSubject(subject, false);
    const timeoutMs = options.timeoutMs ?? this.#settings.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new InvalidArgumentError("timeoutMs must be a positive integer");
    const payload = encodePayload(data);
    this.#checkPayload(payload.bytes);
    const fields = await this.#call({ op: "req", subject, p: payload.bytes, enc: payload.enc, timeout: timeoutMs, id: 0 });
    return this.#message(subject, fields);
  }

  /**
   * Answers requests on `subject` with what `handler` returns. Responders of a
   * subject share a queue group, so each request reaches one of them.
   * A handler that throws sends no reply; the requester's timeout reports it.
   */
  async respond(
    subject: string,
    handler: (request: Message) => unknown,
    options: RespondOptions = {},
  ): Promise<Subscription> {
    return this.subscribe(subject, {
      queue: options.queue ?? "responders",
      callback: (request) => {
        if (request.reply === undefined) return;
        Promise.resolve()
          .then(() => handler(request))
          .then((result) => request.respond(result))
          .catch((error: unknown) => this.callbackFailed(undefined, error));
      },
    });
  }

  // ---- subscribing ----

  /** Subscribes; resolves once the broker has the subscription (and replayed retained values, if asked). */
  async subscribe(subject: string, options: SubscribeOptions = {}): Promise<Subscription> {
    this.#checkOpen();
    checkSubject(subject, true);
    if (options.queue !== undefined) {
      const problem = queueNameProblem(options.queue);
      if (problem !== undefined) throw new InvalidSubjectError(problem);
    }
    if (options.maxPending !== undefined && (!Number.isInteger(options.maxPending) || options.maxPending < 1)) {
      throw new InvalidArgumentError("maxPending must be a positive integer");
    }
    const sid = this.#nextSid;
    this.#nextSid = this.#nextSid >= MAX_ID ? 1 : this.#nextSid + 1;
    const sub = new Subscription(this, sid, subject, options);
    this.#subs.set(sid, sub);
    if (this.#state === "connected") {
      try {
        await this.#call(subOp(sub));
      } catch (error) {
        this.#subs.delete(sid);
        sub.end();
        throw error;
      }
    }
    // While reconnecting, the subscription is sent with all the others once connected.
    return sub;
  }

  async unsubscribe(sub: Subscription): Promise<void> {
    if (sub.isClosed || this.#subs.get(sub.sid) !== sub) return;
    this.#subs.delete(sub.sid);
    sub.end();
    if (this.#state === "connected") {
      try {
        await this.#call({ op: "unsub", sid: sub.sid });
      } catch (error) {
        // The connection went away meanwhile: the broker dropped it anyway.
        if (!(error instanceof XpcbusError) || (error.code !== "disconnected" && error.code !== "closed")) throw error;
      }
    }
  }

  // ---- notifications ----

  /**
   * Wakes on every publish to `subject` (a concrete subject: wildcards are for
   * subscribe()), without receiving the payload: the broker posts the
   * subject's notification name and this process sleeps in the kernel until
   * then. With `fetch`, each wake-up also gets the retained value.
   */
  async watch(subject: string, options: WatchOptions = {}): Promise<Watch> {
    this.#checkOpen();
    const problem = subjectProblem(subject, true);
    if (problem !== undefined) throw new InvalidSubjectError(problem);
    if (subjectProblem(subject, false) !== undefined) {
      throw new InvalidSubjectError(`watch() needs a concrete subject, not the pattern "${subject}"; wildcards are for subscribe()`);
    }
    return this.#addWatch(subjectNotifyName(this.#notifyPrefix(), subject), subject, options);
  }

  /** Wakes when the notification `name` is posted (any name, as notify(3) has them). */
  async watchName(name: string, options: Omit<WatchOptions, "fetch"> = {}): Promise<Watch> {
    this.#checkOpen();
    checkNotifyName(name);
    if ((options as WatchOptions).fetch !== undefined) throw new InvalidArgumentError("fetch needs a subject: use watch(subject)");
    this.#notifyPrefix();
    return this.#addWatch(name, undefined, options);
  }

  /** Posts the notification `name` through the broker, setting its state first when given. */
  async post(name: string, state?: bigint | number): Promise<void> {
    this.#checkOpen();
    checkNotifyName(name);
    const op: ClientOp = { op: "post", name };
    if (state !== undefined) op.state = toState(state);
    await this.#call(op);
  }

  /** The 64-bit state of the notification `name`. */
  async notifyState(name: string): Promise<bigint> {
    this.#checkOpen();
    checkNotifyName(name);
    const fields = await this.#call({ op: "state", name, id: 0 });
    return toState(fields["state"] as number | bigint);
  }

  /** The notification prefix of this broker's subjects (`<prefix>.<subject>`). */
  get notifyPrefix(): string | undefined {
    return this.#notifyInfo?.prefix;
  }

  async unwatch(watch: Watch): Promise<void> {
    const entry = this.#watched.get(watch.name);
    if (entry === undefined || !entry.watches.delete(watch)) return;
    watch.end();
    if (entry.watches.size > 0) return;
    this.#watched.delete(watch.name);
    if (entry.token !== undefined) this.#notifyBackend?.remove(entry.token);
    if (this.#state === "connected") {
      try {
        await this.#call({ op: "unwatch", name: watch.name });
      } catch (error) {
        if (!(error instanceof XpcbusError) || (error.code !== "disconnected" && error.code !== "closed")) throw error;
      }
    }
  }

  // ---- broker information ----

  async status(): Promise<BrokerStatus> {
    this.#checkOpen();
    const fields = await this.#call({ op: "status", id: 0 });
    return fields["status"] as BrokerStatus;
  }

  /** Round-trips a ping: resolves once the broker has processed everything sent before it. */
  async flush(): Promise<void> {
    this.#checkOpen();
    await this.#call({ op: "ping" });
  }

  /** Limits announced by the broker in `welcome`. */
  get limits(): BrokerLimits | undefined {
    return this.#limits;
  }

  // ---- ending ----

  /** Unsubscribes everything, waits for outstanding replies, then closes. */
  async drain(): Promise<void> {
    if (this.#state === "closed") return;
    await Promise.allSettled([...this.#subs.values()].map((sub) => this.unsubscribe(sub)));
    await Promise.allSettled([...this.#inflight]);
    await this.close();
  }

  /** Closes now: pending calls fail with ClosedError, subscriptions end. */
  async close(): Promise<void> {
    this.#shutdown(undefined);
    await this.#closed;
  }

  /** Resolves when the client has closed: with the error that closed it, or undefined for a requested close. */
  closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- SubscriptionOwner ----

  slowConsumer(sub: Subscription, dropped: number): void {
    this.emit("slowConsumer", { subject: sub.subject, sid: sub.sid, dropped });
  }

  callbackFailed(_source: Subscription | Watch | undefined, error: unknown): void {
    // Surface on the next tick, outside the dispatch loop, as an unhandled error would be.
    queueMicrotask(() => {
      throw error;
    });
  }

  // ---- internals ----

  #notifyPrefix(): string {
    const prefix = this.#notifyInfo?.prefix;
    if (prefix === undefined) throw new XpcbusError("notify_unavailable", "this broker posts no notifications");
    return prefix;
  }

  async #addWatch(name: string, subject: string | undefined, options: WatchOptions): Promise<Watch> {
    const watch = new Watch(this, name, subject, options);
    let entry = this.#watched.get(name);
    if (entry === undefined) {
      entry = { name, subject, watches: new Set(), token: undefined, fetching: false, fetchAgain: false };
      this.#watched.set(name, entry);
    }
    entry.watches.add(watch);
    if (entry.token === undefined && this.#state === "connected") {
      try {
        const state = await this.#register(entry);
        watch.lastState = state;
      } catch (error) {
        // The broker did not register it: forget it here only (an unwatch would be refused as not_watching).
        entry.watches.delete(watch);
        watch.end();
        if (entry.watches.size === 0) this.#watched.delete(name);
        throw error;
      }
    } else if (entry.token !== undefined) {
      watch.lastState = entry.token.state();
    }
    // While reconnecting, the name is registered with all the others once connected.
    return watch;
  }

  /** Registers `entry`'s name with the broker and the notify backend; resolves with its state. */
  async #register(entry: WatchedName): Promise<bigint> {
    const fields = await this.#call({ op: "watch", name: entry.name, id: 0 });
    const state = toState(fields["state"] as number | bigint);
    const backend = this.#backend();
    if (entry.token !== undefined) backend.remove(entry.token);
    entry.token = backend.add(entry.name, {
      slot: typeof fields["slot"] === "number" ? fields["slot"] : undefined,
      hash: typeof fields["hash"] === "number" ? fields["hash"] : undefined,
      state,
    });
    return state;
  }

  #backend(): NotifyBackend {
    if (this.#notifyBackend !== undefined) return this.#notifyBackend;
    const info = this.#notifyInfo;
    if (info === undefined) throw new XpcbusError("notify_unavailable", "this broker posts no notifications");
    this.#notifyBackend = openNotifyBackend(info, () => this.#onNotifyWake());
    return this.#notifyBackend;
  }

  /** A native waiter saw posts: find which names moved and wake their watches. */
  #onNotifyWake(): void {
    if (this.#state === "closed") return;
    for (const entry of this.#watched.values()) {
      if (entry.token !== undefined && entry.token.changed()) this.#wake(entry, entry.token.state());
    }
  }

  #wake(entry: WatchedName, state: bigint): void {
    let fetchWanted = false;
    for (const watch of entry.watches) {
      if (watch.fetch) fetchWanted = true;
      else watch.deliver({ name: entry.name, subject: entry.subject, state, seq: Number(state) });
    }
    if (fetchWanted) this.#fetch(entry);
  }

  /** Notify-then-fetch, one `get` at a time per name; wakes during a get cause one more get after it. */
  #fetch(entry: WatchedName): void {
    if (entry.fetching) {
      entry.fetchAgain = true;
      return;
    }
    entry.fetching = true;
    void (async () => {
      do {
        entry.fetchAgain = false;
        const state = entry.token?.state() ?? 0n;
        const subject = entry.subject as string;
        let event: { name: string; subject: string; state: bigint; seq: number; value?: Payload; valueSeq?: number } = {
          name: entry.name,
          subject,
          state,
          seq: Number(state),
        };
        try {
          const got = await this.get(subject);
          // The retained value belongs to this wake (or a later one) only if its seq is not older.
          if (got.found && got.seq >= Number(state)) event = { ...event, value: got.data, valueSeq: got.seq };
        } catch {
          // Disconnected or closed: the wake is still delivered, without a value.
        }
        for (const watch of entry.watches) if (watch.fetch) watch.deliver(event);
      } while (entry.fetchAgain && this.#state !== "closed");
      entry.fetching = false;
    })();
  }

  /** After a (re)connect: re-register every watched name; catch up on names that moved meanwhile. */
  async #rewatch(): Promise<void> {
    for (const entry of [...this.#watched.values()]) {
      try {
        const state = await this.#register(entry);
        const seen = [...entry.watches].reduce((max, w) => (w.lastState > max ? w.lastState : max), 0n);
        if (state > seen) this.#wake(entry, state);
      } catch (error) {
        if (this.#state !== "connected") return; // lost again: the next reconnect retries
        if (error instanceof XpcbusError && this.listenerCount("brokerError") > 0) this.emit("brokerError", error as BrokerError);
      }
    }
  }

  #useNotifyInfo(info: NotifyInfo | undefined): void {
    const previous = this.#notifyInfo;
    this.#notifyInfo = info;
    const same =
      previous !== undefined &&
      info !== undefined &&
      previous.mechanism === info.mechanism &&
      (info.mechanism !== "table" || (previous.mechanism === "table" && previous.table === info.table && previous.instance === info.instance));
    if (same) return;
    // A new broker made a new table: the old mapping shows nothing any more.
    this.#notifyBackend?.close();
    this.#notifyBackend = undefined;
    for (const entry of this.#watched.values()) entry.token = undefined;
  }

  #checkOpen(): void {
    if (this.#state === "closed") throw this.#closedError ?? new ClosedError();
  }

  #checkPayload(bytes: Uint8Array): void {
    const max = this.#limits?.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (bytes.byteLength > max) {
      throw new XpcbusError("payload_too_large", `payload of ${bytes.byteLength} bytes is over the broker's limit of ${max}`);
    }
  }

  /** Sends an op that expects `ok`/`err`, assigning its id. */
  #call(op: ClientOp): Promise<Record<string, unknown>> {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_ID ? 1 : this.#nextId + 1;
    op.id = id;
    const call = new Promise<Record<string, unknown>>((resolve, reject) => {
      const pending: PendingOp = { resolve, reject, sent: false };
      this.#pending.set(id, pending);
      try {
        pending.sent = this.#dispatch(op);
      } catch (error) {
        this.#pending.delete(id);
        reject(error);
      }
    });
    const tracked: Promise<unknown> = call.then(
      () => this.#inflight.delete(tracked),
      () => this.#inflight.delete(tracked),
    );
    this.#inflight.add(tracked);
    return call;
  }

  async #sendUnacked(op: ClientOp): Promise<void> {
    if (this.#dispatch(op) && this.#connection !== undefined) await this.#connection.drained();
  }

  /** Sends now when connected, else buffers. Returns whether it was sent. */
  #dispatch(op: ClientOp): boolean {
    const connection = this.#connection;
    if (this.#state === "connected" && connection !== undefined) {
      if (connection.bufferedBytes > MAX_WRITE_BUFFER_BYTES) {
        throw new BufferFullError(`over ${MAX_WRITE_BUFFER_BYTES} bytes are waiting to be written to the broker`);
      }
      connection.send(op);
      return true;
    }
    if (!this.#settings.reconnect.enabled) throw new ConnectionError("not_connected", "not connected to the broker");
    const bytes = ("p" in op ? op.p.byteLength : 0) + OP_OVERHEAD_BYTES;
    if (this.#outboxBytes + bytes > this.#settings.reconnect.bufferBytes) {
      throw new BufferFullError(
        `the ${this.#settings.reconnect.bufferBytes}-byte buffer for messages sent while reconnecting is full`,
      );
    }
    this.#outbox.push({ op, bytes });
    this.#outboxBytes += bytes;
    return false;
  }

  async #establish(): Promise<void> {
    let welcomed!: (fields: Record<string, unknown>) => void;
    let refused!: (error: Error) => void;
    const welcome = new Promise<Record<string, unknown>>((resolve, reject) => {
      welcomed = resolve;
      refused = reject;
    });
    // The handlers run before connect() resolves only if the broker speaks first; `held` covers that.
    const held: { connection?: ClientConnection } = {};
    let greeted = false;
    let connection: ClientConnection;
    try {
      connection = await this.#transport.connect({
        message: (map) => {
          if (!greeted) {
            // Before welcome, the broker only refuses (too_many_peers, unsupported_version, shutdown…).
            if (map["op"] === "welcome") {
              greeted = true;
              welcomed(map);
            } else if (map["op"] === "err") {
              refused(brokerErrorFromWire(map["code"], map["reason"]));
            }
            return;
          }
          this.#onMessage(map);
        },
        closed: (error) => {
          refused(new ConnectionError("disconnected", "the broker closed the connection during hello", error));
          if (held.connection !== undefined && this.#connection === held.connection) this.#lost(error);
        },
      });
      held.connection = connection;
    } catch (cause) {
      throw new ConnectionError("connection_failed", `cannot connect to the broker at ${this.#transport.address}: ${(cause as Error).message}`, cause);
    }
    connection.send({ op: "hello", v: PROTOCOL_VERSION, name: this.#settings.name, id: 0 });
    let fields: Record<string, unknown>;
    try {
      fields = await welcome;
    } catch (error) {
      connection.close();
      throw error;
    }
    if (this.#state === "closed") {
      connection.close();
      return;
    }
    this.#connection = connection;
    this.#peerId = fields["peer"] as number;
    this.#limits = fields["limits"] as BrokerLimits;
    this.#useNotifyInfo(normaliseNotifyInfo(fields["notify"]));
    this.#state = "connected";
    // Subscriptions first, so nothing published by the buffered ops is missed.
    for (const sub of this.#subs.values()) {
      // Replay again if asked: values may have changed while disconnected (seq tells repeats apart).
      connection.send(subOp(sub));
    }
    const outbox = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const { op } of outbox) {
      connection.send(op);
      if (op.id !== undefined) {
        const pending = this.#pending.get(op.id);
        if (pending !== undefined) pending.sent = true;
      }
    }
    if (this.#watched.size > 0) void this.#rewatch();
  }

  #onMessage(map: Record<string, unknown>): void {
    switch (map["op"]) {
      case "msg":
        this.#route(map);
        return;
      case "ok":
      case "pong": {
        const id = map["id"];
        if (typeof id !== "number") return;
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        pending.resolve(map);
        return;
      }
      case "err": {
        const error = brokerErrorFromWire(map["code"], map["reason"]);
        const id = map["id"];
        const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
        if (pending !== undefined) {
          this.#pending.delete(id as number);
          pending.reject(error);
        } else if (this.listenerCount("brokerError") > 0) {
          this.emit("brokerError", error);
        }
        return;
      }
      case "dropped":
        this.emit("dropped", { count: Number(map["count"]), total: Number(map["total"]) });
        return;
      case "bye":
        // The broker is going away; the close that follows triggers a reconnect.
        return;
    }
  }

  #route(map: Record<string, unknown>): void {
    const subject = map["subject"];
    if (typeof subject !== "string") return;
    const sid = map["sid"];
    if (typeof sid === "number") {
      const sub = this.#subs.get(sid);
      if (sub !== undefined) sub.deliver(this.#message(subject, map));
      return;
    }
    const queue = typeof map["queue"] === "string" ? map["queue"] : undefined;
    let message: Message | undefined;
    for (const sub of this.#subs.values()) {
      if (sub.queue !== queue || !subjectMatches(sub.subject, subject)) continue;
      message ??= this.#message(subject, map);
      sub.deliver(message);
      // A queue message is for one member: the first matching local subscription of that group.
      if (queue !== undefined) return;
    }
  }

  #message(subject: string, fields: Record<string, unknown>): Message {
    const raw = fields["p"] instanceof Uint8Array ? fields["p"] : new Uint8Array(0);
    const encoding = (fields["enc"] as PayloadEncoding | undefined) ?? "bytes";
    const reply = typeof fields["reply"] === "string" ? fields["reply"] : undefined;
    return {
      subject,
      raw,
      encoding,
      data: decodePayload(raw, encoding),
      seq: typeof fields["seq"] === "number" ? fields["seq"] : 0,
      reply,
      respond: (data?: unknown) => {
        if (reply === undefined) return Promise.reject(new InvalidArgumentError(`the message on "${subject}" asked for no reply`));
        return this.publish(reply, data).then(() => undefined);
      },
    };
  }

  #lost(error: Error | undefined): void {
    this.#connection = undefined;
    if (this.#state === "closed") return;
    this.#state = "reconnecting";
    for (const [id, pending] of this.#pending) {
      if (!pending.sent) continue;
      this.#pending.delete(id);
      pending.reject(new ConnectionError("disconnected", "the connection to the broker was lost before the reply came", error));
    }
    this.emit("disconnected", error);
    if (!this.#settings.reconnect.enabled) {
      this.#shutdown(new ConnectionError("disconnected", "the connection to the broker was lost", error));
      return;
    }
    this.#scheduleReconnect(1);
  }

  #scheduleReconnect(attempt: number): void {
    const { initialDelayMs, maxDelayMs, maxAttempts } = this.#settings.reconnect;
    if (maxAttempts > 0 && attempt > maxAttempts) {
      this.#shutdown(new ConnectionError("connection_failed", `gave up reconnecting to ${this.#transport.address} after ${maxAttempts} attempts`));
      return;
    }
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 20));
    // Full jitter in the upper half: clients of a restarted broker do not all come back at once.
    const delayMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.emit("reconnecting", { attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#establish().then(
        () => {
          if (this.#state === "connected") this.emit("reconnected", { peer: this.#peerId });
        },
        () => {
          if (this.#state !== "closed") this.#scheduleReconnect(attempt + 1);
        },
      );
    }, delayMs);
  }

  #shutdown(error: Error | undefined): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#closedError = error;
    clearTimeout(this.#reconnectTimer);
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.close();
    const reason = error ?? new ClosedError();
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const sub of this.#subs.values()) sub.end();
    this.#subs.clear();
    for (const entry of this.#watched.values()) for (const watch of entry.watches) watch.end();
    this.#watched.clear();
    this.#notifyBackend?.close();
    this.#notifyBackend = undefined;
    this.emit("closed", error);
    this.#resolveClosed(error);
  }
}

function subOp(sub: Subscription): ClientOp & { op: "sub" } {
  const op: ClientOp & { op: "sub" } = { op: "sub", sid: sub.sid, subject: sub.subject };
  if (sub.queue !== undefined) op.queue = sub.queue;
  if (sub.replay) op.replay = true;
  return op;
}

function checkNotifyName(name: string): void {
  const problem = notifyNameProblem(name);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
}

function toState(value: bigint | number): bigint {
  const state = BigInt(value);
  if (state < 0n || state >= 1n << 64n) throw new InvalidArgumentError("a notification state is an unsigned 64-bit integer");
  return state;
}

function normaliseNotifyInfo(value: unknown): NotifyInfo | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const info = value as Record<string, unknown>;
  if (typeof info["prefix"] !== "string") return undefined;
  if (info["mechanism"] === "table" && typeof info["table"] === "string") {
    return {
      mechanism: "table",
      prefix: info["prefix"],
      table: info["table"],
      slots: Number(info["slots"]),
      instance: BigInt(info["instance"] as number | bigint),
    };
  }
  if (info["mechanism"] === "notify(3)") return { mechanism: "notify(3)", prefix: info["prefix"] };
  return undefined; // a mechanism this SDK does not know: no notifications rather than wrong ones
}

function checkSubject(subject: string, wildcards: boolean): void {
  const problem = subjectProblem(subject, wildcards);
  if (problem !== undefined) throw new InvalidSubjectError(problem);
}

export { DEFAULT_REQUEST_TIMEOUT_MS };
