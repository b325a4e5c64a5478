// The client an application holds: its public methods, checked here, and its
// events. The work is done by three parts it wires together: the connection
// to the broker (broker-connection.ts: hello, reconnects, ids, the buffer),
// the subscriptions (subscription-registry.ts: sids, local dispatch) and the
// watches (watch-registry.ts: notification names, backends, rewatch).

import { EventEmitter } from "node:events";
import { CallbackError, DrainTimeoutError, InvalidArgumentError, InvalidSubjectError, XpcbusError, type BrokerError, type UntrustedBrokerError } from "./errors.js";
import type { ClientTransport } from "./client-transport.js";
import type { BrokerLimits, BrokerStatus, ClientOp, DeliverMsg, GapMsg } from "../protocol/index.js";
import { decodePayload, encodePayload, MAX_HISTORY_LIMIT, notifyNameProblem, PAYLOAD_ENCODINGS, subjectNotifyName, subjectProblem } from "../protocol/index.js";
import { createMessage, parseSubscribeOptions, Subscription, type Message, type MessageParts, type SubscribeOptions, type SubscriptionOwner } from "./subscription.js";
import { Watch, type WatchOptions, type WatchOwner } from "./watch.js";
import { BrokerConnection, type ConnectionOwner } from "./broker-connection.js";
import { SubscriptionRegistry } from "./subscription-registry.js";
import { WatchRegistry } from "./watch-registry.js";
import { FetchWatches } from "./fetch-watches.js";
import { parseDrainOptions, type ClientEvents, type ClientSettings, type DrainOptions, type GetResult } from "./client-options.js";
import type { HistoryMessage, HistoryOptions, HistoryResult } from "./client-options.js";
import type { PublishAck, PublishOptions, RequestOptions, RespondOptions } from "./client-options.js";
import { answerRequest, responderErrorOf } from "./responder-error.js";

/** The answer to every `ack: false` publish: nothing to tell, so one shared, settled promise. */
const UNACKED_ANSWER: PublishAck = Object.freeze({ seq: undefined });
const UNACKED = Promise.resolve(UNACKED_ANSWER);
const unacked = (): PublishAck => UNACKED_ANSWER;

export class Client extends EventEmitter<ClientEvents> implements SubscriptionOwner, WatchOwner {
  readonly #connection: BrokerConnection;
  readonly #subs: SubscriptionRegistry;
  /** A refused reconnect was warned about since the last welcome (no `untrustedBroker` listener). */
  #warnedUntrusted = false;
  readonly #watches: WatchRegistry;
  /** Watches with `fetch`: subscriptions underneath (fetch-watches.ts says why). */
  readonly #fetchWatches: FetchWatches;
  /** respond() handlers still running, with the sending of their replies; drain() waits for them. */
  readonly #answering = new Set<Promise<void>>();
  /** What a received message's respond() calls: made once, shared by every message. */
  readonly #sendReply = (subject: string, data: unknown): Promise<unknown> => this.publish(subject, data);

