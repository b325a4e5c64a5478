// A watch: wake-ups for one notification name, as an AsyncIterable or a
// callback. Wake-ups coalesce like Darwin notifications: a consumer that is
// busy is owed one event carrying the latest state, never a backlog.

import { Delivery } from "./delivery.js";
import type { Payload } from "../protocol/index.js";

export interface WatchEvent {
  /** The notification name that was posted. */
  readonly name: string;
  /** The subject, for watch(subject). */
  readonly subject: string | undefined;
  /** The name's 64-bit state after the post. */
  readonly state: bigint;
  /** The state as a number: for a subject, its sequence number at the publish that woke us. */
  readonly seq: number;
  /** With `fetch`: the subject's retained value, when the publish that made this event was retained. */
  readonly value?: Payload;
  /** With `fetch`: the retained value's own sequence number (`seq`, when `value` is there). */
  readonly valueSeq?: number;
}

export interface WatchOptions {
  /**
   * Each event carries the subject's retained value too, with no round trip:
   * the broker sends it with the wake-up (client-sdk/fetch-watches.ts).
   * Needs the `subscribe` right on the subject instead of `watch`.
   */
  fetch?: boolean;
  /** Receive events through this callback instead of iterating; a failure is a `callbackError` event, and the watch goes on. */
  callback?: (event: WatchEvent) => void;
}

export interface WatchOwner {
  unwatch(watch: Watch): Promise<void>;
  callbackFailed(watch: Watch, error: unknown): void;
}

export class Watch implements AsyncIterable<WatchEvent> {
  readonly name: string;
  readonly subject: string | undefined;
  readonly fetch: boolean;
  /** Wake-ups delivered (after coalescing). */
  wakes = 0;
  /** The last state seen, to tell a newer state after a reconnect. */
  lastState = 0n;
  readonly #owner: WatchOwner;
  readonly #delivery: Delivery<WatchEvent>;

  constructor(owner: WatchOwner, name: string, subject: string | undefined, options: WatchOptions) {
    this.#owner = owner;
    this.name = name;
    this.subject = subject;
    this.fetch = options.fetch === true;
    // A queue of one that keeps the newest event: an unread wake-up is replaced, not lost.
    this.#delivery = new Delivery("watch", options.callback, 1, {
      callbackFailed: (error) => owner.callbackFailed(this, error),
      overflow: () => {},
      leave: () => this.close(),
    });
  }

  get isClosed(): boolean {
    return this.#delivery.ended;
  }

  close(): Promise<void> {
    return this.#owner.unwatch(this);
  }

  /** Called by the client with each (coalesced) event. */
  deliver(event: WatchEvent): void {
    if (this.#delivery.ended) return;
    this.wakes++;
    if (event.state > this.lastState) this.lastState = event.state;
    this.#delivery.deliver(event);
  }

  end(): void {
    this.#delivery.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.#delivery[Symbol.asyncIterator]();
  }
}
