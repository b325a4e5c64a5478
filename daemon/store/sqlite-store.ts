// The durable store on SQLite (better-sqlite3): what the broker core writes
// through to each event-loop turn (core/durable-store.ts), and reads back at
// start. One broker owns one file: it is opened with an exclusive lock that
// is held until close, so a second broker on the same file is refused
// (`store_locked`) instead of both writing.
//
// Journal: WAL, with `locking_mode=EXCLUSIVE` (so no -shm file: the
// wal-index lives in this process's heap, https://sqlite.org/wal.html#noshm).
// Durability "normal" is `synchronous=NORMAL`: a commit is in the WAL once
// commit() returns, so it survives a kill -9 of the broker; a power loss may
// lose the last commits (the WAL is fsynced at checkpoints only). "full" is
// `synchronous=FULL`: the WAL is fsynced on every commit.

import { XpcbusError } from "../../protocol/index.js";
import type { PayloadEncoding } from "../../protocol/index.js";
import type {
  DurableStore,
  StoreBatch,
  StoreDescription,
  StoredMessage,
  StoredRetained,
  StoredSubject,
  StoreSnapshot,
} from "../core/durable-store.js";
import { META, MIGRATIONS, SCHEMA_VERSION } from "./schema.js";
import { isSqliteError, type SqliteDatabase, type SqliteDatabaseConstructor, type SqliteStatement } from "./sqlite-driver.js";

export type Durability = "normal" | "full";

export interface SqliteStoreOptions {
  /** The database file. */
  path: string;
  /** "normal" (survives a crash of the broker) or "full" (also a power loss: fsync on every commit). */
  durability: Durability;
  /**
   * The sequence floor recorded as the store's `createdAt.seq` when this open
   * creates the store (default: the clock in microseconds, the same floor
   * daemon/sequence-file.ts uses). Ignored for an existing store.
   */
  createdAtSeq?: number;
  /** The clock, Unix ms (tests). */
  now?: () => number;
}

/**
 * The WAL is truncated back to this size after a checkpoint: one large batch
 * may grow it far past the usual ~4 MiB (1000 pages of auto-checkpoint), and
 * without a limit the file keeps that size while the store is open.
 */
const JOURNAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

/**
 * Opens (creating or migrating) the store at `options.path` with SQLite,
 * taking the exclusive lock and checking the file. Every fault is an
 * XpcbusError: store_locked, store_corrupt, store_newer_schema,
 * store_unwritable, store_full, store_failed. open-store.ts adds the checks
 * on the file system around it, the reset, and the log lines.
 */
export function openSqliteStore(Database: SqliteDatabaseConstructor, options: SqliteStoreOptions): SqliteStore {
  const { path } = options;
  const now = options.now ?? Date.now;
  let db: SqliteDatabase | undefined;
  try {
    // timeout 0: a lock held by another broker is refused at once, not waited for.
    db = new Database(path, { timeout: 0 });
    // Exclusive before WAL: then SQLite keeps the wal-index in memory and makes no -shm.
    db.pragma("locking_mode = EXCLUSIVE");
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") throw new XpcbusError("store_unwritable", `store ${path}: SQLite could not switch it to WAL (journal mode stays ${String(mode)})`);
    db.pragma(`synchronous = ${options.durability === "full" ? "FULL" : "NORMAL"}`);
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    // A write transaction takes the file's exclusive lock; in EXCLUSIVE
    // locking mode SQLite keeps it after COMMIT, until close. A second
    // connection (this process or another) then gets SQLITE_BUSY on any read.
    db.exec("BEGIN IMMEDIATE");
    checkIntegrity(db, path);
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new XpcbusError(
        "store_newer_schema",
        `store ${path} has schema version ${version}, newer than this build's ${SCHEMA_VERSION}: it was written by a newer xpcbus`,
      );
    }
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] as string);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    if (version === 0) {
      const insert = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
      insert.run(META.createdTime, now());
      insert.run(META.createdSeq, options.createdAtSeq ?? now() * 1000);
    }
    db.exec("COMMIT");
    return new SqliteStore(db, { kind: "sqlite", path, durability: options.durability });
  } catch (error) {
    try {
      db?.close();
    } catch {
      // Closing after a failed open: the open's error is the one to report.
    }
    throw openError(error, path);
  }
}

