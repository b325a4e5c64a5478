// The protocol's messages as TypeScript types: one map per frame, keyed as in
// docs/PROTOCOL.md. Fields are short because every frame carries them.

import type { WireErrorCode } from "./errors.js";

/** How a payload's bytes are to be read back (docs/PROTOCOL.md, "Payload encodings"). */
export type PayloadEncoding = "bytes" | "text" | "json";

export const PAYLOAD_ENCODINGS: readonly PayloadEncoding[] = ["bytes", "text", "json"];

// ---- client → broker ----

/** `noEcho`: never deliver this connection its own publishes (as NATS's no_echo). */
export interface HelloOp { op: "hello"; v: number; name?: string; noEcho?: boolean; id?: number }
export interface SubOp {
  op: "sub";
  sid: number;
  subject: string;
  queue?: string;
  replay?: boolean;
  /** Resume: first the kept messages after this sequence number (docs/PROTOCOL.md §9.10). */
  since?: number;
  /** Resume: first the kept messages accepted at or after this time, Unix milliseconds. */
  sinceTime?: number;
  id?: number;
}
export interface UnsubOp { op: "unsub"; sid: number; id?: number }
export interface PubOp {
  op: "pub";
  subject: string;
  p: Uint8Array;
  enc?: PayloadEncoding;
  retain?: boolean;
  reply?: string;
  id?: number;
}
export interface GetOp { op: "get"; subject: string; id: number }
export interface ReqOp { op: "req"; subject: string; p: Uint8Array; enc?: PayloadEncoding; timeout?: number; id: number }
export interface PingOp { op: "ping"; id?: number }
export interface StatusOp { op: "status"; id: number }
/** Registers interest in a notification name (on Linux: gets its slot in the notify table). */
export interface WatchOp { op: "watch"; name: string; id: number }
export interface UnwatchOp { op: "unwatch"; name: string; id?: number }
/** Posts a notification name through the broker, optionally setting its state first. */
export interface PostOp { op: "post"; name: string; state?: bigint; id?: number }
export interface StateOp { op: "state"; name: string; id: number }
/** The latest kept messages of a subject or pattern (docs/PROTOCOL.md §5.13). */
export interface HistoryOp { op: "history"; subject: string; limit?: number; id: number }

export type ClientOp = HelloOp | SubOp | UnsubOp | PubOp | GetOp | ReqOp | PingOp | StatusOp | WatchOp | UnwatchOp | PostOp | StateOp | HistoryOp;
export type ClientOpName = ClientOp["op"];
export const CLIENT_OPS: readonly ClientOpName[] = [
  "hello",
  "sub",
  "unsub",
  "pub",
  "get",
  "req",
  "ping",
  "status",
  "watch",
  "unwatch",
  "post",
  "state",
  "history",
];

// ---- broker → client ----

export interface BrokerLimits {
  maxFrameBytes: number;
  maxPayloadBytes: number;
  maxSubjectBytes: number;
  maxSubjectTokens: number;
  maxSubscriptionsPerPeer: number;
  maxPendingRequestsPerPeer: number;
  maxRequestTimeoutMs: number;
  maxWatchesPerPeer: number;
}

/** How this broker delivers notifications (`welcome.notify`). */
export type NotifyInfo =
  | {
      /** Linux: the broker's shared table (docs/PROTOCOL.md, "Notify table"). */
      mechanism: "table";
      prefix: string;
      table: string;
      slots: number;
      /** Changes whenever a broker recreates the table. */
      instance: bigint;
    }
  | { /** macOS: Apple's notify(3); register names directly with notifyd. */ mechanism: "notify(3)"; prefix: string };

export interface WelcomeMsg {
  op: "welcome";
  v: number;
  peer: number;
  server: string;
  limits: BrokerLimits;
  notify?: NotifyInfo;
  id?: number;
}

export interface DeliverMsg {
  op: "msg";
  subject: string;
  p: Uint8Array;
  enc?: PayloadEncoding;
  /** The subject's sequence number at this publish. */
  seq: number;
  reply?: string;
  /** Set when the message is for one subscription only (replay, request). */
  sid?: number;
  /** Set when the message was given to this peer as the chosen member of a queue group. */
  queue?: string;
  /** True when the payload is the subject's retained value (a publish with `retain`, or a replay). */
  retained?: boolean;
}

export interface OkMsg { op: "ok"; id: number; [field: string]: unknown }
export interface ErrMsg { op: "err"; code: WireErrorCode; reason: string; id?: number; subject?: string }
export interface PongMsg { op: "pong"; id?: number }
export interface ByeMsg { op: "bye"; code: WireErrorCode; reason: string }

