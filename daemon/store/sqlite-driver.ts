// The one place that loads better-sqlite3, lazily: it is an optional
// dependency (a native addon a user without a compiler or a prebuilt may not
// have), so the rest of the daemon and the client SDK never import it, and a
// missing or broken module is a `store_unavailable` error, not a crash at
// import. The types are the few members the store uses, declared here so the
// build needs no @types package for an optional module.

import { createRequire } from "node:module";
import { XpcbusError } from "../../protocol/index.js";

/** The version this build is tested with (13.x needs Node 22). */
export const BETTER_SQLITE3_VERSION = "12.11.1";

export interface SqliteRunResult {
  readonly changes: number;
}

export interface SqliteStatement {
  run(...params: unknown[]): SqliteRunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export interface SqliteDatabase {
  readonly name: string;
  readonly open: boolean;
  readonly inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): this;
  pragma(sql: string, options?: { simple?: boolean }): unknown;
  close(): this;
}

export interface SqliteDatabaseOptions {
  /** Milliseconds to wait for a lock held by another connection before SQLITE_BUSY (0: fail at once). */
  timeout?: number;
  fileMustExist?: boolean;
  readonly?: boolean;
}

export type SqliteDatabaseConstructor = new (path: string, options?: SqliteDatabaseOptions) => SqliteDatabase;

/** An error better-sqlite3 throws: `code` is SQLite's extended result code name, e.g. SQLITE_FULL. */
export interface SqliteError extends Error {
  readonly code: string;
}

export function isSqliteError(error: unknown): error is SqliteError {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" && code.startsWith("SQLITE_");
}

let cached: SqliteDatabaseConstructor | undefined;

/** better-sqlite3's Database class, loaded on first use; `store_unavailable` when it is not installed or does not load. */
export function loadSqlite(): SqliteDatabaseConstructor {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  try {
    const Database = require("better-sqlite3") as SqliteDatabaseConstructor;
    // The module loads its addon only when a database opens: open one in
    // memory so a missing or mismatched better_sqlite3.node shows here.
    new Database(":memory:").close();
    cached = Database;
  } catch (error) {
    const reason = (error as Error).message.split("\n")[0];
    throw new XpcbusError(
      "store_unavailable",
      `the SQLite store needs better-sqlite3 ${BETTER_SQLITE3_VERSION}, which did not load (${reason}): install it, or run with --store memory`,
      { cause: error },
    );
  }
  return cached;
}
