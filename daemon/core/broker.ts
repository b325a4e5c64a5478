// The broker core: peers come and go here. It admits them (policy, peer
// bounds), dispatches their ops to the handlers (./handlers/: subscribe,
// publish, request, notify, status), delivers to them under the
// slow-consumer policy, and drops everything a peer held when it leaves.
// It opens no socket and touches no file: transports attach PeerLinks to it,
// and the daemon hands it a durable SequenceFloor. The same core serves the
// Unix socket and XPC.

import pino, { type Logger } from "pino";
import type { BrokerStatus, ClientOp, NotifyInfo } from "../../protocol/index.js";
import { InvalidArgumentError, PROTOCOL_VERSION } from "../../protocol/index.js";
import * as handlers from "./handlers/index.js";
import type { DurableStore } from "./durable-store.js";
import type { Notifier } from "./notifier.js";
import { describeExe, evaluate, permits, type CodeSigningCheck, type Policy, type Right } from "./policy.js";
import { parseLimits, type BrokerLimitOptions } from "./options.js";
import type { Outbound, PeerInbound, PeerLink } from "./peer-link.js";
import { RequestTable } from "./request-table.js";
import { DurableTurn } from "./durable-turn.js";
import { History } from "./history.js";
import { RetainedStore } from "./retained-store.js";
import { Sequences, volatileSequenceFloor, type SequenceFloor } from "./sequences.js";
import { Session, type SessionHost, type SubscriptionEntry } from "./session.js";
import { SubjectIndex } from "./subject-index.js";
import { SERVER_VERSION } from "./version.js";

