// One Session per connected peer: its identity, subscriptions, requests and
// counters, and the gate every inbound map passes through (hello first,
// fields checked) before the broker acts on it. The tables are the
// session's own: the broker and the request table change them only through
// the methods below, so what a peer holds is always what it is counted for.

import type { Logger } from "pino";
import type { WireErrorCode, BrokerMsg, ClientOp } from "../../protocol/index.js";
import { PROTOCOL_VERSION } from "../../protocol/index.js";
import { parseClientOp } from "./op-parser.js";
import type { BrokerLimitOptions } from "./options.js";
import { Outbound, type PeerInbound, type PeerLink } from "./peer-link.js";
import type { IndexedSubscription } from "./subject-index.js";
import type { Grant } from "./policy.js";

/**
 * One `sub` as the broker routes it: what the SubjectIndex stores. (Not the
 * SDK's Subscription, which is the client's handle on the messages.)
 */
export class SubscriptionEntry implements IndexedSubscription<Session> {
  constructor(
    readonly owner: Session,
    readonly sid: number,
    readonly subject: string,
    readonly queue: string | undefined,
  ) {}
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
  /** What the policy lets this peer do, decided from its identity at connect (and again on a policy reload). */
  grant: Grant | undefined;
  readonly #subscriptions = new Map<number, SubscriptionEntry>();
  /** Inboxes of requests this peer made that await a reply. */
  readonly #requesting = new Set<string>();
  /** Inboxes of requests handed to this peer to answer. */
  readonly #answering = new Set<string>();
  /** Notification names this peer watches. */
  readonly #watching = new Set<string>();
  #name = "";
  #msgsIn = 0;
  #bytesIn = 0;
  #msgsOut = 0;
  #dropped = 0;
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

  /** The peer asked (`hello.noEcho`) never to be delivered its own publishes. */
  noEcho = false;

  /** The name the peer gave in `hello` ("" if none). */
  get name(): string {
    return this.#name;
  }

  // ---- counters (status) ----

  get msgsIn(): number {
    return this.#msgsIn;
  }

  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Messages handed to the link for this peer (deliveries, not answers). */
  get msgsOut(): number {
    return this.#msgsOut;
  }

  /** Messages the link dropped because the peer read too slowly. */
  get dropped(): number {
    return this.#dropped;
  }

  countOut(): void {
    this.#msgsOut++;
  }

  noteDropped(count: number): void {
    this.#dropped += count;
  }

  // ---- subscriptions ----

  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  subscription(sid: number): SubscriptionEntry | undefined {
    return this.#subscriptions.get(sid);
  }

  /** In the order they were made. */
  subscriptions(): IterableIterator<SubscriptionEntry> {
    return this.#subscriptions.values();
  }

  addSubscription(entry: SubscriptionEntry): void {
    this.#subscriptions.set(entry.sid, entry);
  }

  /** Removes and returns the subscription `sid`, if there is one. */
  removeSubscription(sid: number): SubscriptionEntry | undefined {
    const entry = this.#subscriptions.get(sid);
    if (entry !== undefined) this.#subscriptions.delete(sid);
    return entry;
  }

  /** Removes and returns every subscription (the peer is gone). */
  takeSubscriptions(): SubscriptionEntry[] {
    const all = [...this.#subscriptions.values()];
    this.#subscriptions.clear();
    return all;
  }

  // ---- requests (kept by request-table.ts) ----

  /** Requests this peer made that await a reply. */
  get requestingCount(): number {
    return this.#requesting.size;
  }

  addRequesting(inbox: string): void {
    this.#requesting.add(inbox);
  }

  removeRequesting(inbox: string): void {
    this.#requesting.delete(inbox);
  }

  /** Inboxes of the requests this peer awaits replies to (a copy). */
  requestingInboxes(): string[] {
    return [...this.#requesting];
  }

  addAnswering(inbox: string): void {
    this.#answering.add(inbox);
  }

  removeAnswering(inbox: string): void {
    this.#answering.delete(inbox);
  }

  /** Inboxes of the requests this peer was given to answer (a copy). */
  answeringInboxes(): string[] {
    return [...this.#answering];
  }

  // ---- watches ----

  get watchCount(): number {
    return this.#watching.size;
  }

  isWatching(name: string): boolean {
    return this.#watching.has(name);
  }

  addWatch(name: string): void {
    this.#watching.add(name);
  }

  /** The names this peer watches (a copy). */
  watchedNames(): string[] {
    return [...this.#watching];
  }

  /** Whether the peer watched `name` (it no longer does). */
  removeWatch(name: string): boolean {
    return this.#watching.delete(name);
  }

  /** Removes and returns every watched name (the peer is gone). */
  takeWatches(): string[] {
    const all = [...this.#watching];
    this.#watching.clear();
    return all;
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
    this.#msgsIn++;
    this.#bytesIn += wireBytes;
    const parsed = parseClientOp(map, this.#host.limits);
    if ("fault" in parsed) {
      const { code, reason, id, subject } = parsed.fault;
      this.error(code, reason, id, subject);
      return;
    }
    const op = parsed.op;
    if (op.op === "hello") {
      this.#hello(op.v, op.name, op.noEcho === true, op.id);
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

  #hello(version: number, name: string | undefined, noEcho: boolean, id: number | undefined): void {
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
    this.#name = name ?? "";
    this.noEcho = noEcho;
    this.log.info({ peerName: this.#name, noEcho }, "peer said hello");
    this.#host.welcome(this, id);
  }
}
