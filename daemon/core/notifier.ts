// The seam between the broker core and notifications. The core tells a
// Notifier about every publish and hands it the notify ops; the Notifier
// (daemon/notify/: a shared table on Linux, notify(3) on macOS) does the rest.
// Like transports, it is given to the core, which never touches its files.

import type { WireErrorCode, NotifyInfo } from "../../protocol/index.js";

export interface NotifyRegistration {
  /** Linux: the name's slot in the table, and the hash stored there. */
  slot?: number;
  hash?: number;
  /** The name's state now. */
  state: bigint;
}

export interface NotifyRefusal {
  code: WireErrorCode;
  reason: string;
}

export interface Notifier {
  /** What `welcome.notify` tells clients. */
  readonly info: NotifyInfo;
  /**
   * The subject a notification name stands for: `<prefix>.<subject>` under
   * this notifier's prefix, with a valid concrete subject; undefined for any
   * other name. The core derives a name's starting state and the right to
   * watch it from this, and never parses names itself.
   */
  subjectOf(name: string): string | undefined;
  /** After every publish: post `<prefix>.<subject>` with state = seq. Must be cheap when nobody watches. */
  published(subject: string, seq: number): void;
  /** A peer's interest in `name` (counted once per peer); `initial` is the state to start from when the name is new. */
  watch(name: string, initial: bigint): NotifyRegistration | NotifyRefusal;
  /** Undoes one watch of `name`. */
  unwatch(name: string): void;
  /** Posts `name`, setting its state first when given. */
  post(name: string, state: bigint | undefined): void;
  /** The state of `name`, or undefined if the notifier knows nothing of it. */
  state(name: string): bigint | undefined;
  close(): void;
}
