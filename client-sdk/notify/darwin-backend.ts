// macOS: notify_register_dispatch through the addon; the state is notifyd's.

import { XpcbusError } from "../errors.js";
import { loadNative, type NativeNotifyDispatchWatcher } from "../../native/index.js";
import type { NotifyBackend, NotifyToken } from "./notify-backend.js";

type DarwinNotify = NonNullable<ReturnType<typeof loadNative>["DarwinNotify"]>;

class DarwinToken implements NotifyToken {
  posted = false;

  constructor(
    readonly name: string,
    readonly token: number,
    readonly darwin: DarwinNotify,
  ) {}

  changed(): boolean {
    const posted = this.posted;
    this.posted = false;
    return posted;
  }

  state(): bigint {
    return this.darwin.getState(this.token);
  }
}

export class DarwinNotifyBackend implements NotifyBackend {
  readonly #watcher: NativeNotifyDispatchWatcher;
  readonly #darwin: DarwinNotify;
  readonly #tokens = new Map<number, DarwinToken>();

  constructor(onWake: () => void) {
    const native = loadNative();
    if (native.NotifyDispatchWatcher === undefined || native.DarwinNotify === undefined) {
      throw new XpcbusError("native_unavailable", "this build of the addon has no notify(3) support (macOS only)");
    }
    this.#darwin = native.DarwinNotify;
    this.#watcher = new native.NotifyDispatchWatcher(() => {
      for (const token of this.#watcher.drainChanged()) {
        const entry = this.#tokens.get(token);
        if (entry !== undefined) entry.posted = true;
      }
      onWake();
    });
  }

  add(name: string): NotifyToken {
    const token = new DarwinToken(name, this.#watcher.add(name), this.#darwin);
    this.#tokens.set(token.token, token);
    return token;
  }

  remove(token: NotifyToken): void {
    const entry = token as DarwinToken;
    if (this.#tokens.delete(entry.token)) this.#watcher.remove(entry.token);
  }

  close(): void {
    this.#tokens.clear();
    this.#watcher.close();
  }
}
