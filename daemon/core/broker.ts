// The broker core: peers, subscriptions, routing, retained values, requests.
// It opens no socket and touches no file: transports attach PeerLinks to it,
// and the daemon hands it a durable SequenceFloor. The same core serves the
// Unix socket and XPC.

import pino, { type Logger } from "pino";
import type {
  BrokerStatus,
  ClientOp,
  DeliverMsg,
  GetOp,
  PeerStatus,
  PostOp,
  PubOp,
  ReqOp,
  StateOp,
  SubOp,
  UnsubOp,
  UnwatchOp,
  WatchOp,
} from "../../protocol/index.js";
import { postingProblem } from "../../protocol/index.js";
import { INBOX_PREFIX, PROTOCOL_VERSION } from "../../protocol/index.js";
import { subjectMatches, subjectProblem } from "../../protocol/index.js";
import type { Notifier } from "./notifier.js";
import { describeExe, evaluate, permits, type CodeSigningCheck, type Policy, type Right } from "./policy.js";
import { parseLimits, type BrokerLimitOptions } from "./options.js";
import { Outbound, type PeerInbound, type PeerLink } from "./peer-link.js";
import { RequestTable } from "./request-table.js";
import { RetainedStore } from "./retained-store.js";
import { Sequences, volatileSequenceFloor, type SequenceFloor } from "./sequences.js";
import { Session, Subscription, type SessionHost } from "./session.js";
import { SubjectIndex } from "./subject-index.js";
import { SERVER_VERSION } from "./version.js";

/** Told of every publish after it is routed; the notifier (notify(3) posts) plugs in here. */
export interface PublishObserver {
  published(subject: string, seq: number): void;
}

export interface BrokerOptions {
  limits?: Partial<BrokerLimitOptions>;
  /** Where sequence numbers resume after a restart; volatile (from 0) when omitted. */
  sequenceFloor?: SequenceFloor;
  logger?: Logger;
  observers?: PublishObserver[];
  /** Who may connect and do what; without one, every peer may do everything (the transport's access is the only gate). */
  policy?: Policy;
  /** macOS: how the policy checks `codeSigning` rules against a peer's audit token. */
  codeSigningCheck?: CodeSigningCheck;
  /** Figures about the hosting process for `status` (rss, heap, open fds); the core reads none itself. */
  describeProcess?: () => Record<string, number>;
  /** Posts notifications on publish and serves the notify ops; without one they answer `notify_unavailable`. */
  notifier?: Notifier;
  /**
   * A peer with more than maxOutboundBytesPerPeer waiting: "drop" its oldest
   * messages and tell it how many (a `dropped` frame), or "disconnect" it with
   * `err slow_consumer`. Default "drop"; a transport that cannot drop disconnects.
   */
  slowConsumer?: SlowConsumerPolicy;
}

export type SlowConsumerPolicy = "drop" | "disconnect";

/**
 * Subscriptions listed per peer in `status` (the count is always exact), and
 * subjects listed: keeps a status answer of a full broker (1000 peers) within
 * a few MiB, under every client's frame limit.
 */
export const STATUS_MAX_SUBSCRIPTIONS_LISTED = 64;
export const STATUS_MAX_SUBJECTS_LISTED = 1000;

/** cbor-x writes numbers above 2^32 as floats; a BigInt goes out as a CBOR unsigned integer. */
function wireUint(value: number): number | bigint {
  return value > 0xffff_ffff ? BigInt(value) : value;
}

export class Broker implements SessionHost {
  readonly limits: BrokerLimitOptions;
  readonly startedAt = new Date();
  readonly #log: Logger;
  readonly #sessions = new Map<number, Session>();
  readonly #index = new SubjectIndex<Session, Subscription>();
  readonly #retained: RetainedStore;
  readonly #sequences: Sequences;
  readonly #requests = new RequestTable();
  readonly #observers: PublishObserver[];
  readonly #notifier: Notifier | undefined;
  readonly #slowConsumer: SlowConsumerPolicy;
  readonly #describeProcess: (() => Record<string, number>) | undefined;
  #policy: Policy | undefined;
  readonly #codeSigningCheck: CodeSigningCheck | undefined;
  #nextPeerId = 1;
  #closing = false;