  /** Use `connect()`; the constructor does no I/O. */
  constructor(transport: ClientTransport, settings: ClientSettings) {
    super();
    this.#subs = new SubscriptionRegistry(this, (message) => this.#message(message.subject, message));
    const connection = new BrokerConnection(transport, settings, this.#connectionOwner());
    this.#connection = connection;
    this.#watches = new WatchRegistry(
      {
        get state() {
          return connection.state;
        },
        call: (op) => connection.call(op),
        brokerError: (error) => this.#brokerError(error),
      },
      this,
    );
    this.#fetchWatches = new FetchWatches(
      {
        get state() {
          return connection.state;
        },
        subscribe: (subject, callback) => this.#subscribe(subject, { callback }, false),
        unsubscribe: (sub) => this.unsubscribe(sub),
        get: (subject) => this.get(subject),
      },
      this,
    );
  }

  /** The broker's id for this connection (changes after a reconnect). */
  get peerId(): number {
    return this.#connection.peerId;
  }

  get isClosed(): boolean {
    return this.#connection.state === "closed";
  }

  get isConnected(): boolean {
    return this.#connection.state === "connected";
  }

  /** Opens the first connection; rejects (and closes the client) if the broker cannot be reached. */
  open(): Promise<void> {
    return this.#connection.open();
  }

  // ---- publishing ----


  publish(subject: string, data?: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    try {
      this.#connection.checkOpen();
      checkSubject(subject, false);
      if (options.reply !== undefined) checkSubject(options.reply, false);
      const payload = encodePayload(data);
      if (options.encoding !== undefined) {
        if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('publish option "encoding" goes with bytes: data is encoded from its type otherwise');
        if (!(PAYLOAD_ENCODINGS as readonly string[]).includes(options.encoding)) throw new InvalidArgumentError(`publish option "encoding" must be one of ${PAYLOAD_ENCODINGS.join(", ")}`);
        payload.enc = options.encoding;
      }
      this.#connection.checkPayload(payload.bytes);
      const op: ClientOp & { op: "pub" } = { op: "pub", subject, p: payload.bytes, enc: payload.enc };
      if (options.retain === true) op.retain = true;
      if (options.reply !== undefined) op.reply = options.reply;
      if (options.ack === false) return this.#connection.sendUnacked(op)?.then(unacked) ?? UNACKED;
      return this.#connection.call(op).then((answer) => ({ seq: answer.seq }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The retained value of `subject`, or `{ found: false }`. */
  async get(subject: string): Promise<GetResult> {
    this.#connection.checkOpen();
    checkSubject(subject, false);
    const answer = await this.#connection.call({ op: "get", subject, id: 0 });
    if (!answer.found) return { found: false, subject, seq: 0 };
    const encoding = answer.enc ?? "bytes";
    return { found: true, subject, raw: answer.p, encoding, data: decodePayload(answer.p, encoding), seq: answer.seq };
  }

  /**
   * The latest messages the broker keeps of `subject` (a subject or a
   * pattern), oldest first: at most `limit` (default 100, at most 1000),
   * fewer when the broker's history bound or its frame size holds fewer
   * (`truncated` says the latter). Needs the subscribe right on `subject`.
   */
  async history(subject: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    this.#connection.checkOpen();
    checkSubject(subject, true);
    const limit = parseHistoryOptions(options);
    const op: ClientOp & { op: "history" } = { op: "history", subject, id: 0 };
    if (limit !== undefined) op.limit = limit;
    const answer = await this.#connection.call(op);
    const messages = answer.messages.map((m): HistoryMessage => {
      const encoding = m.enc ?? "bytes";
      return { subject: m.subject, data: decodePayload(m.p, encoding), raw: m.p, encoding, seq: m.seq, time: new Date(m.time) };
    });
    return { messages, truncated: answer.truncated };
  }

  /**
   * Sends a request to one subscriber of `subject` and resolves with its reply.
   * Rejects with ResponderError when the responder's handler failed.
   */
  async request(subject: string, data?: unknown, options: RequestOptions = {}): Promise<Message> {
    this.#connection.checkOpen();
    checkSubject(subject, false);
    const timeoutMs = options.timeoutMs ?? this.#connection.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new InvalidArgumentError("timeoutMs must be a positive integer");
    const payload = encodePayload(data);
    this.#connection.checkPayload(payload.bytes);
    const answer = await this.#connection.call({ op: "req", subject, p: payload.bytes, enc: payload.enc, timeout: timeoutMs, id: 0 });
    const reply = this.#message(subject, answer);
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
        const answer = answerRequest(subject, request, handler, (error) => this.#reportCallbackError(error));
        this.#answering.add(answer);
        void answer.then(() => this.#answering.delete(answer));
      },
    });
  }

  // ---- subscribing ----

  /**
   * Subscribes; resolves once the broker has the subscription (and has
   * replayed retained values, or the kept messages after `since`/`sinceTime`,
   * if asked). After a reconnect every subscription but a queue member's
   * resumes from its `lastSeq`: it gets what was published meanwhile, as far
   * as the broker's history reaches (a gap is reported past it).
   */
  subscribe(subject: string, options: SubscribeOptions = {}): Promise<Subscription> {
    return this.#subscribe(subject, options, true);
  }

  /** subscribe(); `resumes` false for a fetching watch's subscription (fetch-watches.ts). */
  async #subscribe(subject: string, options: SubscribeOptions, resumes: boolean): Promise<Subscription> {
    this.#connection.checkOpen();
    checkSubject(subject, true);
    const start = parseSubscribeOptions(options);
    const sub = this.#subs.add(subject, options, start, resumes);
    if (this.#connection.state === "connected") {
      try {
        // began() runs as the ok is read: the frames after it are this subscription's live messages.
        await this.#connection.call(sub.subOp(), (answer) => sub.began(answer.seq));
      } catch (error) {
        this.#subs.remove(sub);
        throw error;
      }
    }
    // While reconnecting, the subscription is sent with all the others once connected.
    return sub;
  }

  async unsubscribe(sub: Subscription): Promise<void> {
    if (!this.#subs.remove(sub)) return;
    if (this.#connection.state === "connected") {
      try {
        await this.#connection.call({ op: "unsub", sid: sub.sid });
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
   * then. With `fetch`, each event also carries the subject's retained value
   * when the publish was retained; such a watch is a subscription underneath
   * (it needs the `subscribe` right, not `watch`; fetch-watches.ts says why).
   */
  async watch(subject: string, options: WatchOptions = {}): Promise<Watch> {
    this.#connection.checkOpen();
    const problem = subjectProblem(subject, true);
    if (problem !== undefined) throw new InvalidSubjectError(problem);
    if (subjectProblem(subject, false) !== undefined) {
      throw new InvalidSubjectError(`watch() needs a concrete subject, not the pattern "${subject}"; wildcards are for subscribe()`);
    }
    const name = subjectNotifyName(this.#watches.requirePrefix(), subject);
    if (options.fetch === true) return this.#fetchWatches.add(name, subject, options);
    return this.#watches.add(name, subject, options);
  }

  /** Wakes when the notification `name` is posted (any name, as notify(3) has them). */
  async watchName(name: string, options: Omit<WatchOptions, "fetch"> = {}): Promise<Watch> {
    this.#connection.checkOpen();
    checkNotifyName(name);
    if ((options as WatchOptions).fetch !== undefined) throw new InvalidArgumentError("fetch needs a subject: use watch(subject)");
    this.#watches.requirePrefix();
    return this.#watches.add(name, undefined, options);
  }

  /** Posts the notification `name` through the broker, setting its state first when given. */
  async post(name: string, state?: bigint | number): Promise<void> {
    this.#connection.checkOpen();
    checkNotifyName(name);
    const op: ClientOp & { op: "post" } = { op: "post", name };
    if (state !== undefined) op.state = toState(state);
    await this.#connection.call(op);
  }

  /** The 64-bit state of the notification `name`. */
  async notifyState(name: string): Promise<bigint> {
    this.#connection.checkOpen();
    checkNotifyName(name);
    return (await this.#connection.call({ op: "state", name, id: 0 })).state;
  }

  /** The notification prefix of this broker's subjects (`<prefix>.<subject>`). */
  get notifyPrefix(): string | undefined {
    return this.#watches.notifyPrefix;
  }

  unwatch(watch: Watch): Promise<void> {
    if (this.#fetchWatches.owns(watch)) return this.#fetchWatches.remove(watch);
    return this.#watches.remove(watch);
  }

  // ---- broker information ----

  async status(): Promise<BrokerStatus> {
    this.#connection.checkOpen();
    return this.#connection.call({ op: "status", id: 0 });
  }

  /** Round-trips a ping: resolves once the broker has processed everything sent before it. */
  async flush(): Promise<void> {
    this.#connection.checkOpen();
    await this.#connection.call({ op: "ping" });
  }

  /** Limits announced by the broker in `welcome`. */
  get limits(): BrokerLimits | undefined {
    return this.#connection.limits;
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
    if (this.#connection.state === "closed") return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), timeoutMs);
    });
    const drained = (async (): Promise<"drained"> => {
      // No new request reaches a handler once its subscription is gone.
      await Promise.allSettled(this.#subs.all().map((sub) => this.unsubscribe(sub)));
      // The replies of running handlers are calls: wait for the handlers first, then for every call.
      await Promise.allSettled([...this.#answering]);
      await this.#connection.callsSettled();
      return "drained";
    })();
    const outcome = await Promise.race([drained, expired]);
    clearTimeout(timer);
    await this.close();
    if (outcome === "expired") throw new DrainTimeoutError(timeoutMs);
  }

  /** Closes now: pending calls fail with ClosedError, subscriptions end. */
  async close(): Promise<void> {
    this.#connection.shutdown(undefined);
    await this.#connection.closed();
  }

  /** Resolves when the client has closed: with the error that closed it, or undefined for a requested close. */
  closed(): Promise<Error | undefined> {
    return this.#connection.closed();
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

  /** What the connection tells this client: events to emit, and the registries' part in each new connection. */
  #connectionOwner(): ConnectionOwner {
    return {
      welcomed: (welcome, brokerUid) => {
        this.#warnedUntrusted = false;
        this.#watches.useNotifyInfo(welcome.notify, brokerUid);
      },
      resumeOps: () => this.#subs.resumeOps(),
      resumed: () => {
        this.#watches.rewatch();
        this.#fetchWatches.resumed();
      },
      deliver: (message: DeliverMsg) => this.#subs.route(message),
      gap: (message) => this.#gap(message),
      brokerError: (error) => this.#brokerError(error),
      dropped: (info) => this.emit("dropped", info),
      disconnected: (error) => this.emit("disconnected", error),
      reconnecting: (info) => this.emit("reconnecting", info),
      reconnected: (info) => this.emit("reconnected", info),
      untrustedBroker: (error) => this.#untrustedBroker(error),
      closed: (error) => {
        this.#subs.endAll();
        this.#watches.endAll();
        this.#fetchWatches.endAll();
        this.emit("closed", error);
      },
    };
  }

  /** Never silent (STYLE 14): the subscription's onGap, the `gap` event, and a warning when neither is there. */
  #gap(message: GapMsg): void {
    const found = this.#subs.gap(message);
    if (found === undefined) return;
    const { sub, gap } = found;
    const handled = sub.gap(gap);
    const listened = this.listenerCount("gap") > 0;
    if (listened) this.emit("gap", { ...gap, sid: sub.sid, pattern: sub.subject });
    if (!handled && !listened) {
      const count = gap.lost === undefined ? "an unknown number of messages" : `${gap.atLeast ? "at least " : ""}${gap.lost} message${gap.lost === 1 ? "" : "s"}`;
      process.emitWarning(`subscription "${sub.subject}" resumed without ${count} on "${gap.subject}": the broker no longer keeps them`, "XpcbusGapWarning");
    }
  }

  /** Never silent: the `untrustedBroker` event, else one warning per run of refused attempts. */
  #untrustedBroker(error: UntrustedBrokerError): void {
    if (this.listenerCount("untrustedBroker") > 0) {
      this.emit("untrustedBroker", error);
      return;
    }
    if (this.#warnedUntrusted) return;
    this.#warnedUntrusted = true;
    process.emitWarning(error);
  }

  #brokerError(error: BrokerError): void {
    if (this.listenerCount("brokerError") > 0) this.emit("brokerError", error);
  }

  #message(subject: string, parts: MessageParts): Message {
    return createMessage(subject, parts, this.#sendReply);
  }

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
}

const HISTORY_OPTION_NAMES = ["limit"];

/** history()'s options, checked by name: the limit, or undefined for the broker's default. */
function parseHistoryOptions(options: HistoryOptions): number | undefined {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("history() takes an options object");
  for (const key of Object.keys(options)) {
    if (!HISTORY_OPTION_NAMES.includes(key)) throw new InvalidArgumentError(`unknown history option "${key}"; known: ${HISTORY_OPTION_NAMES.join(", ")}`);
  }
  const { limit } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT)) {
    throw new InvalidArgumentError(`history option "limit" must be an integer from 1 to ${MAX_HISTORY_LIMIT} (got ${String(limit)})`);
  }
  return limit;
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

function checkSubject(subject: string, wildcards: boolean): void {
  const problem = subjectProblem(subject, wildcards);
  if (problem !== undefined) throw new InvalidSubjectError(problem);
}
