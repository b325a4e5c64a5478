// The macOS notifier: Apple's notify(3). Every publish sets the state of
// `<prefix>.<subject>` and posts it; clients register with notifyd directly,
// so `watch` only reports the current state. The poster keeps one token per
// name it sets state on, bounded (least recently posted released first).

import { LRUCache } from "lru-cache";
import type { NotifyInfo } from "../../protocol/index.js";
import { loadNative, NativeError, toNativeError, type NativeNotifyPoster } from "../../native/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "../core/notifier.js";
import { NotifyPrefix } from "./notify-prefix.js";

export class DarwinNotifier implements Notifier {
  readonly info: NotifyInfo;
  readonly #poster: NativeNotifyPoster;
  readonly #names: NotifyPrefix;
  readonly #tokens: LRUCache<string, true>;

  constructor(prefix: string, maxNames: number) {
    const { NotifyPoster } = loadNative();
    if (NotifyPoster === undefined) throw new NativeError("native_unavailable", "this build of the addon has no notify(3) poster (macOS only)");
    let poster: NativeNotifyPoster;
    try {
      poster = new NotifyPoster();
    } catch (error) {
      throw toNativeError(error);
    }
    this.#poster = poster;
    this.#names = new NotifyPrefix(prefix);
    this.#tokens = new LRUCache({ max: maxNames, dispose: (_value, name) => poster.forget(name) });
    this.info = { mechanism: "notify(3)", prefix };
  }

  subjectOf(name: string): string | undefined {
    return this.#names.subjectOf(name);
  }

  published(subject: string, seq: number): void {
    this.post(this.#names.nameOf(subject), BigInt(seq));
  }

  watch(name: string, _initial: bigint): NotifyRegistration | NotifyRefusal {
    return { state: this.state(name) };
  }

  unwatch(_name: string): void {}

  post(name: string, state: bigint | undefined): void {
    this.#tokens.set(name, true);
    try {
      this.#poster.post(name, state ?? this.#poster.state(name));
    } catch (error) {
      throw toNativeError(error);
    }
  }

  state(name: string): bigint {
    // Reading a state takes a token too: count it against the same bound.
    this.#tokens.set(name, true);
    try {
      return this.#poster.state(name);
    } catch (error) {
      throw toNativeError(error);
    }
  }

  close(): void {
    this.#tokens.clear();
    this.#poster.close();
  }
}
