// What the broker core writes through to, and reads back at start: retained
// values, the recent history of each subject, and the sequence reservation.
// The core opens no file: the daemon hands it a DurableStore (the SQLite one,
// daemon/store/sqlite-store.ts) or none (`--store memory`: nothing outlives
// the process). The core gathers everything one event-loop turn changed into
// one StoreBatch and commits it before any frame of that turn leaves (the
// TurnWriter barrier, protocol/turn-writer.ts): an `ok` to a `pub` means the
// publish is in the store, and nobody ever sees a message the store lost.

import type { PayloadEncoding } from "../../protocol/index.js";

/** One subject's retained value as stored. */
export interface StoredRetained {
  readonly subject: string;
  readonly seq: number;
  readonly payload: Uint8Array;
  readonly enc: PayloadEncoding | undefined;
  /** The publisher's uid, counted against its quota; null when unknown. */
  readonly owner: number | null;
}

/** One message of a subject's history. */
export interface StoredMessage {
  readonly subject: string;
  readonly seq: number;
  /** The subject's own count: its n-th publish since the store began (1-based), for exact gap counts. */
  readonly n: number;
  /** When the broker accepted it, Unix milliseconds. */
  readonly time: number;
  readonly payload: Uint8Array;
  readonly enc: PayloadEncoding | undefined;
}

/** What the store keeps of a subject besides its messages: its count, and what it no longer has. */
export interface StoredSubject {
  readonly subject: string;
  /** The subject's publishes counted so far (the n of its latest). */
  readonly n: number;
  /** Opaque to the store: the core's record of the messages dropped from this subject's history. */
  readonly dropped: Uint8Array;
}

/** Everything a broker starts from. */
export interface StoreSnapshot {
  /** The highest sequence number the previous broker may have issued (its reservation); 0 for a new store. */
  readonly sequenceReservation: number;
  /** When the store was created (Unix ms) and the floor it began at: history before it is unknown. */
  readonly createdAt: { readonly time: number; readonly seq: number } | undefined;
  /** In increasing seq (which is the order they were last retained). */
  readonly retained: StoredRetained[];
  /** In increasing seq. */
  readonly messages: StoredMessage[];
  readonly subjects: StoredSubject[];
}

/** What one commit changes. Applied in one transaction, in this order: retained puts and deletes, messages, deleted messages, subjects, forgets. */
export interface StoreBatch {
  /** Retained values set (a subject appears at most once: the turn's last). */
  readonly retainedPut: StoredRetained[];
  /** Retained values cleared. Disjoint from retainedPut. */
  readonly retainedDelete: string[];
  /** New history messages, in increasing seq. */
  readonly messages: StoredMessage[];
  /** Messages that left the history, by seq: deleted (by primary key: no index to keep). None of them is in `messages`. */
  readonly deleted: number[];
  /** Subject records to insert or replace. */
  readonly subjects: StoredSubject[];
  /** Subjects forgotten whole: their record goes (their messages are in `deleted`). */
  readonly forget: string[];
  /** A new sequence reservation to keep, if one was made this turn. */
  readonly sequenceReservation: number | undefined;
}

/** How the store is kept, for `status` and the start log line. */
export interface StoreDescription {
  readonly kind: "sqlite" | "memory";
  readonly path?: string;
  /** "normal": survives a crash of the broker; "full": also a power loss (fsync on every commit). */
  readonly durability?: "normal" | "full";
}

export interface DurableStore {
  readonly description: StoreDescription;
  /** Reads everything back (once, at start). */
  load(): StoreSnapshot;
  /**
   * Applies one turn's changes in one transaction, synchronously. On failure
   * nothing of the batch is kept and it throws an XpcbusError: `store_full`
   * (the disk or filesystem is full) or `store_failed` (any other I/O error),
   * whose message says what the OS or SQLite said.
   */
  commit(batch: StoreBatch): void;
  /**
   * The payload of a committed history message, or undefined if the store
   * no longer has it. The core keeps a committed message's payload on disk
   * only, and reads it back for `since` and `history`.
   */
  readPayload(seq: number): Uint8Array | undefined;
  close(): void;
}