/** `PRAGMA quick_check`: the b-trees are well formed (not a full integrity_check, which reads every index entry). */
function checkIntegrity(db: SqliteDatabase, path: string): void {
  const rows = db.pragma("quick_check(5)") as Array<{ quick_check: string }>;
  const problems = rows.map((r) => r.quick_check).filter((r) => r !== "ok");
  if (problems.length > 0) throw new XpcbusError("store_corrupt", `store ${path} is corrupt: ${problems.join("; ")}`);
}

/** The start-up fault an SQLite error means. */
function openError(error: unknown, path: string): XpcbusError {
  if (error instanceof XpcbusError) return error;
  if (!isSqliteError(error)) return new XpcbusError("store_failed", `store ${path}: ${(error as Error).message}`, { cause: error });
  const said = `${error.message} (${error.code})`;
  const code = error.code;
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) {
    return new XpcbusError("store_corrupt", `store ${path} is not a usable database: ${said}`, { cause: error });
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new XpcbusError("store_locked", `store ${path} is in use by another broker (SQLite: ${said})`, { cause: error });
  }
  if (code === "SQLITE_FULL") return new XpcbusError("store_full", `store ${path}: the disk is full (SQLite: ${said})`, { cause: error });
  if (
    code.startsWith("SQLITE_READONLY") ||
    code.startsWith("SQLITE_CANTOPEN") ||
    code === "SQLITE_PERM" ||
    code === "SQLITE_AUTH" ||
    // A file open read-only (write-protected) cannot take a write lock.
    code === "SQLITE_IOERR_LOCK"
  ) {
    return new XpcbusError("store_unwritable", `store ${path} cannot be written (SQLite: ${said})`, { cause: error });
  }
  return new XpcbusError("store_failed", `store ${path}: ${said}`, { cause: error });
}

interface RetainedRow {
  subject: string;
  seq: number;
  payload: Uint8Array;
  enc: string | null;
  owner: number | null;
}

interface MessageRow {
  seq: number;
  subject: string;
  n: number;
  time: number;
  payload: Uint8Array;
  enc: string | null;
}

interface SubjectRow {
  subject: string;
  n: number;
  dropped: Uint8Array;
}

export class SqliteStore implements DurableStore {
  readonly description: StoreDescription;
  readonly #db: SqliteDatabase;
  readonly #path: string;
  // Prepared once: commit() is on the publish path.
  readonly #begin: SqliteStatement;
  readonly #commit: SqliteStatement;
  readonly #rollback: SqliteStatement;
  readonly #putRetained: SqliteStatement;
  readonly #deleteRetained: SqliteStatement;
  readonly #insertMessage: SqliteStatement;
  readonly #deleteMessage: SqliteStatement;
  readonly #putSubject: SqliteStatement;
  readonly #forgetSubject: SqliteStatement;
  readonly #putMeta: SqliteStatement;
  readonly #readPayload: SqliteStatement;
  #closed = false;

  /** Takes a database openSqliteStore() opened, locked and migrated. */
  constructor(db: SqliteDatabase, description: StoreDescription) {
    this.#db = db;
    this.description = description;
    this.#path = description.path ?? db.name;
    this.#begin = db.prepare("BEGIN");
    this.#commit = db.prepare("COMMIT");
    this.#rollback = db.prepare("ROLLBACK");
    this.#putRetained = db.prepare("INSERT OR REPLACE INTO retained (subject, seq, payload, enc, owner) VALUES (?, ?, ?, ?, ?)");
    this.#deleteRetained = db.prepare("DELETE FROM retained WHERE subject = ?");
    this.#insertMessage = db.prepare("INSERT INTO messages (seq, subject, n, time, payload, enc) VALUES (?, ?, ?, ?, ?, ?)");
    // By primary key: the history says which messages left, so messages needs no second index to keep up.
    this.#deleteMessage = db.prepare("DELETE FROM messages WHERE seq = ?");
    this.#putSubject = db.prepare("INSERT OR REPLACE INTO subjects (subject, n, dropped) VALUES (?, ?, ?)");
    this.#forgetSubject = db.prepare("DELETE FROM subjects WHERE subject = ?");
    this.#putMeta = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    this.#readPayload = db.prepare("SELECT payload FROM messages WHERE seq = ?");
  }

