// A subscription: an AsyncIterable of messages, or a callback (never both).
// Messages wait in a bounded queue while the application is busy; past the
// bound the oldest are dropped and counted, never buffered without limit.

import { Delivery } from "./delivery.js";
import { InvalidArgumentError } from "./errors.js";
import { decodePayload, type Payload } from "../protocol/index.js";
import type { PayloadEncoding } from "../protocol/index.js";

/** Messages kept for an iterator that is not keeping up, by default. */
export const DEFAULT_MAX_PENDING_MESSAGES = 10_000;

export interface Message {
  readonly subject: string;
  /** The payload as it was published: bytes, a string, or a JSON value. */
  readonly data: Payload;
  /** The payload's bytes as they travelled. */
  readonly raw: Uint8Array;
  readonly encoding: PayloadEncoding;
  /** The subject's sequence number at this publish (0 for a request). */
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
   * Receive messages through this callback instead of iterating. If it throws
   * (or returns a promise that rejects), the client emits `callbackError` and
   * the subscription goes on.
   */
  callback?: (message: Message) => void;
  /** Bound of the iterator's queue (default DEFAULT_MAX_PENDING_MESSAGES). */
  maxPending?: number;
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
  readonly #delivery: Delivery<Message>;
  #resolveClosed!: () => void;
  readonly #closed = new Promise<void>((resolve) => {
    this.#resolveClosed = resolve;
  });

  constructor(owner: SubscriptionOwner, sid: number, subject: string, options: SubscribeOptions) {
    this.#owner = owner;
    this.sid = sid;
    this.subject = subject;
    this.queue = options.queue;
    this.replay = options.replay === true;
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

  /** Called by the client for each message routed to this subscription. */
  deliver(message: Message): void {
    if (this.#delivery.ended) return;
    this.received++;
    this.#delivery.deliver(message);
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
