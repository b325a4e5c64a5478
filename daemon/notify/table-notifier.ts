// The Linux notifier: the broker's side of the notify table. It decides which
// name owns which slot: a watched name keeps its slot; a slot nobody watches
// any more stays with its name (so re-watching is free) until a new name
// needs it, least recently released first. States of posted names that hold
// no slot are remembered in a bounded LRU for their next watcher.

import { unlinkSync } from "node:fs";
import { LRUCache } from "lru-cache";
import type { NotifyInfo } from "../../protocol/index.js";
import { notifyNameHash } from "../../protocol/index.js";
import { loadNative, NativeError, toNativeError, type NativeNotifyTableWriter } from "../../native/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "../core/notifier.js";
import { NotifyPrefix } from "./notify-prefix.js";

interface SlotEntry {
  readonly slot: number;
  watchers: number;
}

export interface TableNotifierOptions {
  /** Path of the table file; replaced if it exists. */
  path: string;
  prefix: string;
  slots: number;
  maxStates: number;
}

export class TableNotifier implements Notifier {
  readonly info: NotifyInfo;
  readonly #writer: NativeNotifyTableWriter;
  readonly #path: string;
  readonly #names: NotifyPrefix;
  readonly #byName = new Map<string, SlotEntry>();
  readonly #free: number[] = [];
  /** Names holding a slot that nobody watches, oldest first (Map keeps insertion order). */
  readonly #idle = new Map<string, SlotEntry>();
  readonly #states: LRUCache<string, bigint>;

  constructor(options: TableNotifierOptions) {
    const { NotifyTableWriter } = loadNative();
    if (NotifyTableWriter === undefined) throw new NativeError("native_unavailable", "this build of the addon has no notify table (Linux only)");
    try {
      unlinkSync(options.path);
    } catch {
      // None there: the usual case.
    }
    try {
      this.#writer = new NotifyTableWriter(options.path, options.slots);
    } catch (error) {
      throw toNativeError(error);
    }
    this.#path = options.path;
    this.#names = new NotifyPrefix(options.prefix);
    for (let slot = options.slots - 1; slot >= 0; slot--) this.#free.push(slot);
    this.#states = new LRUCache({ max: options.maxStates });
    this.info = { mechanism: "table", prefix: options.prefix, table: options.path, slots: options.slots, instance: this.#writer.instance };
  }

  subjectOf(name: string): string | undefined {
    return this.#names.subjectOf(name);
  }

  published(subject: string, seq: number): void {
    const entry = this.#byName.get(this.#names.nameOf(subject));
    if (entry !== undefined) this.#writer.post(entry.slot, BigInt(seq));
  }

  watch(name: string, initial: bigint): NotifyRegistration | NotifyRefusal {
    let entry = this.#byName.get(name);
    if (entry === undefined) {
      const slot = this.#takeSlot();
      if (slot === undefined) {
        return { code: "notify_table_full", reason: `all ${this.#writer.slotCount} notify table slots are watched` };
      }
      entry = { slot, watchers: 0 };
      this.#byName.set(name, entry);
      const remembered = this.#states.get(name);
      this.#states.delete(name);
      // The larger of the two: a subject's name is derived from its sequence
      // number (`initial`), which may have moved on since it was remembered.
      this.#writer.assign(slot, notifyNameHash(name), remembered !== undefined && remembered > initial ? remembered : initial);
    }
    if (entry.watchers === 0) this.#idle.delete(name);
    entry.watchers++;
    return { slot: entry.slot, hash: notifyNameHash(name), state: this.#writer.state(entry.slot) };
  }

  unwatch(name: string): void {
    const entry = this.#byName.get(name);
    if (entry === undefined || entry.watchers === 0) return;
    entry.watchers--;
    if (entry.watchers === 0) this.#idle.set(name, entry);
  }

  post(name: string, state: bigint | undefined): void {
    const entry = this.#byName.get(name);
    if (entry !== undefined) {
      this.#writer.post(entry.slot, state ?? this.#writer.state(entry.slot));
      return;
    }
    if (state !== undefined) this.#states.set(name, state);
  }

  state(name: string): bigint | undefined {
    const entry = this.#byName.get(name);
    return entry !== undefined ? this.#writer.state(entry.slot) : this.#states.get(name);
  }

  close(): void {
    this.#writer.close();
    try {
      unlinkSync(this.#path);
    } catch {
      // Already gone.
    }
  }

  #takeSlot(): number | undefined {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    const oldest = this.#idle.entries().next();
    if (oldest.done === true) return undefined;
    const [name, entry] = oldest.value;
    this.#idle.delete(name);
    this.#byName.delete(name);
    // The evicted name keeps its state for its next watcher (a subject's name
    // needs not: its state is its sequence number); assign() then bumps the
    // slot's generation, so a stale reader wakes and sees the new hash.
    if (!this.#names.owns(name)) this.#states.set(name, this.#writer.state(entry.slot));
    return entry.slot;
  }
}