export interface BrokerOptions {
  limits?: Partial<BrokerLimitOptions>;
  /**
   * Where sequence numbers resume after a restart; volatile (from 0) when
   * omitted. With a `store`, the store's reservation is a second floor and
   * new reservations are written there (this one's reserve() is not called).
   */
  sequenceFloor?: SequenceFloor;
  /**
   * Where retained values, history and the sequence reservation are written
   * through, and read back from at start (core/durable-store.ts). Without
   * one, nothing outlives the process (`--store memory`).
   */
  store?: DurableStore;
  logger?: Logger;
  /**
   * The id of the process hosting the broker, reported as `pid` in `status`
   * (the daemon passes process.pid). The core reads nothing of its process
   * itself; an embedding that leaves this out reports 0, which no process has.
   */
  pid?: number;
  /**
   * The uid the broker runs as (the daemon passes process.getuid()): its own
   * apps share the whole retained space, other uids are held to the per-uid
   * quotas. Left out, every uid is held to them.
   */
  ownerUid?: number;
  /** Who may connect and do what; without one, every peer may do everything (the transport's access is the only gate). */
  policy?: Policy;
  /** macOS: how the policy checks `codeSigning` rules against a peer's audit token. */
  codeSigningCheck?: CodeSigningCheck;
  /** The NATS bridge's state for `status` (daemon/bridge/), when one runs. */
  bridgeStatus?: () => BrokerStatus["bridge"];
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
 * The notifier as the handlers see it. What it does outside any op (the post
 * after a publish, a leaving peer's unwatch) has nobody to answer: a failure
 * there is logged, never thrown out of the core, and a failure that repeats
 * is logged once until a post succeeds again. The notify ops catch their own
 * failures and answer them (handlers/notify.ts).
 */
function shielded(notifier: Notifier, log: Logger): Notifier {
  let failing = false;
  return {
    get info() {
      return notifier.info;
    },
    subjectOf: (name) => notifier.subjectOf(name),
    // Without join, every peer gets `info`; a join that throws leaves its peer without notifications (the broker logs it).
    join: (uid) => notifier.join?.(uid),
    leave(uid) {
      try {
        notifier.leave?.(uid);
      } catch (error) {
        log.warn({ err: error, uid }, "notifier failed to let a uid go");
      }
    },
    infoFor: (uid) => (notifier.infoFor === undefined ? notifier.info : notifier.infoFor(uid)),
    published(subject, seq) {
      try {
        notifier.published(subject, seq);
        failing = false;
      } catch (error) {
        if (!failing) log.warn({ err: error, subject, seq }, "publish posted no notification; the message itself was delivered");
        failing = true;
      }
    },
    watch: (name, initial, uid) => notifier.watch(name, initial, uid),
    unwatch(name, uid) {
      try {
        notifier.unwatch(name, uid);
      } catch (error) {
        log.warn({ err: error, notifyName: name }, "notifier failed to drop a watch");
      }
    },
    revoke(name, uid) {
      try {
        notifier.revoke?.(name, uid);
      } catch (error) {
        log.warn({ err: error, notifyName: name, uid }, "notifier failed to stop posting a revoked name");
      }
    },
    post: (name, state) => notifier.post(name, state),
    state: (name) => notifier.state(name),
    close: () => notifier.close(),
  };
}

export class Broker implements SessionHost {
  readonly limits: BrokerLimitOptions;
  readonly startedAt = new Date();
  readonly #log: Logger;
  readonly #sessions = new Map<number, Session>();
  readonly #index = new SubjectIndex<Session, SubscriptionEntry>();
  readonly #requests = new RequestTable();
  readonly #notifier: Notifier | undefined;
  /** Peers the notifier joined (welcomed, and the join did not fail): each gets one leave when it goes. */
  readonly #notifyJoined = new Set<Session>();
  readonly #slowConsumer: SlowConsumerPolicy;
  /** What the op handlers work on: the tables above, policy checks and delivery. */
  readonly #context: handlers.BrokerContext;
  readonly #statusSource: handlers.StatusSource;
  #policy: Policy | undefined;
  readonly #codeSigningCheck: CodeSigningCheck | undefined;
  readonly #durable: DurableTurn | undefined;
  readonly #store: DurableStore | undefined;
  #nextPeerId = 1;
  #closing = false;

  constructor(options: BrokerOptions = {}) {
    const pid = options.pid ?? 0;
    if (!Number.isSafeInteger(pid) || pid < 0) throw new InvalidArgumentError(`pid must be a process id (an integer >= 0), not ${String(options.pid)}`);
    this.limits = parseLimits(options.limits);
    this.#log = options.logger ?? pino({ level: "silent" });
    this.#notifier = options.notifier;
    this.#slowConsumer = options.slowConsumer ?? "drop";
    this.#policy = options.policy;
    this.#codeSigningCheck = options.codeSigningCheck;
    const store = options.store;
    const snapshot = store?.load();
    const durable = store === undefined ? undefined : new DurableTurn(store, this.#log.child({ component: "store" }));
    this.#durable = durable;
    this.#store = store;
    const given = options.sequenceFloor ?? volatileSequenceFloor();
    // With a store, reservations are kept there, in the commit that comes before any number past the old one is seen.
    const floor: SequenceFloor =
      durable === undefined ? given : { floor: Math.max(given.floor, snapshot?.sequenceReservation ?? 0), reserve: (upTo) => durable.reserve(upTo) };
    const sequences = new Sequences(floor, this.limits.maxTrackedSubjects);
    const retained = new RetainedStore({
      maxEntries: this.limits.maxRetainedEntries,
      maxBytes: this.limits.maxRetainedBytes,
      maxEntriesPerUid: this.limits.maxRetainedEntriesPerUid,
      maxBytesPerUid: this.limits.maxRetainedBytesPerUid,
      exemptUid: options.ownerUid,
    });
    const history = new History(
      { perSubject: this.limits.maxHistoryPerSubject, maxBytes: this.limits.maxHistoryBytes, maxSubjects: this.limits.maxHistorySubjects },
      snapshot?.createdAt ?? { seq: floor.floor, time: this.startedAt.getTime() },
      durable,
      store,
    );
    if (snapshot !== undefined) {
      for (const r of snapshot.retained) {
        retained.restore({ subject: r.subject, payload: r.payload, enc: r.enc, seq: r.seq }, r.owner);
        sequences.seed(r.subject, r.seq);
      }
      history.load(snapshot.subjects, snapshot.messages);
      for (const m of snapshot.messages) sequences.seed(m.subject, m.seq);
      this.#log.info({ retained: snapshot.retained.length, messages: snapshot.messages.length, subjects: snapshot.subjects.length, floor: floor.floor }, "state loaded from the store");
    }
    this.#context = {
      limits: this.limits,
      index: this.#index,
      retained,
      sequences,
      history,
      durable,
      requests: this.#requests,
      notifier: this.#notifier === undefined ? undefined : shielded(this.#notifier, this.#log),
      allowed: (session, right, subject, id) => this.#allowed(session, right, subject, id),
      deliver: (session, message) => this.#deliver(session, message),
    };
    this.#statusSource = {
      sessions: this.#sessions,
      startedAt: this.startedAt,
      pid,
      describeProcess: options.describeProcess,
      bridge: options.bridgeStatus,
      store: () => ({
        ...(store?.description ?? { kind: "memory" as const }),
        commits: durable?.commits ?? 0,
        failedCommits: durable?.failedCommits ?? 0,
        failing: durable?.failing ?? false,
      }),
    };
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
      ...this.#notifyInfo(session),
      ...(id === undefined ? {} : { id }),
    });
  }

  /**
   * What this peer's `welcome.notify` says, or nothing: a notifier may serve
   * each uid its own way (Linux: each uid its own table) or not at all.
   */
  #notifyInfo(session: Session): { notify?: NotifyInfo } {
    const notifier = this.#context.notifier;
    if (notifier === undefined) return {};
    const uid = session.link.identity.uid;
    if (this.#sessions.get(session.id) === session && !this.#notifyJoined.has(session)) {
      try {
        notifier.join?.(uid);
        this.#notifyJoined.add(session);
      } catch (error) {
        session.log.warn({ err: error }, "no notifications for this peer: the notifier could not serve its uid");
        return {};
      }
    }
    const info = notifier.infoFor?.(uid);
    return info === undefined ? {} : { notify: info };
  }

  handle(session: Session, op: ClientOp): void {
    const ctx = this.#context;
    switch (op.op) {
      case "sub":
        return handlers.subscribe(ctx, session, op);
      case "unsub":
        return handlers.unsubscribe(ctx, session, op);
      case "pub":
        return handlers.publish(ctx, session, op);
      case "get":
        return handlers.get(ctx, session, op);
      case "req":
        return handlers.request(ctx, session, op);
      case "ping":
        session.send({ op: "pong", ...(op.id === undefined ? {} : { id: op.id }) });
        return;
      case "status":
        // What a peer may see of the others depends on its `monitor` right (handlers/status.ts).
        session.send({ op: "ok", id: op.id, status: handlers.status(ctx, this.#statusSource, session) });
        return;
      case "watch":
        return handlers.watch(ctx, session, op);
      case "unwatch":
        return handlers.unwatch(ctx, session, op);
      case "post":
        return handlers.post(ctx, session, op);
      case "state":
        return handlers.state(ctx, session, op);
      case "history":
        return handlers.history(ctx, session, op);
      case "hello":
        return; // handled by the session
    }
  }

  /** A peer's connection is gone: drop it and everything it held, at once. */
  detach(session: Session): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    for (const entry of session.takeSubscriptions()) this.#index.remove(entry);
    const uid = session.link.identity.uid;
    for (const name of session.takeWatches()) this.#context.notifier?.unwatch(name, uid);
    if (this.#notifyJoined.delete(session)) this.#context.notifier?.leave?.(uid);
    this.#requests.dropPeer(session);
    session.log.debug("peer disconnected");
  }

  /** Everything, whatever the policy: for the embedding application, which is not a peer. */
  status(): BrokerStatus {
    return handlers.status(this.#context, this.#statusSource);
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
      } else {
        this.#revokeWithdrawn(session);
      }
    }
  }

  /**
   * After a reload: a subscription or a watch the peer's new rights no longer
   * cover ends, and the peer is told with one `err permission_denied` each
   * (no `id`, the subject or name in `subject`); the connection stays. Its
   * rights decide what it receives from now on, not what it was given when
   * it asked (docs/SECURITY.md, "The policy file").
   */
  #revokeWithdrawn(session: Session): void {
    const grant = session.grant;
    if (grant === undefined) return;
    for (const entry of [...session.subscriptions()]) {
      if (permits(grant, "subscribe", entry.subject)) continue;
      session.removeSubscription(entry.sid);
      this.#index.remove(entry);
      session.log.info({ subject: entry.subject, sid: entry.sid, rule: grant.rule }, "subscription ended by the reloaded policy");
      session.error("permission_denied", `the reloaded policy (rule "${grant.rule}") no longer allows subscribe on "${entry.subject}": subscription ${entry.sid} ended`, undefined, entry.subject);
    }
    const notifier = this.#context.notifier;
    if (notifier === undefined) return;
    for (const name of session.watchedNames()) {
      if (permits(grant, "watch", notifier.subjectOf(name) ?? ">")) continue;
      session.removeWatch(name);
      notifier.unwatch(name, session.link.identity.uid);
      notifier.revoke?.(name, session.link.identity.uid);
      session.log.info({ notifyName: name, rule: grant.rule }, "watch ended by the reloaded policy");
      session.error("permission_denied", `the reloaded policy (rule "${grant.rule}") no longer allows watch of "${name}": the watch ended`, undefined, name);
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
    // What the last turn wrote reaches the store before the daemon closes it.
    this.#durable?.close();
  }

  #deliver(session: Session, message: Outbound): void {
    if (session.isClosed) return;
    const queued = session.link.send(message);
    session.countOut();
    const limit = this.limits.maxOutboundBytesPerPeer;
    if (queued <= limit) return;
    if (this.#slowConsumer === "drop" && session.link.dropOldest !== undefined) {
      // Under "drop" a peer is never cut off for being slow: it loses its
      // oldest messages and is told so, once, by the link (§9.7).
      const dropped = session.link.dropOldest(queued - limit);
      if (session.dropped === 0 && dropped > 0) session.log.warn({ limit }, "slow consumer: dropping its oldest messages");
      session.noteDropped(dropped);
      return;
    }
    session.fail("slow_consumer", `${queued} bytes of messages were waiting to be read, over the limit of ${limit}`);
  }
}
