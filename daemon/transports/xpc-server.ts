// The XPC transport, broker side (macOS). A listener for a launchd mach
// service, or an anonymous one whose endpoint tests hand to clients in the
// same process (TN3113). Each peer connection becomes a PeerLink; messages
// arrive as maps (the value tree, converted natively) and leave as XPC
// dictionaries encoded once per publish. An op sent with a reply handler is
// answered through xpc_dictionary_create_reply, as XPC clients expect
// (xpc-reply-contexts.ts). The native listener decides nothing: it reports
// each peer with its identity and what the code-signing check found, and the
// refusal is made here (policy.ts, codeSigningRefusal; docs/PROTOCOL.md §14).
// Events reach the broker in per-peer order whatever order they come in
// (xpc-peer-events.ts).

import type { Logger } from "pino";
import type { BrokerMsg, ByeMsg, ErrMsg, WireErrorCode } from "../../protocol/index.js";
import { XpcbusError } from "../../protocol/index.js";
import { loadNative, type NativeAddon, type NativeXpcEvent, type NativeXpcListener, type NativeXpcObject } from "../../native/index.js";
import type { Outbound, PeerIdentity, PeerInbound, PeerLink, WireEncoder } from "../core/peer-link.js";
import { CODE_SIGNING_LOST, codeSigningRefusal } from "../core/policy.js";
import type { BrokerAttachment, ServerTransport } from "./server-transport.js";
import { XpcPeerEvents } from "./xpc-peer-events.js";
import { XpcReplyContexts } from "./xpc-reply-contexts.js";

/** The part of the addon this transport uses. */
export type XpcNative = Pick<NativeAddon, "XpcListener" | "xpcEncode">;

export interface XpcServerOptions {
  /** Mach service name (from the launchd job's MachServices), or null for an anonymous listener. */
  service: string | null;
  /** A code-signing requirement every peer must satisfy (checked at connect; enforced by XPC on macOS 12+). */
  codeSigningRequirement?: string;
  logger: Logger;
  /**
   * Called once when launchd says the job will be terminated. XPC tells each
   * peer connection (XPC_ERROR_TERMINATION_IMMINENT), never the listener; the
   * first one calls this, and each such peer is told `bye` and closed.
   */
  onDrain?: () => void;
  /**
   * The addon's XPC half; loadNative()'s by default. Tests give an object
   * with a fake XpcListener here, to drive this transport's logic on Linux.
   */
  native?: XpcNative;
}

type PeerEvent = NativeXpcEvent & { peer: number };

function xpcEncoder(native: XpcNative): WireEncoder<NativeXpcObject> {
  const { xpcEncode } = native;
  if (xpcEncode === undefined) throw new XpcbusError("transport_unavailable", "this build of the addon has no XPC (macOS only)");
  return { encode: (message: BrokerMsg) => xpcEncode(message), sizeOf: () => 0 };
}

class XpcPeerLink implements PeerLink {
  readonly transport = "xpc";
  readonly identity: PeerIdentity;
  // XPC does not say how much it holds for a peer; see PROTOCOL.md, "XPC".
  readonly bytesSent = 0;
  readonly replies: XpcReplyContexts;
  readonly #listener: NativeXpcListener;
  readonly #peer: number;
  readonly #encoder: WireEncoder<NativeXpcObject>;
  #closed = false;
  #released = false;

