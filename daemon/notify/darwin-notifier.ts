// The macOS notifier: Apple's notify(3). Every publish sets the state of
// `<prefix>.<subject>` and posts it; clients register with notifyd directly,
// so `watch` only reports the current state. The notify(3) calls go to a
// NotifyCenter (the addon's NotifyPoster; a fake in the Linux tests): all
// the bookkeeping below is platform-neutral and tested there.
//
// Setting a state takes a registration (a token) for the name; posting
// without one does not. The broker holds registrations for the names it
// set state on most recently, at most MAX_NOTIFY_STATE_TOKENS, and releases
// the least recently used. notifyd forgets a name, state and all, when its
// last registration is cancelled: so the broker remembers the state it last
// set per name, and sets it again when it registers for a name anew and
// finds notifyd holding 0 (PROTOCOL.md §9.9.6).

import { LRUCache } from "lru-cache";
import type { NotifyInfo } from "../../protocol/index.js";
import { brokerUidProblem, XpcbusError } from "../../protocol/index.js";
import { loadNative, NativeError, toNativeError } from "../../native/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "../core/notifier.js";
import { NotifyPrefix } from "./notify-prefix.js";

/**
 * Most notify(3) registrations the broker holds for setting states. The
 * registrations take no slot of notifyd's shared memory (that is only
 * notify_register_check's, and the whole Mac has pagesize/4 slots), but each
 * is a client record in notifyd and keeps its name alive there: enough for
 * the subjects being published at any one time, small next to what notifyd
 * serves for the rest of the system. A name released is registered again at
 * its next post, its state restored (above), for a couple of IPCs.
 */
export const MAX_NOTIFY_STATE_TOKENS = 256;

/** States remembered for restoring, by default (the daemon's maxNotifyStates default). */
export const DEFAULT_MAX_REMEMBERED_STATES = 10_000;

/** The notify(3) calls the notifier makes, by name; the center registers for a name when a call needs it. */
export interface NotifyCenter {
  /** notify_set_state, then notify_post; without `state`, notify_post alone (no registration needed). */
  post(name: string, state?: bigint): void;
  /** notify_set_state without posting. */
  setState(name: string, state: bigint): void;
  /** notify_get_state: 0 for a name notifyd holds nothing for. */
  state(name: string): bigint;
  /** Cancels the registration held for `name`, if any. */
  forget(name: string): void;
  close(): void;
}

export interface DarwinNotifierOptions {
  /** The uid the broker runs as, which notifyd checks `user.uid.` names against; default: this process's. */
  uid?: number;
  /** How many names' last states are remembered to be restored (maxNotifyStates). */
  maxStates?: number;
  /** The notify(3) calls; default: the addon's NotifyPoster. */
  center?: NotifyCenter;
}

export class DarwinNotifier implements Notifier {
  readonly info: NotifyInfo;
  readonly #center: NotifyCenter;
  readonly #names: NotifyPrefix;
  readonly #uid: number;
  /** Names the center holds a registration for, least recently used first out (which cancels it). */
  readonly #tokens: LRUCache<string, true>;
  /** The state the broker last set, per name. */
  readonly #states: LRUCache<string, bigint>;

  /** `maxNames` (maxNotifySlots) lowers the registration bound below MAX_NOTIFY_STATE_TOKENS, never raises it. */
  constructor(prefix: string, maxNames: number, options: DarwinNotifierOptions = {}) {
    const center = options.center ?? nativeCenter();
    this.#center = center;
    this.#names = new NotifyPrefix(prefix);
    this.#uid = options.uid ?? process.getuid?.() ?? 0;
    this.#tokens = new LRUCache({ max: Math.max(1, Math.min(maxNames, MAX_NOTIFY_STATE_TOKENS)), dispose: (_value, name) => center.forget(name) });
    this.#states = new LRUCache({ max: Math.max(1, options.maxStates ?? DEFAULT_MAX_REMEMBERED_STATES) });
    this.info = { mechanism: "notify(3)", prefix };
  }

  subjectOf(name: string): string | undefined {
    return this.#names.subjectOf(name);
  }

  published(subject: string, seq: number): void {
    this.#set(this.#names.nameOf(subject), BigInt(seq));
  }

  watch(name: string, _initial: bigint): NotifyRegistration | NotifyRefusal {
    const problem = brokerUidProblem(name, this.#uid);
    if (problem !== undefined) return { code: "reserved_name", reason: problem };
    return { state: this.#read(name) };
  }

  unwatch(_name: string): void {}

  post(name: string, state: bigint | undefined): void {
    this.#refuseForeign(name);
    if (state !== undefined) {
      this.#set(name, state);
      return;
    }
    // Posting alone keeps notifyd's state. While the broker holds a
    // registration that is the state it set (or a newer one); without one,
    // notifyd may have forgotten the name, and the watchers would wake to 0.
    if (this.#tokens.get(name) === undefined && this.#states.has(name)) this.#read(name);
    this.#call(() => this.#center.post(name));
  }

  state(name: string): bigint {
    this.#refuseForeign(name);
    return this.#read(name);
  }

  close(): void {
    this.#tokens.clear();
    this.#center.close();
  }

  /** notifyd refuses this broker's uid another user's `user.uid.` names: say so before asking it. */
  #refuseForeign(name: string): void {
    const problem = brokerUidProblem(name, this.#uid);
    if (problem !== undefined) throw new XpcbusError("reserved_name", problem);
  }

  #set(name: string, state: bigint): void {
    this.#registered(name, () => this.#center.post(name, state));
    this.#states.set(name, state);
  }

  /** notifyd's state for `name`, restored first if notifyd forgot it since the broker last set it. */
  #read(name: string): bigint {
    return this.#registered(name, (fresh) => {
      const state = this.#center.state(name);
      const remembered = fresh && state === 0n ? this.#states.get(name) : undefined;
      if (remembered === undefined || remembered === 0n) return state;
      this.#center.setState(name, remembered);
      return remembered;
    });
  }

  /**
   * Runs `call`, which makes the center register for `name` if it holds no
   * registration (`fresh`). A failed call leaves no bookkeeping for a
   * registration the center may not have made.
   */
  #registered<T>(name: string, call: (fresh: boolean) => T): T {
    const fresh = this.#tokens.get(name) === undefined;
    if (fresh) this.#tokens.set(name, true);
    try {
      return call(fresh);
    } catch (error) {
      if (fresh) this.#tokens.delete(name);
      throw toNativeError(error);
    }
  }

  #call(call: () => void): void {
    try {
      call();
    } catch (error) {
      throw toNativeError(error);
    }
  }
}

function nativeCenter(): NotifyCenter {
  const { NotifyPoster } = loadNative();
  if (NotifyPoster === undefined) throw new NativeError("native_unavailable", "this build of the addon has no notify(3) poster (macOS only)");
  let poster: NotifyCenter;
  try {
    poster = new NotifyPoster();
  } catch (error) {
    throw toNativeError(error);
  }
  // An addon built before setState (and the token-less post) existed.
  if (typeof poster.setState !== "function") {
    poster.close();
    throw new NativeError("native_unavailable", "this build of the addon's notify(3) poster has no setState: rebuild the addon");
  }
  return poster as NotifyCenter;
}
