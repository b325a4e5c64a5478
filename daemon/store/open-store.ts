// Opening the daemon's store: every start-up fault becomes one XpcbusError
// whose message is one line an operator can act on — the module is missing
// (store_unavailable), the file or its directory cannot be written
// (store_unwritable), another broker holds it (store_locked), it is not a
// database or is damaged (store_corrupt), a newer xpcbus wrote it
// (store_newer_schema). With `reset`, the last two are answered by moving the
// file aside and starting an empty store; never the others, which a new file
// would not cure (unwritable) or would make worse (locked: two brokers).

import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { InvalidArgumentError, XpcbusError } from "../../protocol/index.js";
import type { DurableStore } from "../core/durable-store.js";
import { loadSqlite } from "./sqlite-driver.js";
import { openSqliteStore, type Durability } from "./sqlite-store.js";

export const DEFAULT_DURABILITY: Durability = "normal";

export interface OpenStoreOptions {
  /** The database file; its directory is created (0700) when missing. */
  path: string;
  /** "normal": survives a crash of the broker; "full": also a power loss. */
  durability: Durability;
  /** Move a corrupt or newer-schema store aside and start an empty one, instead of refusing to start. */
  reset: boolean;
  log: Logger;
  /** The sequence floor recorded as the store's creation point if this open creates it. */
  createdAtSeq?: number;
}

/** SQLite's companion files, moved with the database so the set stays consistent. */
const COMPANION_SUFFIXES = ["-wal", "-shm", "-journal"] as const;

/** Faults that a fresh file cures, hence what `reset` may move aside. */
const RESETTABLE: ReadonlySet<string> = new Set(["store_corrupt", "store_newer_schema"]);

export function openStore(options: OpenStoreOptions): DurableStore {
  const { path, durability, log } = options;
  if (durability !== "normal" && durability !== "full") {
    throw new InvalidArgumentError(`durability "${String(durability)}" is not normal or full`);
  }
  const Database = loadSqlite();
  prepareDirectory(path);
  const open = (): DurableStore => openSqliteStore(Database, { path, durability, createdAtSeq: options.createdAtSeq });
  try {
    return open();
  } catch (error) {
    if (!options.reset || !(error instanceof XpcbusError) || !RESETTABLE.has(error.code)) throw error;
    const reason = error.code === "store_corrupt" ? "corrupt" : "newer-schema";
    const aside = moveAside(path, reason);
    log.warn({ store: path, movedTo: aside, reason: error.message }, "store reset (--store-reset): the old file was moved aside, starting an empty store");
    return open();
  }
}

/** Creates the directory if missing; refuses early, with the OS's reason, when the directory or file cannot be written. */
function prepareDirectory(path: string): void {
  const dir = dirname(path);
  try {
    // SQLite creates the -wal file beside the database: the directory must be writable, not only the file.
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new XpcbusError("store_unwritable", `store ${path}: the directory ${dir} cannot be written (${osReason(error)})`, { cause: error });
  }
  for (const file of [path, ...COMPANION_SUFFIXES.map((s) => path + s)]) {
    if (!existsSync(file)) continue;
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
    } catch (error) {
      throw new XpcbusError("store_unwritable", `store ${path}: the file ${file} cannot be written (${osReason(error)})`, { cause: error });
    }
  }
  // Everyone's retained values and history: the owner's alone. SQLite gives
  // the -wal the database file's mode, so the file is made (empty, which
  // SQLite reads as a new database) with 0600 before SQLite sees it.
  try {
    if (existsSync(path)) chmodSync(path, 0o600);
    else closeSync(openSync(path, "wx", 0o600));
  } catch (error) {
    throw new XpcbusError("store_unwritable", `store ${path}: cannot create it owner-only (${osReason(error)})`, { cause: error });
  }
}

/** Renames the store and its companions to `<path>.<reason>-<time>` (-wal, -shm after it); returns the new name. */
function moveAside(path: string, reason: string): string {
  // ISO 8601 with the colons taken out: some tools (scp, tar) read a colon as host:path.
  const aside = `${path}.${reason}-${new Date().toISOString().replace(/:/g, "")}`;
  try {
    for (const suffix of ["", ...COMPANION_SUFFIXES]) {
      if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
    }
  } catch (error) {
    throw new XpcbusError("store_unwritable", `store ${path}: cannot move it aside to ${aside} (${osReason(error)})`, { cause: error });
  }
  return aside;
}

function osReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code !== undefined ? `${e.code}: ${e.message.replace(/^[A-Z]+: /, "")}` : e.message;
}
