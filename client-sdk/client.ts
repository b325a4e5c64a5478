// The client: one connection to the broker, kept alive across broker
// restarts. It owns the subscriptions (and re-sends them after a reconnect),
// correlates replies to ops by `id`, dispatches messages to subscriptions
// locally, and holds publishes made while disconnected in a bounded buffer.

import { EventEmitter } from "node:events";
import {
  BufferFullError,
  brokerErrorFromWire,
  CallbackError,
  ClosedError,
  ConnectionError,
  ConnectionRefusedError,
  DrainTimeoutError,
  InvalidArgumentError,
  InvalidQueueError,
  InvalidSubjectError,
  XpcbusError,
  type BrokerError,
} from "./errors.js";
import type { ClientConnection, ClientTransport } from "./client-transport.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, MAX_ID, PROTOCOL_VERSION } from "../protocol/index.js";
import type { BrokerLimits, BrokerStatus, ClientOp, PayloadEncoding } from "../protocol/index.js";
import { decodePayload, encodePayload, type Payload } from "../protocol/index.js";
import { subjectMatches, subjectProblem, queueNameProblem } from "../protocol/index.js";
import { Subscription, type Message, type SubscribeOptions, type SubscriptionOwner } from "./subscription.js";
import { Watch, type WatchOptions, type WatchOwner } from "./watch.js";
import { openNotifyBackend, type NotifyBackend, type NotifyToken } from "./notify/notify-backend.js";
import { notifyNameProblem, subjectNotifyName } from "../protocol/index.js";
import type { NotifyInfo } from "../protocol/index.js";
import { responderErrorOf, responderErrorReply } from "./responder-error.js";

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

export interface DrainOptions {
  /**
   * Longest wait, in ms, for the unsubscribes, the running respond() handlers
   * and the outstanding calls (default DEFAULT_DRAIN_TIMEOUT_MS). Past it the
   * client closes anyway and drain() rejects with DrainTimeoutError.
   */
  timeoutMs?: number;
}

/**
 * drain()'s default bound: nats.go's DrainTimeout. Long enough for a handler
 * doing real work and for requests with the default 5 s timeout to settle;
 * short enough that a stuck handler cannot hold a process's shutdown for ever.
 */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

