// The client's watched notification names: one `watch` per name per
// connection however many Watch objects share it, the notify backend that
// wakes them (the Linux table or notify(3)), and
// re-registering every name after a reconnect (docs/PROTOCOL.md §9.9,
// Appendix A "Registering", "Rewatch").

import { XpcbusError, type BrokerError } from "./errors.js";
import type { AnsweredOp, Answers, ClientOp, NotifyInfo } from "../protocol/index.js";
import { Watch, type WatchOptions, type WatchOwner } from "./watch.js";
import { openNotifyBackend, type NotifyBackend, type NotifyToken } from "./notify/notify-backend.js";
import type { ConnectionState } from "./broker-connection.js";

/** What the registry needs of the client it belongs to. */
export interface WatchRegistryHost {
  readonly state: ConnectionState;
  call<K extends AnsweredOp>(op: Extract<ClientOp, { op: K }>): Promise<Answers[K]>;
  brokerError(error: BrokerError): void;
}

/** One watched notification name: its registration and the Watch objects on it. */
interface WatchedName {
  readonly name: string;
  readonly subject: string | undefined;
  readonly watches: Set<Watch>;
  token: NotifyToken | undefined;
}

export class WatchRegistry {
  readonly #host: WatchRegistryHost;
  readonly #owner: WatchOwner;
  #notifyInfo: NotifyInfo | undefined;
  /** The broker's uid as the transport checked it, from the last welcome; the table must be its. */
  #brokerUid: number | undefined;
  #notifyBackend: NotifyBackend | undefined;
  readonly #watched = new Map<string, WatchedName>();

  /** `owner` is what each Watch calls back (close, callback failures). */
  constructor(host: WatchRegistryHost, owner: WatchOwner) {
    this.#host = host;
    this.#owner = owner;
  }

  /** The notification prefix of this broker's subjects (`<prefix>.<subject>`), from the last welcome. */
  get notifyPrefix(): string | undefined {
    return this.#notifyInfo?.prefix;
  }

  /** The prefix, or notify_unavailable when the broker posts no notifications. */
  requirePrefix(): string {
    const prefix = this.#notifyInfo?.prefix;
    if (prefix === undefined) throw new XpcbusError("notify_unavailable", "this broker posts no notifications");
    return prefix;
  }

  /** A new connection's `welcome.notify`: a new table (a restarted broker) drops the old mapping. */
  useNotifyInfo(info: NotifyInfo | undefined, brokerUid: number | undefined): void {
    const previous = this.#notifyInfo;
    const previousUid = this.#brokerUid;
    this.#notifyInfo = info;
    this.#brokerUid = brokerUid;
    const same =
      previous !== undefined &&
      previousUid === brokerUid &&
      info !== undefined &&
      previous.mechanism === info.mechanism &&
      (info.mechanism !== "table" || (previous.mechanism === "table" && previous.table === info.table && previous.instance === info.instance));
    if (same) return;
    // A new broker made a new table: the old mapping shows nothing any more.
    this.#notifyBackend?.close();
    this.#notifyBackend = undefined;
    for (const entry of this.#watched.values()) entry.token = undefined;
  }

  async add(name: string, subject: string | undefined, options: WatchOptions): Promise<Watch> {
    const watch = new Watch(this.#owner, name, subject, options);
    let entry = this.#watched.get(name);
    if (entry === undefined) {
      entry = { name, subject, watches: new Set(), token: undefined };
      this.#watched.set(name, entry);
    }
    entry.watches.add(watch);
    if (entry.token === undefined && this.#host.state === "connected") {
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

  async remove(watch: Watch): Promise<void> {
    const entry = this.#watched.get(watch.name);
    if (entry === undefined || !entry.watches.delete(watch)) return;
    watch.end();
    if (entry.watches.size > 0) return;
    this.#watched.delete(watch.name);
    if (entry.token !== undefined) this.#notifyBackend?.remove(entry.token);
    if (this.#host.state === "connected") {
      try {
        await this.#host.call({ op: "unwatch", name: watch.name });
      } catch (error) {
        if (!(error instanceof XpcbusError) || (error.code !== "disconnected" && error.code !== "closed")) throw error;
      }
    }
  }

  /** After a (re)connect: re-register every watched name; catch up on names that moved meanwhile. */
  rewatch(): void {
    if (this.#watched.size > 0) void this.#rewatch();
  }

  endAll(): void {
    for (const entry of this.#watched.values()) for (const watch of entry.watches) watch.end();
    this.#watched.clear();
    this.#notifyBackend?.close();
    this.#notifyBackend = undefined;
  }

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
        if (this.#host.state !== "connected") return; // lost again: the next reconnect retries
        if (error instanceof XpcbusError) this.#host.brokerError(error as BrokerError);
      }
    }
  }

  /**
   * Registers `entry`'s name with the broker and the notify backend. Resolves
   * with the state the broker answered and, in `missed`, the name's state now
   * if it was posted after that answer and before the token existed.
   */
  async #register(entry: WatchedName): Promise<{ state: bigint; missed: bigint | undefined }> {
    const { state, slot, hash } = await this.#host.call({ op: "watch", name: entry.name, id: 0 });
    const backend = this.#backend();
    if (entry.token !== undefined) backend.remove(entry.token);
    const token = backend.add(entry.name, { slot, hash, state });
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
    this.#notifyBackend = openNotifyBackend(info, () => this.#onNotifyWake(), { brokerUid: this.#brokerUid });
    return this.#notifyBackend;
  }

  /** A native waiter saw posts: find which names moved and wake their watches. */
  #onNotifyWake(): void {
    if (this.#host.state === "closed") return;
    for (const entry of this.#watched.values()) {
      if (entry.token !== undefined && entry.token.changed()) this.#wake(entry, entry.token.state());
    }
  }

  #wake(entry: WatchedName, state: bigint): void {
    for (const watch of entry.watches) watch.deliver({ name: entry.name, subject: entry.subject, state, seq: Number(state) });
  }
}
