// The XPC transport, broker side (macOS). A listener for a launchd mach
// service, or an anonymous one whose endpoint tests hand to clients in the
// same process (TN3113). Each peer connection becomes a PeerLink; messages
// arrive as maps (the value tree, converted natively) and leave as XPC
// dictionaries encoded once per publish. Replies to `req` go back through
// xpc_dictionary_create_reply, as XPC clients expect. The native listener
// decides nothing: it reports each peer with its identity and what the
// code-signing check found, and the refusal is made here (policy.ts,
// codeSigningRefusal; docs/PROTOCOL.md §14).

import type { Logger } from "pino";
import type { BrokerMsg, ErrMsg } from "../../protocol/index.js";
import { XpcbusError } from "../../protocol/index.js";
import { loadNative, type NativeAddon, type NativeXpcEvent, type NativeXpcListener, type NativeXpcObject } from "../../native/index.js";
import type { Outbound, PeerIdentity, PeerInbound, PeerLink, WireEncoder } from "../core/peer-link.js";
import { CODE_SIGNING_LOST, codeSigningRefusal, type CodeSigningRefusal } from "../core/policy.js";
import type { BrokerAttachment, ServerTransport } from "./server-transport.js";

/** The part of the addon this transport uses. */
export type XpcNative = Pick<NativeAddon, "XpcListener" | "xpcEncode">;

export interface XpcServerOptions {
  /** Mach service name (from the launchd job's MachServices), or null for an anonymous listener. */
  service: string | null;
  /** A code-signing requirement every peer must satisfy (checked at connect; enforced by XPC on macOS 12+). */
  codeSigningRequirement?: string;
  logger: Logger;
  /** Called when launchd says the job will be terminated (XPC_ERROR_TERMINATION_IMMINENT). */
  onDrain?: () => void;
  /**
   * The addon's XPC half; loadNative()'s by default. Tests give an object
   * with a fake XpcListener here, to drive this transport's logic on Linux.
   */
  native?: XpcNative;
}

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
  /** Reply contexts of `req` messages, by op id, until the broker answers them. */
  readonly replyTokens = new Map<number, number>();
  readonly #listener: NativeXpcListener;
  readonly #peer: number;
  readonly #encoder: WireEncoder<NativeXpcObject>;
  #closed = false;

  constructor(listener: NativeXpcListener, peer: number, identity: PeerIdentity, encoder: WireEncoder<NativeXpcObject>) {
    this.#listener = listener;
    this.#peer = peer;
    this.identity = identity;
    this.#encoder = encoder;
  }

  send(message: Outbound): number {
    if (this.#closed) return 0;
    const encoded = message.encodedFor(this.#encoder);
    const m = message.message;
    const id = m.op === "ok" || m.op === "err" ? m.id : undefined;
    const token = id === undefined ? undefined : this.replyTokens.get(id);
    if (id !== undefined && token !== undefined) {
      this.replyTokens.delete(id);
      this.#listener.reply(this.#peer, token, encoded);
    } else {
      this.#listener.send(this.#peer, encoded);
    }
    return 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.cancel(this.#peer);
  }
}

export class XpcServerTransport implements ServerTransport {
  readonly name = "xpc";
  readonly address: string;
  readonly #options: XpcServerOptions;
  readonly #peers = new Map<number, { link: XpcPeerLink; inbound: PeerInbound }>();
  #listener: NativeXpcListener | undefined;
  #accepting = false;
  #drainWaiters: Array<() => void> = [];

  constructor(options: XpcServerOptions) {
    this.#options = options;
    this.address = options.service ?? "(anonymous)";
  }

  async start(broker: BrokerAttachment): Promise<void> {
    const native = this.#options.native ?? loadNative();
    const { XpcListener } = native;
    if (XpcListener === undefined) {
      throw new XpcbusError("transport_unavailable", "the XPC transport needs macOS; on Linux the broker listens on its Unix socket");
    }
    const encoder = xpcEncoder(native);
    const listener = new XpcListener(this.#options.service, (event) => this.#onEvent(event, broker, encoder), {
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
    this.#listener?.close();
    this.#listener = undefined;
  }

  #onEvent(event: NativeXpcEvent, broker: BrokerAttachment, encoder: WireEncoder<NativeXpcObject>): void {
    const log = this.#options.logger;
    const listener = this.#listener;
    if (listener === undefined) return;
    switch (event.kind) {
      case "peer": {
        const peer = event.peer as number;
        // Before anything else, so a refused peer is told why even while the broker stops accepting.
        const refusal = codeSigningRefusal(this.#options.codeSigningRequirement, event.codeSigning);
        if (refusal !== undefined) {
          this.#refuse(listener, encoder, peer, refusal, event.identity);
          return;
        }
        if (!this.#accepting) {
          listener.cancel(peer);
          return;
        }
        const native = event.identity;
        // Over XPC the path comes from the audit token (proc_pidpath_audittoken, macOS 11+; the
        // deployment target is 13), so it is the connecting process's: the addon says so in exeVerified.
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
        const link = new XpcPeerLink(listener, peer, identity, encoder);
        this.#peers.set(peer, { link, inbound: broker.attach(link) });
        return;
      }
      case "message": {
        const entry = this.#peers.get(event.peer as number);
        const map = event.message;
        if (entry === undefined || map === undefined) return;
        if (event.replyToken !== undefined && typeof map["id"] === "number") entry.link.replyTokens.set(map["id"], event.replyToken);
        entry.inbound.message(map, 0);
        return;
      }
      case "fault":
        this.#peers.get(event.peer as number)?.inbound.fault("bad_frame", event.reason ?? "an unreadable XPC message");
        return;
      case "gone": {
        const entry = this.#peers.get(event.peer as number);
        if (entry === undefined) return;
        this.#peers.delete(event.peer as number);
        entry.inbound.ended();
        if (this.#peers.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
        return;
      }
      case "refused": {
        // XPC refused a message of this peer: its code no longer satisfies the requirement.
        const peer = event.peer as number;
        this.#refuse(listener, encoder, peer, CODE_SIGNING_LOST, this.#peers.get(peer)?.link.identity);
        return;
      }
      case "drain":
        log.info("launchd says termination is imminent: draining");
        this.#options.onDrain?.();
        return;
      case "invalid":
        log.error({ service: this.#options.service, reason: event.reason }, "XPC listener invalidated");
        return;
      default:
        return;
    }
  }

  /** Tells the peer why with an `err` (no id), then closes it: the one refusal by code signature. */
  #refuse(listener: NativeXpcListener, encoder: WireEncoder<NativeXpcObject>, peer: number, refusal: CodeSigningRefusal, identity: unknown): void {
    this.#options.logger.warn({ identity, reason: refusal.reason }, "XPC peer refused");
    const err: ErrMsg = { op: "err", code: refusal.code, reason: refusal.reason };
    listener.send(peer, encoder.encode(err));
    // Cancelled after what was sent to it, so it reads the err rather than only seeing INTERRUPTED.
    const entry = this.#peers.get(peer);
    if (entry !== undefined) entry.link.close();
    else listener.cancel(peer);
  }
}
