// Linux: the broker's notify table, mapped read-only, and one native waiter.

import { XpcbusError } from "../errors.js";
import { loadNative, type NativeNotifyTableReader, type NativeNotifyWaiter } from "../../native/loader.js";
import type { NotifyBackend, NotifyRegistrationInfo, NotifyToken } from "./notify-backend.js";

class TableToken implements NotifyToken {
  readonly name: string;
  readonly slot: number;
  readonly #reader: NativeNotifyTableReader;
  #generation: number;

  constructor(name: string, slot: number, reader: NativeNotifyTableReader) {
    this.name = name;
    this.slot = slot;
    this.#reader = reader;
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

  constructor(table: string, onWake: () => void, perSlot: boolean) {
    this.#onWake = onWake;
    const native = loadNative();
    if (native.NotifyTableReader === undefined || native.NotifyWaiter === undefined) {
      throw new XpcbusError("native_unavailable", "this build of the addon has no notify table reader (Linux only)");
    }
    this.#reader = new native.NotifyTableReader(table);
    this.#waiter = new native.NotifyWaiter(this.#reader, onWake, { perSlot });
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
