// A watch: wake-ups for one notification name, as an AsyncIterable or a
// callback. Wake-ups coalesce like Darwin notifications: a consumer that is
// busy is owed one event carrying the latest state, never a backlog.

import type { Payload } from "./protocol/payload.js";

export interface WatchEvent {
  /** The notification name that was posted. */
  readonly name: string;
  /** The subject, for watch(subject). */
  readonly subject: string | undefined;
  /** The name's 64-bit state after the post. */
  readonly state: bigint;
  /** The state as a number: for a subject, its sequence number at the publish that woke us. */
  readonly seq: number;
  /** With `fetch`: the subject's retained value, when it is at least as new as `seq`. */
  readonly value?: Payload;
  /** With `fetch`: the retained value's own sequence number. */
  readonly valueSeq?: number;
}

export interface WatchOptions {
  /** Notify-then-fetch: after each wake, `get` the subject's retained value (one get at a time). */
  fetch?: boolean;
  /** Receive events through this callback instead of iterating. */
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
  readonly #callback: ((event: WatchEvent) => void) | undefined;
  #latest: WatchEvent | undefined;
  #waiter: ((result: IteratorResult<WatchEvent>) => void) | undefined;
  #done = false;
  #iterating = false;

  constructor(owner: WatchOwner, name: string, subject: string | undefined, options: WatchOptions) {
    this.#owner = owner;
    this.name = name;
    this.subject = subject;
    this.fetch = options.fetch === true;
    this.#callback = options.callback;
  }

  get isClosed(): boolean {
    return this.#done;
  }

  close(): Promise<void> {
    return this.#owner.unwatch(this);
  }

  /** Called by the client with each (coalesced) event. */
  deliver(event: WatchEvent): void {
    if (this.#done) return;
    this.wakes++;
    if (event.state > this.lastState) this.lastState = event.state;
    if (this.#callback !== undefined) {
      try {
        this.#callback(event);
      } catch (error) {
        this.#owner.callbackFailed(this, error);
      }
      return;
    }
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: event, done: false });
      return;
    }
    this.#latest = event; // replaces an unread one: coalesced
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.#callback !== undefined) throw new TypeError("this watch delivers to its callback; it cannot also be iterated");
    if (this.#iterating) throw new TypeError("a watch can be iterated only once");
    this.#iterating = true;
    return {
      next: () => {
        const latest = this.#latest;
        if (latest !== undefined) {
          this.#latest = undefined;
          return Promise.resolve({ value: latest, done: false });
        }
        if (this.#done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