const DRAIN_OPTION_NAMES = ["timeoutMs"];

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
  /**
   * A subscription, watch or respond() callback threw (or its promise
   * rejected); delivery goes on. Not named "error" on purpose: an "error" that
   * nobody listens to throws, and an application's bug must not crash its
   * host. Without a listener the error is written as a process warning.
   */
  callbackError: [error: CallbackError];
  /**
   * The client closed: `undefined` for close()/drain(), else why, e.g. a
   * ConnectionRefusedError when the broker refused it for good.
   */
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
  /** respond() handlers still running, with the sending of their replies; drain() waits for them. */
  readonly #answering = new Set<Promise<void>>();
  /** A refusal the broker sent before closing (connection_denied…): the close that follows ends the client. */
  #refusal: ConnectionRefusedError | undefined;

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

  /**
   * Sends a request to one subscriber of `subject` and resolves with its reply.
   * Rejects with ResponderError when the responder's handler failed.
   */
  async request(subject: string, data?: unknown, options: RequestOptions = {}): Promise<Message> {
    this.#checkOpen();
    checkSubject(subject, false);
    const timeoutMs = options.timeoutMs ?? this.#settings.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new InvalidArgumentError("timeoutMs must be a positive integer");
    const payload = encodePayload(data);
    this.#checkPayload(payload.bytes);
    const fields = await this.#call({ op: "req", subject, p: payload.bytes, enc: payload.enc, timeout: timeoutMs, id: 0 });
    const reply = this.#message(subject, fields);
    const failed = responderErrorOf(reply);
    if (failed !== undefined) throw failed;
    return reply;
  }

  /**
   * Answers requests on `subject` with what `handler` returns (or resolves to).
   * Responders of a subject share a queue group, so each request reaches one
   * of them. A handler that throws (or rejects, or returns a value that cannot
   * be sent) answers with an error reply, so the requester's request() rejects
   * at once with a ResponderError carrying the handler's message; this client
   * reports the failure as a `callbackError` event. drain() waits for running
   * handlers.
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
        const answer = this.#answer(subject, request, handler);
        this.#answering.add(answer);
        void answer.then(() => this.#answering.delete(answer));
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
      if (problem !== undefined) throw new InvalidQueueError(problem);
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

  /**
   * Unsubscribes everything, lets running respond() handlers finish and send
   * their replies, waits for outstanding replies to this client's calls, then
   * closes. All of it within `timeoutMs` (default DEFAULT_DRAIN_TIMEOUT_MS):
   * past it the client closes anyway and drain() rejects with DrainTimeoutError.
   */
  async drain(options: DrainOptions = {}): Promise<void> {
    const timeoutMs = parseDrainOptions(options);
    if (this.#state === "closed") return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), timeoutMs);
    });
    const drained = (async (): Promise<"drained"> => {
      // No new request reaches a handler once its subscription is gone.
      await Promise.allSettled([...this.#subs.values()].map((sub) => this.unsubscribe(sub)));
      // The replies of running handlers are calls: wait for the handlers first, then for every call.
      await Promise.allSettled([...this.#answering]);
      await Promise.allSettled([...this.#inflight]);
      return "drained";
    })();
    const outcome = await Promise.race([drained, expired]);
    clearTimeout(timer);
    await this.close();
    if (outcome === "expired") throw new DrainTimeoutError(timeoutMs);
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

  callbackFailed(source: Subscription | Watch, error: unknown): void {
    if (source instanceof Watch) this.#reportCallbackError(new CallbackError("watch", source.name, error));
    else this.#reportCallbackError(new CallbackError("subscription", source.subject, error));
  }

  // ---- internals ----

  /** Tells the application a callback failed, without ever throwing into the dispatch loop or the event loop. */
  #reportCallbackError(error: CallbackError): void {
    if (this.listenerCount("callbackError") > 0) {
      try {
        this.emit("callbackError", error);
        return;
      } catch (listenerError) {
        // The listener threw too: warn about both rather than crash.
        process.emitWarning(new CallbackError(error.source, error.subject, listenerError));
      }
    }
    process.emitWarning(error);
  }

  /** Runs a responder's handler and sends its reply, or an error reply when it fails. Never rejects. */
  async #answer(subject: string, request: Message, handler: (request: Message) => unknown): Promise<void> {
    let result: unknown;
    try {
      result = await handler(request);
    } catch (error) {
      await this.#answerFailed(subject, request, error);
      return;
    }
    try {
      await request.respond(result);
    } catch (error) {
      // A value that cannot be sent is the handler's failure too; a lost or
      // closed connection is not, and the broker tells the requester
      // (responder_gone) or its timeout does.
      if (error instanceof XpcbusError && (error.code === "invalid_argument" || error.code === "payload_too_large")) {
        await this.#answerFailed(subject, request, error);
      }
    }
  }

  async #answerFailed(subject: string, request: Message, error: unknown): Promise<void> {
    this.#reportCallbackError(new CallbackError("responder", subject, error));
    try {
      await request.respond(responderErrorReply(error));
    } catch {
      // Disconnected or closed meanwhile: the requester hears responder_gone, or times out.
    }
  }

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
        const { state, missed } = await this.#register(entry);
        watch.lastState = state;
        if (missed !== undefined) this.#wake(entry, missed);
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

  /**
   * Registers `entry`'s name with the broker and the notify backend. Resolves
   * with the state the broker answered and, in `missed`, the name's state now
   * if it was posted after that answer and before the token existed.
   */
  async #register(entry: WatchedName): Promise<{ state: bigint; missed: bigint | undefined }> {
    const fields = await this.#call({ op: "watch", name: entry.name, id: 0 });
    const state = toState(fields["state"] as number | bigint);
    const backend = this.#backend();
    if (entry.token !== undefined) backend.remove(entry.token);
    const token = backend.add(entry.name, {
      slot: typeof fields["slot"] === "number" ? fields["slot"] : undefined,
      hash: typeof fields["hash"] === "number" ? fields["hash"] : undefined,
      state,
    });
    entry.token = token;
    // A post that lands after the broker's answer and before the token took
    // its baseline (the table's generation; notifyd's registration) wakes
    // nobody: the baseline already includes it. Only the state shows it
    // (PROTOCOL.md 9.9.5 step 4). changed() first, then state(): the state
    // read is then that of the baseline or newer, and a post after the
    // baseline that changed() consumed here is not lost either.
    const moved = token.changed();
    const now = token.state();
    return { state, missed: moved || now !== state ? now : undefined };
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
        const { state, missed } = await this.#register(entry);
        const seen = [...entry.watches].reduce((max, w) => (w.lastState > max ? w.lastState : max), 0n);
        // A post since the broker's answer (missed) is a post whatever its
        // state; the answer itself counts only if newer than what the watches saw.
        if (missed !== undefined) this.#wake(entry, missed);
        else if (state > seen) this.#wake(entry, state);
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
          return;
        }
        // Errors that close carry no id (section 10); a permanent refusal ends the client when the close comes.
        if (id === undefined && error instanceof ConnectionRefusedError) this.#refusal = error;
        if (this.listenerCount("brokerError") > 0) this.emit("brokerError", error);
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
    const refusal = this.#refusal;
    if (refusal !== undefined) {
      // Reconnecting would be refused the same way: close with the broker's reason, failing every call with it.
      this.emit("disconnected", refusal);
      this.#shutdown(refusal);
      return;
    }
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
        (error: unknown) => {
          if (this.#state === "closed") return;
          // Refused at hello for who this client is (e.g. a broker restarted with a stricter policy): stop.
          if (error instanceof ConnectionRefusedError) this.#shutdown(error);
          else this.#scheduleReconnect(attempt + 1);
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

function parseDrainOptions(options: DrainOptions): number {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("drain() takes an options object");
  for (const key of Object.keys(options)) {
    if (!DRAIN_OPTION_NAMES.includes(key)) throw new InvalidArgumentError(`unknown drain option "${key}"; known: ${DRAIN_OPTION_NAMES.join(", ")}`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidArgumentError(`drain option "timeoutMs" must be a positive integer (got ${String(options.timeoutMs)})`);
  }
  return timeoutMs;
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
