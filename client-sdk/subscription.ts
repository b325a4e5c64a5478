// A subscription: an AsyncIterable of messages, or a callback (never both).
// Messages wait in a bounded queue while the application is busy; past the
// bound the oldest are dropped and counted, never buffered without limit.
// It remembers where it is in the broker's one sequence (lastSeq), so that
// after a reconnect it resumes from there (docs/PROTOCOL.md §9.10).

import { Delivery } from "./delivery.js";
import { InvalidArgumentError, InvalidQueueError } from "./errors.js";
import { decodePayload, queueNameProblem, type Payload } from "../protocol/index.js";
import type { PayloadEncoding, SubOp } from "../protocol/index.js";

/** Messages kept for an iterator that is not keeping up, by default. */
export const DEFAULT_MAX_PENDING_MESSAGES = 10_000;

export interface Message {
  readonly subject: string;
  /** The payload as it was published: bytes, a string, or a JSON value. */
  readonly data: Payload;
  /** The payload's bytes as they travelled. */
  readonly raw: Uint8Array;
  readonly encoding: PayloadEncoding;
  /**
   * The broker's sequence number of this publish: one counter for all
   * subjects, increasing, never reused (0 for a request's reply).
   */
  readonly seq: number;
  /** Where a reply goes, when the sender asked for one. */
  readonly reply: string | undefined;
  /** Whether the payload is the subject's retained value (published with `retain`, or replayed). */
  readonly retained: boolean;
  /** Publishes `data` to `reply`. Rejects when the message asked for no reply. */
  respond(data?: unknown): Promise<void>;
}

/** What a received message is made of: a `msg`, or the `ok` of a `req` (its reply). */
export interface MessageParts {
  p: Uint8Array;
  /** Absent means "bytes" (docs/PROTOCOL.md §6.2). */
  enc?: PayloadEncoding | undefined;
  seq?: number;
  reply?: string;
  retained?: boolean;
}

/** Sends a message's reply: the client's publish. */
export type ReplySender = (subject: string, data: unknown) => Promise<unknown>;

/**
 * A received message. A class, so respond() lives on the prototype: a
 * delivery allocates this object and nothing else of its own.
 */
class ReceivedMessage implements Message {
  readonly subject: string;
  readonly raw: Uint8Array;
  readonly encoding: PayloadEncoding;
  readonly data: Payload;
  readonly seq: number;
  readonly reply: string | undefined;
  readonly retained: boolean;
  readonly #send: ReplySender;

  constructor(subject: string, parts: MessageParts, send: ReplySender) {
    const encoding = parts.enc ?? "bytes";
    this.subject = subject;
    this.raw = parts.p;
    this.encoding = encoding;
    this.data = decodePayload(parts.p, encoding);
    this.seq = parts.seq ?? 0;
    this.reply = parts.reply;
    this.retained = parts.retained === true;
    this.#send = send;
  }

  respond(data?: unknown): Promise<void> {
    const reply = this.reply;
    if (reply === undefined) return Promise.reject(new InvalidArgumentError(`the message on "${this.subject}" asked for no reply`));
    return this.#send(reply, data).then(() => undefined);
  }
}

/** A Message for the application; `send` publishes its respond(). */
export function createMessage(subject: string, parts: MessageParts, send: ReplySender): Message {
  return new ReceivedMessage(subject, parts, send);
}

export interface SubscribeOptions {
  /** Join this queue group: each message goes to one member of the group. */
  queue?: string;
  /** Receive the retained values matching the subject first. */
  replay?: boolean;
  /**
   * Resume after this sequence number: first the messages the broker still
   * keeps with a higher `seq` (in order), then the live ones, with nothing
   * missed or repeated between the two. Takes a Message's `seq` or a
   * Subscription's `lastSeq`. Not with `queue`, `replay` or `sinceTime`.
   */
  since?: number;
  /** Resume from this time (a Date, or Unix ms): first the kept messages the broker accepted at or after it, then live ones. */
  sinceTime?: Date | number;
  /**
   * Told of each subject whose messages after the resume point the broker no
   * longer keeps (its history is bounded), before the kept ones are
   * delivered. Also after a reconnect, which resumes from `lastSeq`. Without
   * it, the client's `gap` event, or a process warning when nobody listens.
   */
  onGap?: (gap: SubscriptionGap) => void;
  /**
   * Receive messages through this callback instead of iterating. If it throws
   * (or returns a promise that rejects), the client emits `callbackError` and
   * the subscription goes on.
   */
  callback?: (message: Message) => void;
  /** Bound of the iterator's queue (default DEFAULT_MAX_PENDING_MESSAGES). */
  maxPending?: number;
}

