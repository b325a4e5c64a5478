// Linux: the broker's notify table, mapped read-only, and one native waiter.

import { XpcbusError } from "../errors.js";
import { loadNative, type NativeNotifyTableReader, type NativeNotifyWaiter } from "../../native/loader.js";
import type { NotifyBackend, NotifyRegistrationInfo, NotifyToken } from "./notify-backend.js";

class TableToken implements NotifyToken {
  readonly name: string;
  readonly slot: number;
  readonly #hash: number;
  readonly #reader: NativeNotifyTableReader;
  #generation: number;

  constructor(name: string, slot: number, hash: number, reader: NativeNotifyTableReader) {
    this.name = name;
    this.slot = slot;
    this.#hash = hash;
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

  /** False once the broker gave the slot to another name (we are no longer registered). */
  get owned(): boolean {
    return this.#reader.nameHash(this.slot) === this.#hash;
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

  /** "futex_waitv" or "futex_wait": how the waiter sleeps. */
  get method(): string | null {
    return this.#waiter.method;
  }

  get reader(): NativeNotifyTableReader {
    return this.#reader;
  }

  add(name: string, registration: NotifyRegistrationInfo): NotifyToken {
    if (registration.slot === undefined || registration.hash === undefined) {
      throw new XpcbusError("internal", `the broker registered "${name}" without a notify table slot`);
    }
    const token = new TableToken(name, registration.slot, registration.hash, this.#reader);
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
