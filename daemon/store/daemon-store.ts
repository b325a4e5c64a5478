// Which store the daemon runs with, from its options: `--store memory` (none),
// `--store PATH`, or, without --store, the default path (store-path.ts).
// Durability is on by default but not required: when better-sqlite3 cannot
// be loaded and the user did not ask for a store, the daemon runs without one
// and says so once; when they asked for one (`--store PATH`), it refuses.

import { homedir } from "node:os";
import type { Logger } from "pino";
import { InvalidArgumentError, XpcbusError } from "../../protocol/index.js";
import type { DurableStore } from "../core/durable-store.js";
import { DEFAULT_DURABILITY, openStore } from "./open-store.js";
import type { Durability } from "./sqlite-store.js";
import { defaultStorePath } from "./store-path.js";

/** `--store memory`: nothing outlives the process. */
export const MEMORY_STORE = "memory";

export interface DaemonStoreOptions {
  /** "memory", a path, or undefined for the default path. */
  store: string | undefined;
  durability: Durability | undefined;
  reset: boolean;
  system: boolean;
  socketPath: string;
  socketPathIsDefault: boolean;
  log: Logger;
  /** The broker's starting sequence floor, recorded as the creation point of a new store. */
  createdAtSeq: number;
  env?: NodeJS.ProcessEnv;
}

/** The store to hand the broker, or undefined to run in memory. */
export function openDaemonStore(options: DaemonStoreOptions): DurableStore | undefined {
  if (options.store === MEMORY_STORE) return undefined;
  if (options.store === "") throw new InvalidArgumentError(`--store needs a file path, or "${MEMORY_STORE}"`);
  const explicit = options.store !== undefined;
  const path =
    options.store ??
    defaultStorePath({
      system: options.system,
      socketPathIsDefault: options.socketPathIsDefault,
      socketPath: options.socketPath,
      env: options.env ?? process.env,
      platform: process.platform,
      homedir: homedir(),
    });
  try {
    return openStore({
      path,
      durability: options.durability ?? DEFAULT_DURABILITY,
      reset: options.reset,
      log: options.log,
      createdAtSeq: options.createdAtSeq,
    });
  } catch (error) {
    if (!explicit && error instanceof XpcbusError && error.code === "store_unavailable") {
      options.log.warn({ store: path, reason: error.message }, "durability is off: retained values and history will not outlive this process");
      return undefined;
    }
    throw error;
  }
}