/** Messages a resuming subscription asked for that the broker no longer keeps. */
export interface SubscriptionGap {
  /** The subject they were published to; the subscription's own pattern when `lost` is unknown. */
  subject: string;
  /**
   * How many; undefined when the broker cannot tell (the resume point is older
   * than anything it remembers, e.g. it restarted without a durable store).
   */
  lost: number | undefined;
  /** `lost` is a lower bound: more may be missing. */
  atLeast: boolean;
}

const SUBSCRIBE_OPTION_NAMES = ["queue", "replay", "since", "sinceTime", "onGap", "callback", "maxPending"];

/** Where a subscription starts, as the `sub` op says it. */
export type SubscriptionStart = { since: number } | { sinceTime: number } | undefined;

/** Checks subscribe()'s options by name and kind; returns where the subscription starts. */
export function parseSubscribeOptions(options: SubscribeOptions): SubscriptionStart {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("subscribe() takes an options object");
  for (const key of Object.keys(options)) {
    if (!SUBSCRIBE_OPTION_NAMES.includes(key)) {
      throw new InvalidArgumentError(`unknown subscribe option "${key}"; known: ${SUBSCRIBE_OPTION_NAMES.join(", ")}`);
    }
  }
  if (options.queue !== undefined) {
    const problem = queueNameProblem(options.queue);
    if (problem !== undefined) throw new InvalidQueueError(problem);
  }
  if (options.maxPending !== undefined && (!Number.isInteger(options.maxPending) || options.maxPending < 1)) {
    throw new InvalidArgumentError("maxPending must be a positive integer");
  }
  for (const name of ["callback", "onGap"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "function") throw new InvalidArgumentError(`subscribe option "${name}" must be a function`);
  }
  const { since, sinceTime } = options;
  if (since === undefined && sinceTime === undefined) return undefined;
  // The broker refuses these too (bad_field); said here, naming the options.
  if (since !== undefined && sinceTime !== undefined) throw new InvalidArgumentError('give "since" or "sinceTime", not both');
  if (options.queue !== undefined) throw new InvalidArgumentError(`a queue group member cannot resume: "${since !== undefined ? "since" : "sinceTime"}" is not for queue subscriptions`);
  if (options.replay === true) throw new InvalidArgumentError(`"replay" and "${since !== undefined ? "since" : "sinceTime"}" cannot be combined: a resumed subscription gets the kept messages instead`);
  if (since !== undefined) {
    if (!Number.isSafeInteger(since) || since < 0) throw new InvalidArgumentError(`subscribe option "since" must be a sequence number, a non-negative integer (got ${String(since)})`);
    return { since };
  }
  const ms = sinceTime instanceof Date ? sinceTime.getTime() : sinceTime;
  if (typeof ms !== "number" || !Number.isSafeInteger(ms) || ms < 0) {
    throw new InvalidArgumentError(`subscribe option "sinceTime" must be a valid Date or Unix milliseconds, a non-negative integer (got ${String(sinceTime)})`);
  }
  return { sinceTime: ms };
}

/** What a Subscription needs from its client. */
export interface SubscriptionOwner {
  unsubscribe(sub: Subscription): Promise<void>;
  slowConsumer(sub: Subscription, dropped: number): void;
  callbackFailed(sub: Subscription, error: unknown): void;
}