/** The broker dropped this peer's oldest undelivered messages: it was not reading fast enough. */
export interface DroppedMsg { op: "dropped"; count: number; total: number }

/**
 * Before a resumed subscription's replay: messages of `subject` after the
 * resume point that the broker no longer has. `lost` absent: unknown (the
 * point is older than what the broker's history knows; `subject` is then the
 * subscription's pattern); `atLeast`: `lost` is a lower bound.
 */
export interface GapMsg { op: "gap"; sid: number; subject: string; lost?: number; atLeast?: boolean }

export type BrokerMsg = WelcomeMsg | DeliverMsg | OkMsg | ErrMsg | PongMsg | ByeMsg | DroppedMsg | GapMsg;

/** One peer as `status` reports it. */
export interface PeerStatus {
  id: number;
  name: string;
  transport: string;
  pid: number | null;
  uid: number | null;
  gid: number | null;
  exe: string | null;
  /** False when `exe` was read by pid only (no pidfd could be had), or is null: policy rules on exe do not admit such a peer. */
  exeVerified: boolean;
  identityMethod: string;
  connectedAt: string;
  subscriptionCount: number;
  /** The first STATUS_MAX_SUBSCRIPTIONS_LISTED (64) subscriptions. */
  subscriptions: Array<{ sid: number; subject: string; queue?: string }>;
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  /** Bytes waiting in the broker for this peer (its queue and what its socket has not taken); absent over XPC. */
  queuedBytes?: number;
}

export interface BrokerStatus {
  server: string;
  pid: number;
  startedAt: string;
  /**
   * What the answer covers: "broker", everything (the asking peer has the
   * `monitor` right); "peer", the asking peer's own connection only: `peers`
   * holds its entry alone, `subjects` and `published` are empty, their counts,
   * `retained.count`, `retained.bytes` and `pendingRequests` are 0 and
   * `process` is absent (docs/PROTOCOL.md §6.3). Absent from older brokers,
   * which always answered everything.
   */
  scope?: "broker" | "peer";
  /** Every open connection; with scope "peer", the asking one alone. */
  peers: PeerStatus[];
  subjectCount: number;
  /** The first STATUS_MAX_SUBJECTS_LISTED (1000) subscribed patterns, sorted. */
  subjects: Array<{ subject: string; subscribers: number }>;
  retained: {
    count: number;
    bytes: number;
    maxCount: number;
    maxBytes: number;
    /** The per-uid bounds, and what each uid's publishers hold (null: peers whose uid is unknown); with `scope` "broker" only. */
    maxCountPerUid?: number;
    maxBytesPerUid?: number;
    byUid?: Array<{ uid: number | null; count: number; bytes: number }>;
  };
  /** Subjects published to, as many as the broker tracks (maxTrackedSubjects). */
  publishedCount: number;
  /** The STATUS_MAX_SUBJECTS_LISTED most recently published: each one's last seq and publishes since the broker started tracking it. */
  published: Array<{ subject: string; seq: number; messages: number }>;
  pendingRequests: number;
  /** The recent history kept for `since` and `history` (counts 0 with scope "peer"). Absent from older brokers. */
  history?: { subjects: number; messages: number; bytes: number; maxBytes: number; perSubject: number; maxSubjects: number };
  /** The NATS bridge, when the broker runs one (`--bridge`); absent otherwise and from older brokers. Scope "broker" only. */
  bridge?: {
    /** "connecting" until the first connection, "connected", "reconnecting" while NATS is away, "closed". */
    state: "connecting" | "connected" | "reconnecting" | "closed";
    /** The bridge file. */
    source: string;
    servers: string[];
    /** The server connected to now, if any. */
    server?: string;
    /** Messages handed to NATS (and requests answered through it), published locally from NATS, and dropped (buffer full while NATS was away, refused locally). */
    exported: number;
    imported: number;
    dropped: number;
    /** Bytes of exports waiting for NATS to come back. */
    bufferedBytes: number;
    /** The last error met (connect refused, auth, a local refusal). */
    lastError?: string;
  };
  /** Where retained values and history are kept. Absent from older brokers. */
  store?: {
    kind: "sqlite" | "memory";
    path?: string;
    durability?: "normal" | "full";
    /** Transactions committed, and refused (disk full, I/O error), since the broker started. */
    commits: number;
    failedCommits: number;
    /** The last commit failed: what is new is in memory only until one succeeds. */
    failing: boolean;
  };
  /** The daemon's process: rss, heapUsed and arrayBuffers (bytes), fds (open descriptors). */
  process?: Record<string, number>;
}
