// The macOS notifier: Apple's notify(3). Every publish sets the state of
// `<prefix>.<subject>` and posts it; clients register with notifyd directly,
// so `watch` only reports the current state. The poster keeps one token per
// name it sets state on, bounded (least recently posted released first).

import { LRUCache } from "lru-cache";
import type { NotifyInfo } from "../../protocol/index.js";
import { subjectNotifyName } from "../../protocol/index.js";
import { loadNative, type NativeNotifyPoster } from "../../native/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "../core/notifier.js";

export class DarwinNotifier implements Notifier {
  readonly info: NotifyInfo;
  readonly #poster: NativeNotifyPoster;
  readonly #prefix: string;
  readonly #tokens: LRUCache<string, true>;

  constructor(prefix: string, maxNames: number) {
    const { NotifyPoster } = loadNative();
    if (NotifyPoster === undefined) throw new Error("this build of the addon has no notify(3) poster (macOS only)");
    const poster = new NotifyPoster();
    this.#poster = poster;
    this.#prefix = prefix;
    this.#tokens = new LRUCache({ max: maxNames, dispose: (_value, name) => poster.forget(name) });
    this.info = { mechanism: "notify(3)", prefix };
  }

  published(subject: string, seq: number): void {
    this.post(subjectNotifyName(this.#prefix, subject), BigInt(seq));
  }

  watch(name: string, _initial: bigint): NotifyRegistration | NotifyRefusal {
    return { state: this.state(name) };
  }

  unwatch(_name: string): void {}

  post(name: string, state: bigint | undefined): void {
    this.#tokens.set(name, true);
    this.#poster.post(name, state ?? this.#poster.state(name));
  }

  state(name: string): bigint {
    // Reading a state takes a token too: count it against the same bound.
    this.#tokens.set(name, true);
    return this.#poster.state(name);
  }

  close(): void {
    this.#tokens.clear();
    this.#poster.close();
  }
}