export class Subscription implements AsyncIterable<Message> {
  readonly sid: number;
  readonly subject: string;
  readonly queue: string | undefined;
  readonly replay: boolean;
  /** Messages received. */
  received = 0;
  readonly #owner: SubscriptionOwner;
  readonly #start: SubscriptionStart;
  readonly #resumes: boolean;
  readonly #onGap: ((gap: SubscriptionGap) => void) | undefined;
  #lastSeq: number | undefined;
  /** The broker has answered this subscription's `sub` on the current connection: messages it sends without a sid are for it too. */
  #live = false;
  readonly #delivery: Delivery<Message>;
  #resolveClosed!: () => void;
  readonly #closed = new Promise<void>((resolve) => {
    this.#resolveClosed = resolve;
  });

  /**
   * `start` is parseSubscribeOptions()'s answer for `options`; `resumes`
   * false for one that catches up its own way after a reconnect (a fetching
   * watch: one `get`, since resumed messages do not say which were retained).
   */
  constructor(owner: SubscriptionOwner, sid: number, subject: string, options: SubscribeOptions, start?: SubscriptionStart, resumes = true) {
    this.#owner = owner;
    this.sid = sid;
    this.subject = subject;
    this.queue = options.queue;
    this.replay = options.replay === true;
    this.#start = start;
    this.#resumes = resumes;
    this.#onGap = options.onGap;
    this.#delivery = new Delivery("subscription", options.callback, options.maxPending ?? DEFAULT_MAX_PENDING_MESSAGES, {
      callbackFailed: (error) => owner.callbackFailed(this, error),
      overflow: (dropped) => owner.slowConsumer(this, dropped),
      leave: () => this.unsubscribe(),
    });
  }

  /** Messages dropped because the queue was full. */
  get dropped(): number {
    return this.#delivery.dropped;
  }

  get isClosed(): boolean {
    return this.#delivery.ended;
  }

  /** Resolves when the subscription has ended (unsubscribed, or the client closed). */
  closed(): Promise<void> {
    return this.#closed;
  }

  unsubscribe(): Promise<void> {
    return this.#owner.unsubscribe(this);
  }

  /**
   * Where this subscription is in the broker's sequence: the highest `seq`
   * it has received, or, if higher, the broker's highest when the
   * subscription began (every later publish reaches it). A reconnect resumes
   * from here; so can a later subscribe() (`since: sub.lastSeq`). Undefined
   * until the broker has answered, and with a broker that does not tell.
   */
  get lastSeq(): number | undefined {
    return this.#lastSeq;
  }

  /** Whether messages the broker addresses to no sid in particular are for this subscription yet. */
  get isLive(): boolean {
    return this.#live;
  }

  /**
   * The `sub` op for the connection being made: the first one as asked; on a
   * reconnect, resuming from lastSeq (a queue member takes what the group
   * gets from now on: another member got the rest). Until the broker answers
   * it, messages without a sid are not for this subscription.
   */
  subOp(): SubOp {
    this.#live = false;
    const op: SubOp = { op: "sub", sid: this.sid, subject: this.subject };
    if (this.queue !== undefined) {
      op.queue = this.queue;
      return op;
    }
    if (this.#lastSeq !== undefined && this.#resumes) op.since = this.#lastSeq;
    else if (this.#start !== undefined) Object.assign(op, this.#start);
    else if (this.replay) op.replay = true;
    return op;
  }

  /** The broker's `ok` to subOp(): live from here on; `seq` its highest sequence number then. */
  began(seq: number | undefined): void {
    this.#live = true;
    if (seq !== undefined && (this.#lastSeq === undefined || seq > this.#lastSeq)) this.#lastSeq = seq;
  }

  /** Called by the client for each message routed to this subscription. */
  deliver(message: Message): void {
    if (this.#delivery.ended) return;
    // Before the first answer there is no place to move on from: replayed values come before it, and are older.
    if (this.#lastSeq !== undefined && message.seq > this.#lastSeq) this.#lastSeq = message.seq;
    this.received++;
    this.#delivery.deliver(message);
  }

  /** Hands a gap to the onGap callback; false when there is none. A callback that throws is reported as callbackError. */
  gap(gap: SubscriptionGap): boolean {
    const onGap = this.#onGap;
    if (onGap === undefined) return false;
    try {
      const result: unknown = onGap(gap);
      if (result instanceof Promise) result.catch((error: unknown) => this.#owner.callbackFailed(this, error));
    } catch (error) {
      this.#owner.callbackFailed(this, error);
    }
    return true;
  }

  /** Called by the client when the subscription ends; an iterator finishes after the queued messages. */
  end(): void {
    if (this.#delivery.ended) return;
    this.#delivery.end();
    this.#resolveClosed();
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return this.#delivery[Symbol.asyncIterator]();
  }
}
