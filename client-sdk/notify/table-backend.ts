// Linux: the broker's notify table, mapped read-only, and one native waiter.

import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { UntrustedBrokerError, XpcbusError } from "../errors.js";
import { loadNative, type NativeNotifyTableReader, type NativeNotifyWaiter } from "../../native/index.js";
import type { NotifyBackend, NotifyRegistrationInfo, NotifyToken } from "./notify-backend.js";

/**
 * "1" forces one waiter thread per slot (FUTEX_WAIT) instead of futex_waitv in
 * every client of the process (and of the processes and workers it starts):
 * how the stress tests run the SDK in the mode old kernels get. "0" or unset:
 * the option decides.
 */
export const NOTIFY_PER_SLOT_ENV = "XPCBUS_NOTIFY_PER_SLOT";

function perSlotForced(): boolean {
  const value = process.env[NOTIFY_PER_SLOT_ENV];
  if (value === undefined || value === "" || value === "0") return false;
  if (value === "1") return true;
  throw new XpcbusError("invalid_argument", `$${NOTIFY_PER_SLOT_ENV} must be "1" or "0", not "${value}"`);
}

/**
 * Maps the table only if its file is the checked broker's: a table anyone
 * else made could show watchers whatever states its maker likes. The file is
 * opened once here and fstat'ed; the reader maps that same open file through
 * /proc/self/fd, so no rename between the check and the map can swap it.
 */
function openTrustedTable(
  Reader: new (path: string) => NativeNotifyTableReader,
  table: string,
  brokerUid: number | undefined,
): NativeNotifyTableReader {
  if (brokerUid === undefined) {
    throw new UntrustedBrokerError(
      table,
      undefined,
      `not mapping the notify table ${table}: this client's transport did not check the broker's uid (only the Unix socket transport does)`,
    );
  }
  const fd = openSync(table, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  try {
    const owner = fstatSync(fd).uid;
    if (owner !== brokerUid) {
      throw new UntrustedBrokerError(
        table,
        brokerUid,
        `not mapping the notify table ${table}: it belongs to uid ${owner}, not to the broker's uid ${brokerUid}`,
      );
    }
    return new Reader(`/proc/self/fd/${fd}`);
  } finally {
    closeSync(fd);
  }
}

class TableToken implements NotifyToken {
  readonly name: string;
  readonly slot: number;
  readonly #reader: NativeNotifyTableReader;
  #generation: number;

  constructor(name: string, slot: number, reader: NativeNotifyTableReader) {
    this.name = name;
    this.slot = slot;
    this.#reader = reader;
    // The baseline includes any post made since the broker answered `watch`:
    // such a post shows only in state(), which the client compares with the
    // answered state right after add() (Client #register).
    this.#generation = reader.generation(slot);
  }

  changed(): boolean {
    const now = this.#reader.generation(this.slot);
    if (now === this.#generation) return false;
    this.#generation = now;
    return true;
  }

  state(): bigint {
    return this.#reader.state(this.slot);
  }
}

export class TableNotifyBackend implements NotifyBackend {
  readonly #reader: NativeNotifyTableReader;
  readonly #waiter: NativeNotifyWaiter;
  readonly #tokens = new Set<TableToken>();

  readonly #onWake: () => void;

  constructor(table: string, onWake: () => void, perSlot: boolean, brokerUid: number | undefined) {
    this.#onWake = onWake;
    const perSlotWaiters = perSlot || perSlotForced(); // checked before anything is opened
    const native = loadNative();
    if (native.NotifyTableReader === undefined || native.NotifyWaiter === undefined) {
      throw new XpcbusError("native_unavailable", "this build of the addon has no notify table reader (Linux only)");
    }
    this.#reader = openTrustedTable(native.NotifyTableReader, table, brokerUid);
    this.#waiter = new native.NotifyWaiter(this.#reader, onWake, { perSlot: perSlotWaiters });
  }

  add(name: string, registration: NotifyRegistrationInfo): NotifyToken {
    if (registration.slot === undefined || registration.hash === undefined) {
      throw new XpcbusError("internal", `the broker registered "${name}" without a notify table slot`);
    }
    // The broker wrote the name's hash into the slot before answering; a
    // mismatch means this mapping is not the table the broker spoke of.
    if (this.#reader.nameHash(registration.slot) !== registration.hash) {
      throw new XpcbusError("internal", `notify table slot ${registration.slot} does not hold "${name}"; the table was replaced`);
    }
    const token = new TableToken(name, registration.slot, this.#reader);
    this.#tokens.add(token);
    this.#rearm();
    return token;
  }

  remove(token: NotifyToken): void {
    if (this.#tokens.delete(token as TableToken)) this.#rearm();
  }

  close(): void {
    this.#tokens.clear();
    this.#waiter.close();
    this.#reader.close();
  }

  #rearm(): void {
    this.#waiter.setSlots([...new Set([...this.#tokens].map((t) => t.slot))]);
    // A post between a token's creation and the waiter's new baseline would
    // not wake the thread; one check now covers that window.
    queueMicrotask(this.#onWake);
  }
}
