// The broker's writes to the store, gathered and committed as one
// transaction, so the store never caps throughput with a transaction per
// publish. When a turn holds something somebody waits for (the `ok` of a
// `pub` with `id`, which means "in the store"; a new sequence reservation),
// the commit runs before any frame of that turn leaves the process (the
// TurnWriter barrier): so that `ok`, and every message delivered in that turn
// or before it, is in the store before anyone hears of it. Publishes nobody
// waits for (no `id`: fire and forget) are committed with the next such turn,
// or UNACKED_COMMIT_DELAY_MS later, whichever comes first: a burst then costs
// one transaction per few milliseconds, and a message its subject's history
// drops within that time is never written at all.
//
// A commit that fails (disk full, an I/O error) keeps the broker running: the
// publishers waiting for that commit get `err store_full` / `store_failed`
// (their messages were delivered and are in memory, not on disk), and the
// changes are carried into the next commit, retried at the next write or
// after STORE_RETRY_MS, so memory and disk agree again once there is room.

import type { Logger } from "pino";
import { runBeforeNextFlush, XpcbusError } from "../../protocol/index.js";
import type { DurableStore, StoredMessage, StoredRetained } from "./durable-store.js";
import type { HistoryChanges, HistoryEntry, SubjectHistory } from "./history.js";
import type { Session } from "./session.js";

/** How long after a failed commit the broker tries again when nothing new is written. */
export const STORE_RETRY_MS = 1_000;
/** Longest a publish without `id` waits to be committed (what a crash of the broker can take of those). */
export const UNACKED_COMMIT_DELAY_MS = 10;
/** Payload bytes of such publishes gathered before they are committed without waiting for the delay. */
export const UNACKED_COMMIT_MAX_BYTES = 1 << 20;

interface PendingAck {
  readonly session: Session;
  readonly id: number;
  readonly seq: number;
  readonly subject: string;
}

export class DurableTurn implements HistoryChanges {
  readonly #store: DurableStore;
  readonly #log: Logger;
  #messages: HistoryEntry[] = [];
  /** Seqs of committed messages that left the history since the last commit: to delete. */
  #deleted: number[] = [];
  /** Pending messages that left the history before their commit: not to write. */
  #droppedPending = 0;
  /** The subject record last marked dirty (a burst marks the same one again and again). */
  #lastDirty: SubjectHistory | undefined;
  readonly #subjects = new Map<string, SubjectHistory>();
  readonly #forget = new Set<string>();
  readonly #retainedPut = new Map<string, StoredRetained>();
  readonly #retainedDelete = new Set<string>();
  #reservation: number | undefined;
  #acks: PendingAck[] = [];
  /** Bytes of messages gathered since the last commit. */
  #pendingBytes = 0;
  /** A commit is due before this turn's frames leave (the barrier and a nextTick are set). */
  #scheduled = false;
  /** A commit is due within UNACKED_COMMIT_DELAY_MS. */
  #delayed: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** The last commit failed: logged once until one succeeds. */
  #failing = false;
  commits = 0;
  failedCommits = 0;
  readonly #commit = (): void => this.commit();

