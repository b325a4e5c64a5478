// How a client learns that a notification name was posted: the Linux table
// (table-backend.ts) or Apple's notify(3) (darwin-backend.ts). Both wake the
// client through a native thread or queue, coalesced, and cost nothing while
// nothing is posted.

import type { NotifyInfo } from "../../protocol/index.js";
import { DarwinNotifyBackend } from "./darwin-backend.js";
import { TableNotifyBackend } from "./table-backend.js";

/** What the broker said when the name was registered (`ok` of `watch`). */
export interface NotifyRegistrationInfo {
  slot?: number;
  hash?: number;
  state: bigint;
}

export interface NotifyToken {
  readonly name: string;
  /** True once per change: a memory read on Linux, notifyd's shared page on macOS. */
  changed(): boolean;
  /** The name's 64-bit state now. */
  state(): bigint;
}

export interface NotifyBackend {
  add(name: string, registration: NotifyRegistrationInfo): NotifyToken;
  remove(token: NotifyToken): void;
  close(): void;
}

export interface BackendOptions {
  /** Linux only: one waiter thread per slot (FUTEX_WAIT) instead of futex_waitv; for tests and old kernels. */
  perSlotWaiters?: boolean;
  /**
   * Linux only: the broker's uid as the client's transport checked it before
   * sending anything; the table is mapped only when it is known and only if
   * the file is that uid's (docs/SECURITY.md, "Trusting the broker").
   */
  brokerUid?: number | undefined;
}

/** The backend for what `welcome.notify` announced; `onWake` runs on the JS thread after posts. */
export function openNotifyBackend(info: NotifyInfo, onWake: () => void, options: BackendOptions = {}): NotifyBackend {
  if (info.mechanism === "table") return new TableNotifyBackend(info.table, onWake, options.perSlotWaiters === true, options.brokerUid);
  return new DarwinNotifyBackend(onWake);
}
