// The Linux notifier: the broker's side of the notify tables. Each uid has a
// table of its own, readable by that uid alone (docs/SECURITY.md, "The notify
// table"): the broker's own uid the table `<path>` (mode 0600), made at start
// and kept until the broker stops; any other uid `<path>.<uid>`, mode 0600
// plus an ACL that lets that uid read it, made when its first peer is
// welcomed and removed when its last peer leaves. A name gets a slot in a
// uid's table only on a `watch` by a peer of that uid (which the policy
// allowed), so a table shows its reader nothing of the names it may not watch.
//
// Within a table, a watched name keeps its slot; a slot nobody watches any
// more stays with its name (so re-watching is free) until a new name needs
// it, least recently released first. A post writes every table that holds
// the name: its cost grows with the number of uids watching it, never with
// the number of watchers. States of posted names that hold no slot anywhere
// are remembered in a bounded LRU for their next watcher.

import { readdirSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { LRUCache } from "lru-cache";
import type { NotifyInfo } from "../../protocol/index.js";
import { notifyNameHash } from "../../protocol/index.js";
import { loadNative, NativeError, toNativeError, type NativeNotifyTableWriter } from "../../native/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "../core/notifier.js";
import { NotifyPrefix } from "./notify-prefix.js";

/** One uid's table. */
interface UidTable {
  readonly uid: number;
  readonly path: string;
  readonly writer: NativeNotifyTableWriter;
  readonly info: NotifyInfo;
  readonly byName: Map<string, Holding>;
  readonly free: number[];
  /** Names holding a slot that nobody watches, oldest first (Map keeps insertion order). */
  readonly idle: Map<string, Holding>;
  /** Joined peers of this uid; the broker's own table stays at 0. */
  peers: number;
}

/** A name's slot in one table. */
interface Holding {
  readonly table: UidTable;
  readonly slot: number;
  watchers: number;
}

export interface TableNotifierOptions {
  /** Path of the broker's own table; other uids' tables are `<path>.<uid>`. Replaced if they exist. */
  path: string;
  prefix: string;
  /** Slots of each table. */
  slots: number;
  maxStates: number;
  /** The uid whose table is `path` (default: the broker's effective uid). */
  ownerUid?: number;
}

export class TableNotifier implements Notifier {
  readonly info: NotifyInfo;
  readonly #path: string;
  readonly #slots: number;
  readonly #ownerUid: number;
  readonly #names: NotifyPrefix;
  readonly #tables = new Map<number, UidTable>();
  /** Every table that holds a slot for the name: what a post writes. */
  readonly #held = new Map<string, Holding[]>();
  readonly #states: LRUCache<string, bigint>;

  constructor(options: TableNotifierOptions) {
    if (loadNative().NotifyTableWriter === undefined) throw new NativeError("native_unavailable", "this build of the addon has no notify table (Linux only)");
    this.#path = options.path;
    this.#slots = options.slots;
    this.#ownerUid = options.ownerUid ?? process.geteuid?.() ?? 0;
    this.#names = new NotifyPrefix(options.prefix);
    this.#states = new LRUCache({ max: options.maxStates });
    removeStaleTables(options.path);
    const own = this.#open(this.#ownerUid, options.path);
    this.info = own.info;
  }

  subjectOf(name: string): string | undefined {
    return this.#names.subjectOf(name);
  }

  join(uid: number | null): void {
    if (uid === null || uid === this.#ownerUid) return;
    const table = this.#tables.get(uid);
    if (table !== undefined) table.peers++;
    else this.#open(uid, `${this.#path}.${uid}`).peers = 1;
  }

  leave(uid: number | null): void {
    if (uid === null || uid === this.#ownerUid) return;
    const table = this.#tables.get(uid);
    if (table === undefined || --table.peers > 0) return;
    // Its peers are gone, and with them its watches: the names it held lose
    // this table (and their state goes to memory if no other table holds them).
    for (const [name, holding] of table.byName) this.#release(name, holding);
    this.#drop(table);
  }

  infoFor(uid: number | null): NotifyInfo | undefined {
    return uid === null ? undefined : this.#tables.get(uid)?.info;
  }

  published(subject: string, seq: number): void {
    const held = this.#held.get(this.#names.nameOf(subject));
    if (held === undefined) return;
    const state = BigInt(seq);
    for (const { table, slot } of held) table.writer.post(slot, state);
  }

  watch(name: string, initial: bigint, uid: number | null = this.#ownerUid): NotifyRegistration | NotifyRefusal {
    const table = uid === null ? undefined : this.#tables.get(uid);
    if (table === undefined) return { code: "notify_unavailable", reason: `this broker keeps no notify table for uid ${uid ?? "unknown"}` };
    let holding = table.byName.get(name);
    if (holding === undefined) {
      const slot = this.#takeSlot(table);
      if (slot === undefined) {
        return { code: "notify_table_full", reason: `all ${table.writer.slotCount} notify table slots of uid ${table.uid} are watched` };
      }
      // The name's state as the other tables holding it, or memory, know it;
      // the larger of that and `initial`: a subject's name is derived from its
      // sequence number, which may have moved on since it was remembered.
      const known = this.state(name);
      this.#states.delete(name);
      holding = { table, slot, watchers: 0 };
      table.byName.set(name, holding);
      const held = this.#held.get(name);
      if (held === undefined) this.#held.set(name, [holding]);
      else held.push(holding);
      table.writer.assign(slot, notifyNameHash(name), known !== undefined && known > initial ? known : initial);
    }
    if (holding.watchers === 0) table.idle.delete(name);
    holding.watchers++;
    return { slot: holding.slot, hash: notifyNameHash(name), state: table.writer.state(holding.slot) };
  }

  unwatch(name: string, uid: number | null = this.#ownerUid): void {
    const table = uid === null ? undefined : this.#tables.get(uid);
    const holding = table?.byName.get(name);
    if (table === undefined || holding === undefined || holding.watchers === 0) return;
    holding.watchers--;
    if (holding.watchers === 0) table.idle.set(name, holding);
  }

  revoke(name: string, uid: number | null = this.#ownerUid): void {
    const table = uid === null ? undefined : this.#tables.get(uid);
    const holding = table?.byName.get(name);
    if (table === undefined || holding === undefined || holding.watchers > 0) return;
    // Its slot goes back to the free list: posts of `name` no longer reach this table.
    table.idle.delete(name);
    table.byName.delete(name);
    this.#release(name, holding);
    table.free.push(holding.slot);
  }

  post(name: string, state: bigint | undefined): void {
    const held = this.#held.get(name);
    if (held !== undefined) {
      const next = state ?? held[0]!.table.writer.state(held[0]!.slot);
      for (const { table, slot } of held) table.writer.post(slot, next);
      return;
    }
    if (state !== undefined) this.#states.set(name, state);
  }

  state(name: string): bigint | undefined {
    const first = this.#held.get(name)?.[0];
    return first !== undefined ? first.table.writer.state(first.slot) : this.#states.get(name);
  }

  close(): void {
    for (const table of [...this.#tables.values()]) this.#drop(table);
    this.#held.clear();
  }

  #open(uid: number, path: string): UidTable {
    const { NotifyTableWriter } = loadNative();
    unlinkQuietly(path);
    let writer: NativeNotifyTableWriter;
    try {
      writer = uid === this.#ownerUid ? new NotifyTableWriter!(path, this.#slots) : new NotifyTableWriter!(path, this.#slots, uid);
    } catch (error) {
      throw toNativeError(error);
    }
    const free: number[] = [];
    for (let slot = this.#slots - 1; slot >= 0; slot--) free.push(slot);
    const table: UidTable = {
      uid,
      path,
      writer,
      info: { mechanism: "table", prefix: this.#names.prefix, table: path, slots: this.#slots, instance: writer.instance },
      byName: new Map(),
      free,
      idle: new Map(),
      peers: 0,
    };
    this.#tables.set(uid, table);
    return table;
  }

  #drop(table: UidTable): void {
    this.#tables.delete(table.uid);
    table.writer.close();
    unlinkQuietly(table.path);
  }

  /** `name` loses its slot in `holding.table`; the caller frees the slot itself. */
  #release(name: string, holding: Holding): void {
    const held = this.#held.get(name);
    if (held === undefined) return;
    const rest = held.filter((h) => h !== holding);
    if (rest.length > 0) {
      this.#held.set(name, rest);
      return;
    }
    this.#held.delete(name);
    // The last table to hold it: its state is remembered for its next watcher
    // (a subject's name needs not: its state is its sequence number).
    if (!this.#names.owns(name)) this.#states.set(name, holding.table.writer.state(holding.slot));
  }

  #takeSlot(table: UidTable): number | undefined {
    const free = table.free.pop();
    if (free !== undefined) return free;
    const oldest = table.idle.entries().next();
    if (oldest.done === true) return undefined;
    const [name, holding] = oldest.value;
    table.idle.delete(name);
    table.byName.delete(name);
    // assign() then bumps the slot's generation, so a stale reader wakes and sees the new hash.
    this.#release(name, holding);
    return holding.slot;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // None there: the usual case.
  }
}

/** Removes `<path>` and the `<path>.<uid>` tables a broker that did not stop cleanly left behind. */
function removeStaleTables(path: string): void {
  unlinkQuietly(path);
  const stem = `${basename(path)}.`;
  let entries: string[];
  try {
    entries = readdirSync(dirname(path));
  } catch {
    return; // creating the table will say what is wrong with the directory
  }
  for (const entry of entries) {
    if (entry.startsWith(stem) && /^\d+$/.test(entry.slice(stem.length))) unlinkQuietly(join(dirname(path), entry));
  }
}