  constructor(listener: NativeXpcListener, peer: number, identity: PeerIdentity, encoder: WireEncoder<NativeXpcObject>) {
    this.#listener = listener;
    this.#peer = peer;
    this.identity = identity;
    this.#encoder = encoder;
    this.replies = new XpcReplyContexts((token) => {
      if (!this.#released) this.#listener.reply(this.#peer, token, null);
    });
  }

  send(message: Outbound): number {
    if (this.#closed) return 0;
    const encoded = message.encodedFor(this.#encoder);
    const token = this.replies.take(message.message);
    if (token === undefined || !this.#listener.reply(this.#peer, token, encoded)) this.#listener.send(this.#peer, encoded);
    return 0;
  }

  /** Sends `message` (an err or bye: never an answer), then closes. */
  sendAndClose(message: ErrMsg | ByeMsg): void {
    if (this.#closed) return;
    this.#listener.send(this.#peer, this.#encoder.encode(message));
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // After what was sent to it (the listener cancels from a barrier).
    this.#listener.cancel(this.#peer);
  }

  /** The listener is closed: its methods throw from now on, and it has freed everything of this peer. */
  release(): void {
    this.#closed = true;
    this.#released = true;
    this.replies.clear();
  }
}

export class XpcServerTransport implements ServerTransport {
  readonly name = "xpc";
  readonly address: string;
  readonly #options: XpcServerOptions;
  readonly #peers = new Map<number, { link: XpcPeerLink; inbound: PeerInbound }>();
  #listener: NativeXpcListener | undefined;
  #broker: BrokerAttachment | undefined;
  #encoder: WireEncoder<NativeXpcObject> | undefined;
  #events: XpcPeerEvents<NativeXpcEvent> | undefined;
  #accepting = false;
  #terminating = false;
  #drainWaiters: Array<() => void> = [];

  constructor(options: XpcServerOptions) {
    this.#options = options;
    this.address = options.service ?? "(anonymous)";
  }

  async start(broker: BrokerAttachment): Promise<void> {
    if (this.#listener !== undefined) throw new XpcbusError("invalid_argument", "the XPC transport is already started");
    const native = this.#options.native ?? loadNative();
    const { XpcListener } = native;
    if (XpcListener === undefined) {
      throw new XpcbusError("transport_unavailable", "the XPC transport needs macOS; on Linux the broker listens on its Unix socket");
    }
    this.#encoder = xpcEncoder(native);
    this.#broker = broker;
    this.#events = new XpcPeerEvents<NativeXpcEvent>({
      peer: (event) => this.#onPeer(event),
      event: (event) => this.#onPeerEvent(event),
      dropped: (peer, reason, events) => this.#onDropped(peer, reason, events),
    });
    const listener = new XpcListener(this.#options.service, (event) => this.#onEvent(event), {
      codeSigningRequirement: this.#options.codeSigningRequirement,
    });
    this.#listener = listener;
    this.#accepting = true;
    listener.start();
  }

  /** For an anonymous listener: what a client passes to connect({ transport: "xpc", endpoint }). */
  endpoint(): NativeXpcObject {
    if (this.#listener === undefined) throw new XpcbusError("closed", "the XPC listener is not started");
    return this.#listener.endpoint();
  }

  async stopAccepting(): Promise<void> {
    // XPC cannot stop accepting without dropping its peers: new ones are turned away until close().
    this.#accepting = false;
  }

  drained(): Promise<void> {
    if (this.#peers.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  close(): void {
    const listener = this.#listener;
    this.#listener = undefined;
    this.#accepting = false;
    if (listener === undefined) return;
    // The listener cancels every peer (after what was sent to each) and
    // reports nothing more: the broker is told they ended here.
    listener.close();
    const peers = [...this.#peers.values()];
    this.#peers.clear();
    for (const { link, inbound } of peers) {
      link.release();
      inbound.ended();
    }
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  #onEvent(event: NativeXpcEvent): void {
    if (this.#listener === undefined) return;
    if (event.peer !== undefined) {
      this.#events?.push(event as PeerEvent);
      return;
    }
    if (event.kind === "invalid") {
      this.#options.logger.error({ service: this.#options.service, reason: event.reason }, "XPC listener invalidated");
    }
  }

  /** A new peer: attached, or refused (false). */
  #onPeer(event: PeerEvent): boolean {
    const listener = this.#listener!;
    const peer = event.peer;
    // Before anything else, so a refused peer is told why even while the broker stops accepting.
    const refusal = codeSigningRefusal(this.#options.codeSigningRequirement, event.codeSigning);
    if (refusal !== undefined) {
      this.#options.logger.warn({ identity: event.identity, reason: refusal.reason }, "XPC peer refused");
      this.#sendAndCancel(peer, { op: "err", code: refusal.code, reason: refusal.reason });
      return false;
    }
    if (!this.#accepting) {
      listener.cancel(peer);
      return false;
    }
    const native = event.identity;
    // Over XPC the path comes from the audit token (proc_pidpath_audittoken, macOS 11+), so it is
    // the connecting process's: the addon says so in exeVerified.
    const identity: PeerIdentity =
      native === undefined
        ? { pid: null, uid: null, gid: null, exe: null, exeVerified: false, method: "none" }
        : {
            pid: native.pid,
            uid: native.uid,
            gid: native.gid,
            exe: native.exe,
            exeVerified: native.exe !== null && native.exeVerified,
            method: native.method,
            teamId: native.teamId,
            auditToken: native.auditToken,
          };
    const link = new XpcPeerLink(listener, peer, identity, this.#encoder!);
    this.#peers.set(peer, { link, inbound: this.#broker!.attach(link) });
    return true;
  }

  /** An event of an attached peer, in its order. */
  #onPeerEvent(event: PeerEvent): void {
    const peer = event.peer;
    const entry = this.#peers.get(peer);
    if (entry === undefined) {
      // Closed with the listener while its events were being handed over: nothing is left to do.
      return;
    }
    const { link, inbound } = entry;
    switch (event.kind) {
      case "message": {
        if (event.message === undefined) {
          if (event.replyToken !== undefined) link.replies.begin({}, event.replyToken);
          link.replies.end();
          return;
        }
        link.replies.begin(event.message, event.replyToken);
        try {
          inbound.message(event.message, 0);
        } finally {
          link.replies.end();
        }
        return;
      }
      case "fault":
        inbound.fault("bad_frame", event.reason ?? "an unreadable XPC message");
        return;
      case "refused":
        // XPC refused a message of this peer: its code no longer satisfies the requirement.
        this.#options.logger.warn({ identity: link.identity, reason: CODE_SIGNING_LOST.reason }, "XPC peer refused");
        link.sendAndClose({ op: "err", code: CODE_SIGNING_LOST.code, reason: CODE_SIGNING_LOST.reason });
        return;
      case "flooded":
        this.#closeWith(link, "slow_consumer", event.reason ?? "the peer sent faster than the broker reads");
        return;
      case "terminating":
        this.#onTerminating(link);
        return;
      case "gone":
        this.#peers.delete(peer);
        link.release();
        inbound.ended();
        if (this.#peers.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
        return;
      default:
        return;
    }
  }

  /** Events of a peer never announced, dropped (the listener broke its order): it is cancelled. */
  #onDropped(peer: number, reason: string, events: readonly NativeXpcEvent[]): void {
    this.#options.logger.error({ peer, reason }, "XPC peer dropped before it was announced");
    const listener = this.#listener!;
    for (const event of events) if (event.replyToken !== undefined) listener.reply(peer, event.replyToken, null);
    listener.cancel(peer);
  }

  /** launchd will end the job; XPC says so to each peer, which will send nothing more. */
  #onTerminating(link: XpcPeerLink): void {
    if (!this.#terminating) {
      this.#terminating = true;
      this.#options.logger.info("launchd says termination is imminent: draining");
      this.#options.onDrain?.();
    }
    link.sendAndClose({ op: "bye", code: "shutdown", reason: "launchd is terminating the broker" });
  }

  #closeWith(link: XpcPeerLink, code: WireErrorCode, reason: string): void {
    this.#options.logger.warn({ identity: link.identity, code, reason }, "closing XPC peer");
    link.sendAndClose({ op: "err", code, reason });
  }

  /** For a peer the broker never saw: the err, then a cancel after it (so the peer reads it, not only INTERRUPTED). */
  #sendAndCancel(peer: number, err: ErrMsg): void {
    const listener = this.#listener!;
    listener.send(peer, this.#encoder!.encode(err));
    listener.cancel(peer);
  }
}
