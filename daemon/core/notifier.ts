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
  /** What `welcome.notify` tells clients (of the broker's own uid, where join() tells each peer its own). */
  readonly info: NotifyInfo;
  /**
   * A peer of `uid` was welcomed (null: its uid is unknown). The notifier may
   * make what that peer's notifications need (Linux: the uid's own table) and
   * may throw when it cannot; then the peer gets none. Each join is paired
   * with one leave(uid) when the peer goes, after its watches ended. Without
   * join/leave/infoFor, every peer gets `info`.
   */
  join?(uid: number | null): void;
  leave?(uid: number | null): void;
  /**
   * What `welcome.notify` tells a joined peer of `uid`, or undefined when it
   * is served no notifications (then its `watch`, `unwatch`, `post` and
   * `state` answer `notify_unavailable`). Cheap: asked on every notify op.
   */
  infoFor?(uid: number | null): NotifyInfo | undefined;
  /**
   * The subject a notification name stands for: `<prefix>.<subject>` under
   * this notifier's prefix, with a valid concrete subject; undefined for any
   * other name. The core derives a name's starting state and the right to
   * watch it from this, and never parses names itself.
   */
  subjectOf(name: string): string | undefined;
  /** After every publish: post `<prefix>.<subject>` with state = seq. Must be cheap when nobody watches. */
  published(subject: string, seq: number): void;
  /**
   * A peer's interest in `name` (counted once per peer), the peer being of
   * `uid` (omitted: the broker's own); `initial` is the state to start from
   * when the name is new. Called only after the policy let that peer watch
   * `name`: a notifier that keeps what each uid watches apart (Linux) shows
   * a uid nothing of names it was not let watch.
   */
  watch(name: string, initial: bigint, uid?: number | null): NotifyRegistration | NotifyRefusal;
  /** Undoes one watch of `name` by a peer of `uid`. */
  unwatch(name: string, uid?: number | null): void;
  /**
   * The policy no longer lets `uid` watch `name` (a reload): once no peer of
   * that uid watches it, stop posting it where that uid can read it (the
   * Linux table keeps an unwatched name's slot for a cheap re-watch
   * otherwise). Optional: notifyd has no per-reader copies.
   */
  revoke?(name: string, uid?: number | null): void;
  /** Posts `name`, setting its state first when given. */
  post(name: string, state: bigint | undefined): void;
  /** The state of `name`, or undefined if the notifier knows nothing of it. */
  state(name: string): bigint | undefined;
  close(): void;
}