  constructor(store: DurableStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  get failing(): boolean {
    return this.#failing;
  }

  appended(entry: HistoryEntry, record: SubjectHistory): void {
    // Forgotten and published again before the commit: a new record (its old messages are deleted already).
    if (this.#forget.size > 0) this.#forget.delete(record.subject);
    this.#messages.push(entry);
    this.#pendingBytes += entry.size;
    if (this.#pendingBytes >= UNACKED_COMMIT_MAX_BYTES) this.#schedule();
    else this.#later();
  }

  /** A message left the history: deleted from the store if it is there, else never written. */
  #leave(entry: HistoryEntry): void {
    if (entry.settled === true) {
      this.#deleted.push(entry.seq);
      return;
    }
    entry.settled = true;
    entry.payload = undefined;
    this.#droppedPending++;
  }

  dropped(entry: HistoryEntry, record: SubjectHistory): void {
    this.#leave(entry);
    // The record of drops changed; a subject that never dropped needs no row (its messages say all).
    if (this.#lastDirty !== record) {
      this.#subjects.set(record.subject, record);
      this.#lastDirty = record;
    }
    this.#later();
  }

  forgotten(subject: string, entries: readonly HistoryEntry[]): void {
    this.#lastDirty = undefined;
    for (const e of entries) this.#leave(e);
    this.#forget.add(subject);
    this.#subjects.delete(subject);
    this.#later();
  }

  /** A subject's retained value set, or cleared (undefined). */
  retained(subject: string, value: StoredRetained | undefined): void {
    if (value === undefined) {
      this.#retainedPut.delete(subject);
      this.#retainedDelete.add(subject);
    } else {
      this.#retainedDelete.delete(subject);
      this.#retainedPut.set(subject, value);
    }
    this.#later();
  }

  /** A new sequence reservation: kept with this turn's commit, which comes before any number past the old one is seen. */
  reserve(upTo: number): void {
    this.#reservation = upTo;
    this.#schedule();
  }

  /** Answers `ok` to this publish once the turn is committed (or `err` if the commit fails). */
  ack(session: Session, id: number, seq: number, subject: string): void {
    this.#acks.push({ session, id, seq, subject });
    this.#schedule();
  }

  /** A commit before this turn's frames leave. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    runBeforeNextFlush(this.#commit);
    process.nextTick(this.#commit);
  }

  /** A commit within UNACKED_COMMIT_DELAY_MS (or sooner, with the next turn that needs one). */
  #later(): void {
    if (this.#scheduled || this.#delayed !== undefined) return;
    this.#delayed = setTimeout(this.#commit, UNACKED_COMMIT_DELAY_MS);
  }

  /** Commits what is pending now; a no-op when nothing is. */
  commit(): void {
    if (!this.#scheduled && this.#delayed === undefined) return;
    this.#scheduled = false;
    clearTimeout(this.#delayed);
    this.#delayed = undefined;
    this.#pendingBytes = 0;
    const acks = this.#acks;
    this.#acks = [];
    // A message that left the history before its commit is not written at all
    // (a burst on one subject writes its last few), nor deleted.
    const deleted = this.#deleted;
    const messages = this.#droppedPending === 0 ? this.#messages : this.#messages.filter((m) => m.settled !== true);
    this.#droppedPending = 0;
    // Every pending message still holds its payload: it is released only once committed, below.
    const stored = messages as unknown as StoredMessage[];
    try {
      this.#store.commit({
        retainedPut: [...this.#retainedPut.values()],
        retainedDelete: [...this.#retainedDelete],
        messages: stored,
        deleted,
        subjects: [...this.#subjects.values()].map((record) => record.toStored()),
        forget: [...this.#forget],
        sequenceReservation: this.#reservation,
      });
    } catch (error) {
      // `#deleted` stays as it is: carried into the next commit with the messages.
      this.#failed(error, messages, acks);
      return;
    }
    this.commits++;
    if (this.#failing) this.#log.info("the store accepts writes again");
    this.#failing = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    // Committed: the store has the bytes now; the history keeps the rest of each message.
    for (const m of messages) {
      m.payload = undefined;
      m.settled = true;
    }
    this.#messages = [];
    this.#deleted = [];
    this.#lastDirty = undefined;
    this.#subjects.clear();
    this.#forget.clear();
    this.#retainedPut.clear();
    this.#retainedDelete.clear();
    this.#reservation = undefined;
    for (const a of acks) a.session.send({ op: "ok", id: a.id, seq: a.seq });
  }

  #failed(error: unknown, messages: HistoryEntry[], acks: PendingAck[]): void {
    this.failedCommits++;
    const code = error instanceof XpcbusError && error.code === "store_full" ? "store_full" : "store_failed";
    const said = error instanceof Error ? error.message : String(error);
    if (!this.#failing) this.#log.error({ err: error }, "the store refused a commit; the broker keeps serving from memory and retries");
    this.#failing = true;
    // Carried into the next commit: only what is still in the history.
    this.#messages = messages;
    const reason = `${code === "store_full" ? "the store's disk is full" : "the store failed"} (${said}): this publish was delivered and is kept in memory, but is not on disk yet; the broker retries`;
    for (const a of acks) a.session.error(code, reason, a.id, a.subject);
    this.#retryTimer ??= setTimeout(() => {
      this.#retryTimer = undefined;
      this.#schedule();
    }, STORE_RETRY_MS).unref();
  }

  /** Commits what is pending and stops retrying (the broker is closing). */
  close(): void {
    this.commit();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
