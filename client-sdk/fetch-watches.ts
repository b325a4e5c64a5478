// Watches with `fetch`: the value comes with the wake-up. Notify-then-fetch
// by the book (wake, then a `get` round trip per watcher) costs more than
// push: every watcher sends a frame and the broker answers each, and wakes
// that land during a `get` coalesce behind it, so some updates are never
// seen. A process that fetches holds a connection anyway, so here a fetching
// watch is a subscription to its subject: the broker sends each publish once
// to every such watcher (one shared encoding), with `retained` telling
// whether the payload is the subject's retained value (docs/PROTOCOL.md
// §6.2), which is what `get` would have returned. Events coalesce as every
// watch's do (a queue of one for iterators). After a reconnect, one `get`
// tells whether the retained value moved while the connection was down; the
// subscription does not resume from its lastSeq as others do, because
// resumed messages do not say which of them were retained.

import type { ConnectionState } from "./broker-connection.js";
import type { GetResult } from "./client-options.js";
import type { Message, Subscription } from "./subscription.js";
import { Watch, type WatchEvent, type WatchOptions, type WatchOwner } from "./watch.js";

/** What fetching watches need of their client. */
export interface FetchWatchHost {
  readonly state: ConnectionState;
  /** A subscription of the client's own, not shown to the application as one. */
  subscribe(subject: string, callback: (message: Message) => void): Promise<Subscription>;
  unsubscribe(sub: Subscription): Promise<void>;
  get(subject: string): Promise<GetResult>;
}

interface FetchingWatch {
  readonly watch: Watch;
  readonly subject: string;
  sub: Subscription | undefined;
  /** The newest seq this watch has delivered or was created at: older ones are not news. */
  lastSeq: number;
}

export class FetchWatches {
  readonly #host: FetchWatchHost;
  readonly #owner: WatchOwner;
  readonly #watches = new Map<Watch, FetchingWatch>();

  constructor(host: FetchWatchHost, owner: WatchOwner) {
    this.#host = host;
    this.#owner = owner;
  }

  owns(watch: Watch): boolean {
    return this.#watches.has(watch);
  }

  async add(name: string, subject: string, options: WatchOptions): Promise<Watch> {
    const watch = new Watch(this.#owner, name, subject, options);
    const entry: FetchingWatch = { watch, subject, sub: undefined, lastSeq: 0 };
    this.#watches.set(watch, entry);
    try {
      entry.sub = await this.#host.subscribe(subject, (message) => this.#message(entry, message));
      // The value as of now is the baseline a reconnect is compared with, not an event.
      const now = await this.#host.get(subject);
      if (now.found && now.seq > entry.lastSeq) entry.lastSeq = now.seq;
    } catch (error) {
      this.#watches.delete(watch);
      watch.end();
      if (entry.sub !== undefined) await this.#host.unsubscribe(entry.sub).catch(() => undefined);
      throw error;
    }
    return watch;
  }

  async remove(watch: Watch): Promise<void> {
    const entry = this.#watches.get(watch);
    if (entry === undefined) return;
    this.#watches.delete(watch);
    watch.end();
    if (entry.sub !== undefined) await this.#host.unsubscribe(entry.sub);
  }

  /** After a reconnect: one event per watch whose retained value moved meanwhile. */
  resumed(): void {
    for (const entry of this.#watches.values()) {
      this.#host.get(entry.subject).then(
        (now) => {
          if (now.found && this.#watches.has(entry.watch)) this.#deliver(entry, now.seq, now.data);
        },
        () => undefined, // Lost again: the next reconnect asks again.
      );
    }
  }

  endAll(): void {
    for (const entry of this.#watches.values()) entry.watch.end();
    this.#watches.clear();
  }

  #message(entry: FetchingWatch, message: Message): void {
    if (message.retained) this.#deliver(entry, message.seq, message.data);
    else this.#deliver(entry, message.seq, undefined);
  }

  /** An event for `seq` if it is news; `value` only when it is the retained value. */
  #deliver(entry: FetchingWatch, seq: number, value: Message["data"] | undefined): void {
    if (seq <= entry.lastSeq) return;
    entry.lastSeq = seq;
    const event: WatchEvent =
      value === undefined
        ? { name: entry.watch.name, subject: entry.subject, state: BigInt(seq), seq }
        : { name: entry.watch.name, subject: entry.subject, state: BigInt(seq), seq, value, valueSeq: seq };
    entry.watch.deliver(event);
  }
}
