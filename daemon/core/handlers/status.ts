// `status`: what the broker holds, for operators (`xpcbus status`) and tests.
// Lists are capped so the answer of a full broker fits any client's frame
// limit; the counts beside them are always exact. Only a peer with the
// `monitor` right sees the whole broker; any other gets its own connection
// and the broker's fixed facts, in the same shape (docs/PROTOCOL.md §6.3,
// docs/SECURITY.md "What a peer can learn").

import type { BrokerStatus, PeerStatus } from "../../../protocol/index.js";
import { mayMonitor } from "../policy.js";
import type { Session } from "../session.js";
import { SERVER_VERSION } from "../version.js";
import { wireUint, type BrokerContext } from "./context.js";

/**
 * Subscriptions listed per peer in `status` (the count is always exact), and
 * subjects listed: keeps a status answer of a full broker (1000 peers) within
 * a few MiB, under every client's frame limit.
 */
export const STATUS_MAX_SUBSCRIPTIONS_LISTED = 64;
export const STATUS_MAX_SUBJECTS_LISTED = 1000;

/** What status reports about the broker that the handlers' context does not hold. */
export interface StatusSource {
  /** The admitted peers, by id. */
  readonly sessions: ReadonlyMap<number, Session>;
  readonly startedAt: Date;
  /** The hosting process's id, as the broker was told (BrokerOptions.pid). */
  readonly pid: number;
  readonly describeProcess: (() => Record<string, number>) | undefined;
  /** The NATS bridge's state, when one runs. */
  readonly bridge: (() => BrokerStatus["bridge"]) | undefined;
  /** How the store is kept and how its commits went. */
  readonly store: () => NonNullable<BrokerStatus["store"]>;
}

function historyStatus(ctx: BrokerContext, own: boolean): NonNullable<BrokerStatus["history"]> {
  const h = ctx.history;
  return {
    subjects: own ? 0 : h.subjectCount,
    messages: own ? 0 : h.size,
    bytes: own ? 0 : (wireUint(h.bytes) as number),
    maxBytes: wireUint(h.bounds.maxBytes) as number,
    perSubject: h.bounds.perSubject,
    maxSubjects: h.bounds.maxSubjects,
  };
}

function peerStatus(s: Session): PeerStatus {
  const { pid, uid, gid, exe, exeVerified, method } = s.link.identity;
  const listed: PeerStatus["subscriptions"] = [];
  for (const sub of s.subscriptions()) {
    if (listed.length >= STATUS_MAX_SUBSCRIPTIONS_LISTED) break;
    listed.push({ sid: sub.sid, subject: sub.subject, ...(sub.queue === undefined ? {} : { queue: sub.queue }) });
  }
  return {
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
    subscriptionCount: s.subscriptionCount,
    subscriptions: listed,
    msgsIn: wireUint(s.msgsIn) as number,
    msgsOut: wireUint(s.msgsOut) as number,
    bytesIn: wireUint(s.bytesIn) as number,
    bytesOut: wireUint(s.link.bytesSent) as number,
    dropped: wireUint(s.dropped) as number,
    ...(s.link.queuedBytes === undefined ? {} : { queuedBytes: s.link.queuedBytes }),
  };
}

/**
 * The status `viewer` may see: everything when it has the `monitor` right
 * (or when there is no viewer: the embedding application asking in process);
 * else its own connection only.
 */
export function status(ctx: BrokerContext, source: StatusSource, viewer?: Session): BrokerStatus {
  if (viewer !== undefined && !mayMonitor(viewer.grant)) return ownStatus(ctx, source, viewer);
  const peers: PeerStatus[] = [];
  const subjects = ctx.index.patterns();
  for (const s of source.sessions.values()) peers.push(peerStatus(s));
  const bridge = source.bridge?.();
  return {
    server: SERVER_VERSION,
    pid: source.pid,
    startedAt: source.startedAt.toISOString(),
    scope: "broker",
    peers,
    subjectCount: subjects.length,
    subjects: subjects.slice(0, STATUS_MAX_SUBJECTS_LISTED),
    retained: {
      count: ctx.retained.count,
      bytes: wireUint(ctx.retained.bytes) as number,
      maxCount: ctx.retained.maxEntries,
      maxBytes: wireUint(ctx.retained.maxBytes) as number,
      maxCountPerUid: ctx.retained.bounds.maxEntriesPerUid,
      maxBytesPerUid: wireUint(ctx.retained.bounds.maxBytesPerUid) as number,
      byUid: ctx.retained.use().map((u) => ({ uid: u.uid, count: u.count, bytes: wireUint(u.bytes) as number })),
    },
    publishedCount: ctx.sequences.size,
    published: ctx.sequences.recent(STATUS_MAX_SUBJECTS_LISTED).map((p) => ({ subject: p.subject, seq: wireUint(p.seq) as number, messages: wireUint(p.messages) as number })),
    pendingRequests: ctx.requests.size,
    history: historyStatus(ctx, false),
    store: source.store(),
    ...(bridge === undefined ? {} : { bridge }),
    ...(source.describeProcess === undefined ? {} : { process: source.describeProcess() }),
  };
}

/**
 * A peer without `monitor`: the same keys, so clients need no change, but
 * nothing about anyone else. Its own entry in `peers` (its identity, its
 * subscriptions, its counters: all things it knows or did), the broker's
 * version, pid and start time, and the retained bounds (configuration,
 * not use). Everything that counts or names what others do is empty or
 * 0: the subject map, the publish counters, the retained count and bytes,
 * the pending requests; `process` is left out. A count of the peer's own
 * share would still move with what others do (a pattern's subscribers, a
 * subject's `messages`), so none is given.
 */
function ownStatus(ctx: BrokerContext, source: StatusSource, viewer: Session): BrokerStatus {
  return {
    server: SERVER_VERSION,
    pid: source.pid,
    startedAt: source.startedAt.toISOString(),
    scope: "peer",
    peers: [peerStatus(viewer)],
    subjectCount: 0,
    subjects: [],
    retained: { count: 0, bytes: 0, maxCount: ctx.retained.maxEntries, maxBytes: wireUint(ctx.retained.maxBytes) as number },
    publishedCount: 0,
    published: [],
    pendingRequests: 0,
    history: historyStatus(ctx, true),
    // How the broker keeps state is configuration; where (a path in the owner's home) is not its business.
    store: { ...source.store(), path: undefined },
  };
}