  readPayload(seq: number): Uint8Array | undefined {
    this.#checkOpen();
    return (this.#readPayload.get(seq) as { payload: Uint8Array } | undefined)?.payload;
  }

  load(): StoreSnapshot {
    this.#checkOpen();
    const db = this.#db;
    const meta = new Map<string, number>();
    for (const row of db.prepare("SELECT key, value FROM meta").all() as Array<{ key: string; value: number }>) meta.set(row.key, row.value);
    const createdTime = meta.get(META.createdTime);
    const createdSeq = meta.get(META.createdSeq);
    const retained: StoredRetained[] = (db.prepare("SELECT subject, seq, payload, enc, owner FROM retained ORDER BY seq").all() as RetainedRow[]).map(
      (r) => ({ subject: r.subject, seq: r.seq, payload: r.payload, enc: encoding(r.enc), owner: r.owner }),
    );
    const messages: StoredMessage[] = (db.prepare("SELECT seq, subject, n, time, payload, enc FROM messages ORDER BY seq").all() as MessageRow[]).map(
      (r) => ({ subject: r.subject, seq: r.seq, n: r.n, time: r.time, payload: r.payload, enc: encoding(r.enc) }),
    );
    const subjects: StoredSubject[] = (db.prepare("SELECT subject, n, dropped FROM subjects").all() as SubjectRow[]).map((r) => ({
      subject: r.subject,
      n: r.n,
      dropped: r.dropped,
    }));
    return {
      sequenceReservation: meta.get(META.sequenceReservation) ?? 0,
      createdAt: createdTime !== undefined && createdSeq !== undefined ? { time: createdTime, seq: createdSeq } : undefined,
      retained,
      messages,
      subjects,
    };
  }

  commit(batch: StoreBatch): void {
    this.#checkOpen();
    if (isEmpty(batch)) return;
    try {
      this.#begin.run();
      for (const r of batch.retainedPut) this.#putRetained.run(r.subject, r.seq, r.payload, r.enc ?? null, r.owner);
      for (const subject of batch.retainedDelete) this.#deleteRetained.run(subject);
      this.#insertMessages(batch);
      for (const seq of batch.deleted) this.#deleteMessage.run(seq);
      for (const s of batch.subjects) this.#putSubject.run(s.subject, s.n, s.dropped);
      for (const subject of batch.forget) this.#forgetSubject.run(subject);
      if (batch.sequenceReservation !== undefined) this.#putMeta.run(META.sequenceReservation, batch.sequenceReservation);
      this.#commit.run();
    } catch (error) {
      // SQLite may have rolled back already (it does on SQLITE_FULL at COMMIT).
      if (this.#db.inTransaction) {
        try {
          this.#rollback.run();
        } catch {
          // Nothing more to undo; the commit's error is the one to report.
        }
      }
      throw this.#commitError(error);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Checkpoints the WAL into the file and removes it; releases the lock.
    this.#db.close();
  }

  /** The batch's messages, less any the same batch deletes again. */
  #insertMessages(batch: StoreBatch): void {
    const { messages, deleted } = batch;
    if (messages.length === 0) return;
    const gone = deleted.length === 0 ? undefined : new Set(deleted);
    for (const m of messages) {
      if (gone?.has(m.seq) === true) continue;
      this.#insertMessage.run(m.seq, m.subject, m.n, m.time, m.payload, m.enc ?? null);
    }
  }

  #commitError(error: unknown): XpcbusError {
    if (error instanceof XpcbusError) return error;
    if (isSqliteError(error) && error.code === "SQLITE_FULL") {
      return new XpcbusError("store_full", `store ${this.#path}: the disk is full, nothing of this change was kept (SQLite: ${error.message})`, {
        cause: error,
      });
    }
    const said = isSqliteError(error) ? `${error.message} (${error.code})` : (error as Error).message;
    return new XpcbusError("store_failed", `store ${this.#path}: the write failed, nothing of this change was kept (SQLite: ${said})`, { cause: error });
  }

  #checkOpen(): void {
    if (this.#closed) throw new XpcbusError("closed", `store ${this.#path} is closed`);
  }
}

function isEmpty(batch: StoreBatch): boolean {
  return (
    batch.retainedPut.length === 0 &&
    batch.retainedDelete.length === 0 &&
    batch.messages.length === 0 &&
    batch.deleted.length === 0 &&
    batch.subjects.length === 0 &&
    batch.forget.length === 0 &&
    batch.sequenceReservation === undefined
  );
}

function encoding(enc: string | null): PayloadEncoding | undefined {
  return enc === null ? undefined : (enc as PayloadEncoding);
}
