// A fake of the addon's XPC listener, for the XPC transport's TypeScript half
// on any platform: it records what the transport asks of it, holds reply
// contexts as the real one does until answered, handed back or gone, and
// `emit` plays the addon's events (docs/PROTOCOL.md §14). What the addon
// itself does on a Mac is type-checked by `npm run check:apple`.
import type { NativeXpcEvent, NativeXpcIdentity, NativeXpcListener, NativeXpcObject } from "../../native/index.js";
import type { XpcNative } from "../transports/xpc-server.js";

export type FakeXpcCall =
  | { op: "send"; peer: number; message: Record<string, unknown> }
  | { op: "reply"; peer: number; token: number; message: Record<string, unknown> | null }
  | { op: "cancel"; peer: number };

export class FakeXpcListener implements NativeXpcListener {
  /** The listener the transport made last. */
  static last: FakeXpcListener | undefined;
  readonly calls: FakeXpcCall[] = [];
  readonly options: { codeSigningRequirement?: string } | undefined;
  /** Reply contexts the "addon" holds. */
  readonly contexts = new Set<number>();
  readonly #onEvent: (event: NativeXpcEvent) => void;
  started = false;
  closed = false;

  constructor(_service: string | null, onEvent: (event: NativeXpcEvent) => void, options?: { codeSigningRequirement?: string }) {
    this.#onEvent = onEvent;
    this.options = options;
    FakeXpcListener.last = this;
  }

  emit(event: NativeXpcEvent): void {
    if (event.replyToken !== undefined) this.contexts.add(event.replyToken);
    this.#onEvent(event);
  }

  #open(): void {
    if (this.closed) throw new Error("the XPC listener is closed");
  }
  start(): void {
    this.#open();
    this.started = true;
  }
  endpoint(): NativeXpcObject {
    this.#open();
    return {} as NativeXpcObject;
  }
  send(peer: number, encoded: NativeXpcObject): boolean {
    this.#open();
    this.calls.push({ op: "send", peer, message: encoded as unknown as Record<string, unknown> });
    return true;
  }
  reply(peer: number, token: number, encoded: NativeXpcObject | null): boolean {
    this.#open();
    if (!this.contexts.delete(token)) throw new Error(`reply token ${token} used twice or never given`);
    this.calls.push({ op: "reply", peer, token, message: encoded as unknown as Record<string, unknown> | null });
    return true;
  }
  cancel(peer: number): void {
    this.#open();
    this.calls.push({ op: "cancel", peer });
  }
  close(): void {
    this.closed = true;
  }
}

/** The addon as the transport sees it; the "encoded" form is the message itself, so what was sent can be read back. */
export const fakeXpcNative: XpcNative = { XpcListener: FakeXpcListener, xpcEncode: (message) => message as unknown as NativeXpcObject };

/** A peer's identity as the addon reports it from the audit token. */
export function fakeXpcIdentity(pid: number, over: Partial<NativeXpcIdentity> = {}): NativeXpcIdentity {
  return {
    pid,
    uid: 501,
    gid: 20,
    exe: "/usr/local/bin/app",
    exeVerified: true,
    exeError: null,
    method: "xpc_audit_token",
    teamId: null,
    auditToken: new Uint8Array(32),
    ...over,
  };
}
