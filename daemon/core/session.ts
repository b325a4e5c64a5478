// One Session per connected peer: its identity, subscriptions, requests and
// counters, and the gate every inbound map passes through (hello first,
// fields checked) before the broker acts on it.

import type { Logger } from "pino";
import type { WireErrorCode } from "../../client-sdk/index.js";
import type { BrokerMsg, ClientOp } from "../../protocol/index.js";
import { PROTOCOL_VERSION } from "../../protocol/index.js";
import { parseClientOp } from "./op-parser.js";
import type { BrokerLimitOptions } from "./options.js";
import { Outbound, type PeerInbound, type PeerLink } from "./peer-link.js";
import type { IndexedSubscription } from "./subject-index.js";
import type { Grant } from "./policy.js";

export class Subscription implements IndexedSubscription<Session> {
  constructor(
    readonly owner: Session,
    readonly sid: number,
    readonly subject: string,
    readonly queue: string | undefined,
  ) {}
}

/** A request waiting for its reply (see request-table.ts). */
export interface PendingRequestRef {
  readonly inbox: string;
}

/** What a Session needs from the broker: the op handlers and the cleanup on close. */
export interface SessionHost {
  readonly limits: BrokerLimitOptions;
  handle(session: Session, op: ClientOp): void;
  welcome(session: Session, id: number | undefined): void;
  detach(session: Session): void;
}

export class Session implements PeerInbound {
  readonly id: number;
  readonly link: PeerLink;
  readonly log: Logger;
  readonly connectedAt = new Date();
  readonly subscriptions = new Map<number, Subscription>();
  /** Requests this peer made that await a reply, by inbox. */
  readonly requesting = new Map<string, PendingRequestRef>();
  /** Requests handed to this peer to answer, by inbox. */
  readonly answering = new Map<string, PendingRequestRef>();
  /** Notification names this peer watches. */
  readonly watching = new Set<string>();
  /** What the policy lets this peer do, decided from its identity at connect (and again on a policy reload). */
  grant: Grant | undefined;
  name = "";
  msgsIn = 0;
  bytesIn = 0;
  msgsOut = 0;
  dropped = 0;
  #greeted = false;
  #closed = false;
  readonly #host: SessionHost;
  #helloTimer: NodeJS.Timeout | undefined;

  constructor(id: number, link: PeerLink, host: SessionHost, log: Logger) {
    this.id = id;
    this.link = link;
    this.#host = host;
    this.log = log;
    this.#helloTimer = setTimeout(() => {
      this.fail("hello_timeout", `no hello within ${host.limits.helloTimeoutMs} ms`);
    }, host.limits.helloTimeoutMs);
    this.#helloTimer.unref();
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  get greeted(): boolean {
    return this.#greeted;
  }

  /** Sends one message to this peer alone. Returns the bytes waiting towards it. */
  send(message: BrokerMsg): number {
    if (this.#closed) return 0;
    return this.link.send(new Outbound(message));
  }

  error(code: WireErrorCode, reason: string, id?: number, subject?: string): void {
    this.log.debug({ code, reason, id }, "err to peer");
    this.send({ op: "err", code, reason, ...(id === undefined ? {} : { id }), ...(subject === undefined ? {} : { subject }) });
  }

  /** Tells the peer why, then closes its connection. */
  fail(code: WireErrorCode, reason: string): void {
    if (this.#closed) return;
    this.log.info({ code, reason }, "closing peer");
    this.send({ op: "err", code, reason });
    this.link.close();
    this.ended();
  }

  // ---- PeerInbound ----

  message(map: Record<string, unknown>, wireBytes: number): void {
    if (this.#closed) return;
    this.msgsIn++;
    this.bytesIn += wireBytes;
    const parsed = parseClientOp(map, this.#host.limits);
    if ("fault" in parsed) {
      const { code, reason, id, subject } = parsed.fault;
      this.error(code, reason, id, subject);
      return;
    }
    const op = parsed.op;
    if (op.op === "hello") {
      this.#hello(op.v, op.name, op.id);
      return;
    }
    if (!this.#greeted) {
      this.error("hello_required", `send "hello" before "${op.op}"`, op.id);
      return;
    }
    this.#host.handle(this, op);
  }

  fault(code: "bad_frame" | "frame_too_large" | "truncated_frame", reason: string): void {
    this.log.warn({ code, reason }, "unreadable input from peer");
    this.fail(code, reason);
  }

  ended(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#helloTimer);
    this.#host.detach(this);
  }

  #hello(version: number, name: string | undefined, id: number | undefined): void {
    if (this.#greeted) {
      this.error("already_hello", "hello was already received on this connection", id);
      return;
    }
    if (version !== PROTOCOL_VERSION) {
      this.fail("unsupported_version", `protocol version ${version} is not supported; this broker speaks ${PROTOCOL_VERSION}`);
      return;
    }
    clearTimeout(this.#helloTimer);
    this.#greeted = true;
    this.name = name ?? "";
    this.log.info({ peerName: this.name }, "peer said hello");
    this.#host.welcome(this, id);
  }
}