  constructor(options: BrokerOptions = {}) {
    this.limits = parseLimits(options.limits);
    this.#log = options.logger ?? pino({ level: "silent" });
    this.#retained = new RetainedStore(this.limits.maxRetainedEntries, this.limits.maxRetainedBytes);
    this.#sequences = new Sequences(options.sequenceFloor ?? volatileSequenceFloor(), this.limits.maxTrackedSubjects);
    this.#observers = options.observers ?? [];
    this.#notifier = options.notifier;
    this.#slowConsumer = options.slowConsumer ?? "drop";
    this.#describeProcess = options.describeProcess;
    this.#policy = options.policy;
    this.#codeSigningCheck = options.codeSigningCheck;
  }

  get peerCount(): number {
    return this.#sessions.size;
  }

  /** A transport accepted a connection: returns where the transport delivers what it reads. */
  attach(link: PeerLink): PeerInbound {
    const id = this.#nextPeerId++;
    const { pid, uid, gid, exe, exeVerified, method } = link.identity;
    const log = this.#log.child({ peer: id, transport: link.transport, peerPid: pid, peerUid: uid, peerGid: gid, peerExe: exe, peerExeVerified: exeVerified, identity: method });
    const session = new Session(id, link, this, log);
    if (this.#closing) {
      session.fail("shutdown", "the broker is shutting down");
      return session;
    }
    if (this.#policy !== undefined) {
      session.grant = evaluate(this.#policy, link.identity, this.#codeSigningCheck);
      if (!session.grant.allowed) {
        log.warn({ rule: session.grant.rule, reason: session.grant.reason }, "connection denied by policy");
        session.fail("connection_denied", session.grant.reason);
        return session;
      }
    }
    if (uid !== null && this.#countUid(uid) >= this.limits.maxPeersPerUid) {
      log.warn({ maxPeersPerUid: this.limits.maxPeersPerUid }, "peer refused: too many peers for its uid");
      session.fail("too_many_peers", `uid ${uid} already has the maximum of ${this.limits.maxPeersPerUid} connections`);
      return session;
    }
    if (this.#sessions.size >= this.limits.maxPeers) {
      log.warn({ maxPeers: this.limits.maxPeers }, "peer refused: too many peers");
      session.fail("too_many_peers", `the broker already serves its maximum of ${this.limits.maxPeers} peers`);
      return session;
    }
    this.#sessions.set(id, session);
    log.debug("peer connected");
    return session;
  }

  #countUid(uid: number): number {
    let count = 0;
    for (const s of this.#sessions.values()) if (s.link.identity.uid === uid) count++;
    return count;
  }

  welcome(session: Session, id: number | undefined): void {
    const l = this.limits;
    session.send({
      op: "welcome",
      v: PROTOCOL_VERSION,
      peer: session.id,
      server: SERVER_VERSION,
      limits: {
        maxFrameBytes: l.maxFrameBytes,
        maxPayloadBytes: l.maxPayloadBytes,
        maxSubjectBytes: l.maxSubjectBytes,
        maxSubjectTokens: l.maxSubjectTokens,
        maxSubscriptionsPerPeer: l.maxSubscriptionsPerPeer,
        maxPendingRequestsPerPeer: l.maxPendingRequestsPerPeer,
        maxRequestTimeoutMs: l.maxRequestTimeoutMs,
        maxWatchesPerPeer: l.maxWatchesPerPeer,
      },
      ...(this.#notifier === undefined ? {} : { notify: this.#notifier.info }),
      ...(id === undefined ? {} : { id }),
    });
  }

  handle(session: Session, op: ClientOp): void {
    switch (op.op) {
      case "sub":
        return this.#subscribe(session, op);
      case "unsub":
        return this.#unsubscribe(session, op);
      case "pub":
        return this.#publish(session, op);
      case "get":
        return this.#get(session, op);
      case "req":
        return this.#request(session, op);
      case "ping":
        session.send({ op: "pong", ...(op.id === undefined ? {} : { id: op.id }) });
        return;
      case "status":
        session.send({ op: "ok", id: op.id, status: this.status() });
        return;
      case "watch":
        return this.#watch(session, op);
      case "unwatch":
        return this.#unwatch(session, op);
      case "post":
        return this.#post(session, op);
      case "state":
        return this.#state(session, op);
      case "hello":
        return; // handled by the session
    }
  }

  /** A peer's connection is gone: drop it and everything it held, at once. */
  detach(session: Session): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    for (const sub of session.subscriptions.values()) this.#index.remove(sub);
    session.subscriptions.clear();
    for (const name of session.watching) this.#notifier?.unwatch(name);
    session.watching.clear();
    this.#requests.dropPeer(session);
    session.log.debug("peer disconnected");
  }

  status(): BrokerStatus {
    const peers: PeerStatus[] = [];
    const subjects = this.#index.patterns();
    for (const s of this.#sessions.values()) {
      const { pid, uid, gid, exe, exeVerified, method } = s.link.identity;
      peers.push({
        id: s.id,
        name: s.name,
        transport: s.link.transport,
        pid,
        uid,
        gid,
        exe,
        exeVerified: exeVerified === true,
        identityMethod: method,
        connectedAt: s.connectedAt.toISOString(),
        subscriptionCount: s.subscriptions.size,
        subscriptions: [...s.subscriptions.values()].slice(0, STATUS_MAX_SUBSCRIPTIONS_LISTED).map((sub) => ({
          sid: sub.sid,
          subject: sub.subject,
          ...(sub.queue === undefined ? {} : { queue: sub.queue }),
        })),
        msgsIn: wireUint(s.msgsIn) as number,
        msgsOut: wireUint(s.msgsOut) as number,
        bytesIn: wireUint(s.bytesIn) as number,
        bytesOut: wireUint(s.link.bytesSent) as number,
        dropped: wireUint(s.dropped) as number,
      });
    }
    return {
      server: SERVER_VERSION,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      peers,
      subjectCount: subjects.length,
      subjects: subjects.slice(0, STATUS_MAX_SUBJECTS_LISTED),
      retained: {
        count: this.#retained.count,
        bytes: wireUint(this.#retained.bytes) as number,
        maxCount: this.#retained.maxEntries,
        maxBytes: wireUint(this.#retained.maxBytes) as number,
      },
      pendingRequests: this.#requests.size,
      ...(this.#describeProcess === undefined ? {} : { process: this.#describeProcess() }),
    };
  }

  /**
   * Replaces the policy at once: every connected peer is judged again; those
   * no longer admitted are told why and closed, the others get their new rights.
   */
  setPolicy(policy: Policy): void {
    this.#policy = policy;
    for (const session of [...this.#sessions.values()]) {
      session.grant = evaluate(policy, session.link.identity, this.#codeSigningCheck);
      if (!session.grant.allowed) {
        session.log.warn({ rule: session.grant.rule, reason: session.grant.reason }, "connection denied by the reloaded policy");
        session.fail("connection_denied", session.grant.reason);
      }
    }
  }

  /** Whether the policy lets `session` use `right` on `subject`; if not, tells it why (the connection stays). */
  #allowed(session: Session, right: Right, subject: string, id: number | undefined): boolean {
    const grant = session.grant;
    if (grant === undefined || permits(grant, right, subject)) return true;
    const reason = `rule "${grant.rule}" does not allow ${right} on "${subject}" for uid ${session.link.identity.uid ?? "?"} (exe ${describeExe(session.link.identity)})`;
    session.log.warn({ right, subject, rule: grant.rule }, "operation denied by policy");
    session.error("permission_denied", reason, id, subject);
    return false;
  }

  /** Changes the log level of the broker and of every peer's logger (pino children keep their own level). */
  setLogLevel(level: string): void {
    this.#log.level = level;
    for (const session of this.#sessions.values()) session.log.level = level;
  }

  /** Says bye to every peer and closes them; the broker accepts no one afterwards. */
  close(reason = "the broker is shutting down"): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const session of [...this.#sessions.values()]) {
      session.send({ op: "bye", code: "shutdown", reason });
      session.link.close();
      session.ended();
    }
    this.#requests.clear();
  }

  // ---- ops ----

  #subscribe(session: Session, op: SubOp): void {
    if (!this.#allowed(session, "subscribe", op.subject, op.id)) return;
    if (session.subscriptions.has(op.sid)) {
      session.error("duplicate_sid", `subscription id ${op.sid} is already in use on this connection`, op.id, op.subject);
      return;
    }
    if (session.subscriptions.size >= this.limits.maxSubscriptionsPerPeer) {
      session.error(
        "too_many_subscriptions",
        `a peer may hold at most ${this.limits.maxSubscriptionsPerPeer} subscriptions`,
        op.id,
        op.subject,
      );
      return;
    }
    const sub = new Subscription(session, op.sid, op.subject, op.queue);
    session.subscriptions.set(op.sid, sub);
    this.#index.add(sub);
    session.log.debug({ sid: op.sid, subject: op.subject, queue: op.queue }, "subscribed");
    if (op.replay === true) {
      for (const value of this.#retained.matching((subject) => subjectMatches(op.subject, subject))) {
        this.#deliver(
          session,
          new Outbound({
            op: "msg",
            subject: value.subject,
            p: value.payload,
            seq: wireUint(value.seq) as number,
            sid: op.sid,
            ...(value.enc === undefined ? {} : { enc: value.enc }),
          }),
        );
      }
    }
    if (op.id !== undefined) session.send({ op: "ok", id: op.id });
  }

  #unsubscribe(session: Session, op: UnsubOp): void {
    const sub = session.subscriptions.get(op.sid);
    if (sub === undefined) {
      session.error("unknown_sid", `no subscription with id ${op.sid} on this connection`, op.id);
      return;
    }
    session.subscriptions.delete(op.sid);
    this.#index.remove(sub);
    if (op.id !== undefined) session.send({ op: "ok", id: op.id });
  }

  #publish(session: Session, op: PubOp): void {
    // A reply to a request this peer was given needs no right of its own.
    if (!op.subject.startsWith(INBOX_PREFIX) && !this.#allowed(session, "publish", op.subject, op.id)) return;
    if (op.subject.startsWith(INBOX_PREFIX)) {
      const delivered = this.#requests.reply(session, op.subject, op.p, op.enc);
      if (op.id !== undefined) session.send({ op: "ok", id: op.id, seq: 0, delivered });
      return;
    }
    const seq = this.#sequences.next(op.subject);
    if (op.retain === true) this.#retained.put({ subject: op.subject, payload: op.p, enc: op.enc, seq });
    const match = this.#index.match(op.subject);
    if (match.plainOwners.length > 0 || match.groups.length > 0) {
      const msg: DeliverMsg = { op: "msg", subject: op.subject, p: op.p, seq: wireUint(seq) as number };
      if (op.enc !== undefined) msg.enc = op.enc;
      if (op.reply !== undefined) msg.reply = op.reply;
      if (match.plainOwners.length > 0) {
        // One encoding for every plain subscriber: the client dispatches to its own matching subscriptions.
        const shared = new Outbound(msg);
        for (const owner of match.plainOwners) this.#deliver(owner, shared);
      }
      for (const group of match.groups) {
        const member = this.#index.pickMember(op.subject, group);
        this.#deliver(member.owner, new Outbound({ ...msg, queue: group.name }));
      }
    }
    this.#notifier?.published(op.subject, seq);
    for (const observer of this.#observers) observer.published(op.subject, seq);
    if (op.id !== undefined) session.send({ op: "ok", id: op.id, seq: wireUint(seq) });
  }

  #get(session: Session, op: GetOp): void {
    // Reading a retained value is reading the subject: the subscribe right.
    if (!this.#allowed(session, "subscribe", op.subject, op.id)) return;
    const value = this.#retained.get(op.subject);
    if (value === undefined) {
      session.send({ op: "ok", id: op.id, found: false, subject: op.subject, seq: 0 });
      return;
    }
    session.send({
      op: "ok",
      id: op.id,
      found: true,
      subject: op.subject,
      seq: wireUint(value.seq),
      p: value.payload,
      ...(value.enc === undefined ? {} : { enc: value.enc }),
    });
  }

  #request(session: Session, op: ReqOp): void {
    if (!this.#allowed(session, "request", op.subject, op.id)) return;
    if (session.requesting.size >= this.limits.maxPendingRequestsPerPeer) {
      session.error(
        "too_many_requests",
        `a peer may have at most ${this.limits.maxPendingRequestsPerPeer} requests awaiting replies`,
        op.id,
        op.subject,
      );
      return;
    }
    // Queue groups are where responders live; a plain subscriber (a monitor on
    // ">", say) is chosen only when no group listens.
    const match = this.#index.match(op.subject);
    const group = match.groups[0];
    const target = group !== undefined ? this.#index.pickMember(op.subject, group) : match.firstPlain;
    if (target === undefined) {
      session.error("no_responders", `nobody is subscribed to "${op.subject}"`, op.id, op.subject);
      return;
    }
    const timeoutMs = op.timeout ?? this.limits.defaultRequestTimeoutMs;
    const inbox = this.#requests.open(session, target.owner, op.id, op.subject, timeoutMs);
    const msg: DeliverMsg = { op: "msg", subject: op.subject, p: op.p, seq: 0, reply: inbox, sid: target.sid };
    if (op.enc !== undefined) msg.enc = op.enc;
    if (target.queue !== undefined) msg.queue = target.queue;
    this.#deliver(target.owner, new Outbound(msg));
  }

  // ---- notifications ----

  #notifierFor(session: Session, id: number | undefined): Notifier | undefined {
    if (this.#notifier === undefined) session.error("notify_unavailable", "this broker posts no notifications", id);
    return this.#notifier;
  }

  /** The state a subject's name starts from: the subject's current sequence number. */
  #initialState(name: string): bigint {
    const prefix = `${this.#notifier?.info.prefix}.`;
    if (!name.startsWith(prefix)) return 0n;
    const subject = name.slice(prefix.length);
    return subjectProblem(subject, false) === undefined ? BigInt(this.#sequences.current(subject)) : 0n;
  }

  /** The subject a notification name stands for under this broker's prefix, or ">" (all) for any other name. */
  #nameSubject(name: string): string {
    const prefix = `${this.#notifier?.info.prefix}.`;
    const subject = name.startsWith(prefix) ? name.slice(prefix.length) : undefined;
    return subject !== undefined && subjectProblem(subject, false) === undefined ? subject : ">";
  }

  #watch(session: Session, op: WatchOp): void {
    const notifier = this.#notifierFor(session, op.id);
    if (notifier === undefined) return;
    if (!this.#allowed(session, "watch", this.#nameSubject(op.name), op.id)) return;
    const already = session.watching.has(op.name);
    if (!already && session.watching.size >= this.limits.maxWatchesPerPeer) {
      session.error("too_many_watches", `a peer may watch at most ${this.limits.maxWatchesPerPeer} names`, op.id);
      return;
    }
    const registered = notifier.watch(op.name, this.#initialState(op.name));
    if ("code" in registered) {
      session.error(registered.code, registered.reason, op.id);
      return;
    }
    // Watching a name twice from one connection counts once.
    if (already) notifier.unwatch(op.name);
    else session.watching.add(op.name);
    session.send({ op: "ok", id: op.id, name: op.name, ...registered });
  }

  #unwatch(session: Session, op: UnwatchOp): void {
    const notifier = this.#notifierFor(session, op.id);
    if (notifier === undefined) return;
    if (!session.watching.delete(op.name)) {
      session.error("not_watching", `this connection does not watch "${op.name}"`, op.id);
      return;
    }
    notifier.unwatch(op.name);
    if (op.id !== undefined) session.send({ op: "ok", id: op.id });
  }

  #post(session: Session, op: PostOp): void {
    const notifier = this.#notifierFor(session, op.id);
    if (notifier === undefined) return;
    // Names outside the subject space: only a peer that may publish everything may post them.
    if (!this.#allowed(session, "publish", ">", op.id)) return;
    const problem = postingProblem(op.name, session.link.identity.uid, notifier.info.prefix);
    if (problem !== undefined) {
      session.log.info({ notifyName: op.name, reason: problem }, "post refused");
      session.error("reserved_name", problem, op.id);
      return;
    }
    notifier.post(op.name, op.state);
    if (op.id !== undefined) session.send({ op: "ok", id: op.id });
  }

  #state(session: Session, op: StateOp): void {
    const notifier = this.#notifierFor(session, op.id);
    if (notifier === undefined) return;
    const known = notifier.state(op.name);
    const derived = this.#initialState(op.name);
    session.send({ op: "ok", id: op.id, name: op.name, state: known !== undefined && known > derived ? known : derived });
  }

  #deliver(session: Session, message: Outbound): void {
    if (session.isClosed) return;
    const queued = session.link.send(message);
    session.msgsOut++;
    const limit = this.limits.maxOutboundBytesPerPeer;
    if (queued <= limit) return;
    if (this.#slowConsumer === "drop" && session.link.dropOldest !== undefined) {
      // Under "drop" a peer is never cut off for being slow: it loses its
      // oldest messages and is told so, once, by the link (§9.7).
      const dropped = session.link.dropOldest(queued - limit);
      if (session.dropped === 0 && dropped > 0) session.log.warn({ limit }, "slow consumer: dropping its oldest messages");
      session.dropped += dropped;
      return;
    }
    session.fail("slow_consumer", `${queued} bytes of messages were waiting to be read, over the limit of ${limit}`);
  }
}
