// A subscription: an AsyncIterable of messages, or a callback (never both).
// Messages wait in a bounded queue while the application is busy; past the
// bound the oldest are dropped and counted, never buffered without limit.

import type { Payload } from "./protocol/payload.js";
import type { PayloadEncoding } from "./protocol/messages.js";

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
  /** Publishes `data` to `reply`. Rejects when the message asked for no reply. */
  respond(data?: unknown): Promise<void>;
}

export interface SubscribeOptions {
  /** Join this queue group: each message goes to one member of the group. */
  queue?: string;
  /** Receive the retained values matching the subject first. */
  replay?: boolean;
  /** Receive messages through this callback instead of iterating. */
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
  /** Messages dropped because the queue was full. */
  dropped = 0;
  /** Messages received. */
  received = 0;
  readonly #owner: SubscriptionOwner;
  readonly #callback: ((message: Message) => void) | undefined;
  readonly #maxPending: number;
  readonly #queued: Message[] = [];
  #head = 0;
  #waiter: ((result: IteratorResult<Message>) => void) | undefined;
  #done = false;
  #iterating = false;
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
    this.#callback = options.callback;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING_MESSAGES;
  }

  get isClosed(): boolean {
    return this.#done;
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
    if (this.#done) return;
    this.received++;
    if (this.#callback !== undefined) {
      try {
        this.#callback(message);
      } catch (error) {
        this.#owner.callbackFailed(this, error);
      }
      return;
    }
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: message, done: false });
      return;
    }
    if (this.#queued.length - this.#head >= this.#maxPending) {
      this.#head++;
      this.dropped++;
      this.#owner.slowConsumer(this, this.dropped);
    }
    this.#queued.push(message);
  }

  /** Called by the client when the subscription ends; an iterator finishes after the queued messages. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#resolveClosed();
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    if (this.#callback !== undefined) throw new TypeError("this subscription delivers to its callback; it cannot also be iterated");
    if (this.#iterating) throw new TypeError("a subscription can be iterated only once");
    this.#iterating = true;
    return {
      next: () => {
        if (this.#head < this.#queued.length) {
          const value = this.#queued[this.#head] as Message;
          this.#head++;
          // Compact now and then so the array does not grow with consumed slots.
          if (this.#head > 1024 && this.#head * 2 > this.#queued.length) {
            this.#queued.splice(0, this.#head);
            this.#head = 0;
          }
          return Promise.resolve({ value, done: false });
        }
        if (this.#done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
      return: async () => {
        await this.unsubscribe();
        return { value: undefined, done: true };
      },
    };
  }
}
