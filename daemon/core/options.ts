// The broker core's options: every table and queue bound is named here, with
// its default and why (docs/PROTOCOL.md, "Limits", repeats them for clients).

import { InvalidArgumentError } from "../../protocol/index.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MAX_REQUEST_TIMEOUT_MS,
  MAX_SUBJECT_BYTES,
  MAX_SUBJECT_TOKENS,
} from "../../protocol/index.js";

export interface BrokerLimitOptions {
  /** Largest frame body a peer may send, in bytes. */
  maxFrameBytes: number;
  /** Largest payload in `pub` or `req`, in bytes. */
  maxPayloadBytes: number;
  /** Most peers connected at once; the next one is told `too_many_peers` and closed. */
  maxPeers: number;
  /** Most peers of one uid connected at once (`too_many_peers`), so one user's runaway client cannot take every place. */
  maxPeersPerUid: number;
  /** Longest subject accepted, in bytes (at most the protocol's 256). */
  maxSubjectBytes: number;
  /** Most tokens in a subject (at most the protocol's 16). */
  maxSubjectTokens: number;
  /** Most live subscriptions one peer may hold. */
  maxSubscriptionsPerPeer: number;
  /** Most requests one peer may have waiting for a reply. */
  maxPendingRequestsPerPeer: number;
  /** Most retained values kept; past it a retained publish is refused (`retained_full`), nothing is evicted. */
  maxRetainedEntries: number;
  /** Most bytes of retained payloads and subjects kept (the same). */
  maxRetainedBytes: number;
  /** Most retained values the publishers of one uid may hold, so one identity cannot fill the space for all. */
  maxRetainedEntriesPerUid: number;
  /** Most retained bytes the publishers of one uid may hold. */
  maxRetainedBytesPerUid: number;
  /** Most subjects whose sequence number is remembered individually (see sequences.ts). */
  maxTrackedSubjects: number;
  /** Messages kept per subject for `since` and `history` (history.ts); older ones are dropped and counted. */
  maxHistoryPerSubject: number;
  /** Bytes of history kept in all (payloads, subjects and 64 each); past it the least recently published subject loses its oldest first. */
  maxHistoryBytes: number;
  /** Subjects with a history; past it the least recently published subject is forgotten whole. */
  maxHistorySubjects: number;
  /**
   * Bytes of `msg` frames the broker may hold in its own queue for one peer
   * (beyond what its socket took): past it the oldest are dropped, or the
   * peer is cut off under --slow-consumer disconnect (docs/PROTOCOL.md §9.7).
   */
  maxOutboundBytesPerPeer: number;
  /** Milliseconds a new connection has to send `hello`. */
  helloTimeoutMs: number;
  /** Most notification names one peer may watch at once. */
  maxWatchesPerPeer: number;
  /** Slots in the Linux notify table: names watched at once, over all peers. */
  maxNotifySlots: number;
  /** States of posted names nobody watches, remembered for a later watcher (least recent forgotten). */
  maxNotifyStates: number;
  /** Timeout of a `req` that gives none, in milliseconds. */
  defaultRequestTimeoutMs: number;
  /** Longest `req` timeout accepted, in milliseconds. */
  maxRequestTimeoutMs: number;
}

export const DEFAULT_BROKER_LIMITS: Readonly<BrokerLimitOptions> = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  // A per-user broker serves one user's apps; 1024 peers is far past that and
  // keeps the broker's fd use under the common 1024 soft RLIMIT_NOFILE headroom.
  maxPeers: 1000,
  // Half the places: a system broker's other users keep room.
  maxPeersPerUid: 500,
  maxSubjectBytes: MAX_SUBJECT_BYTES,
  maxSubjectTokens: MAX_SUBJECT_TOKENS,
  maxSubscriptionsPerPeer: 10_000,
  maxPendingRequestsPerPeer: 1024,
  maxRetainedEntries: 10_000,
  // 64 MiB: a retained value is "the current state", typically a few hundred bytes.
  maxRetainedBytes: 64 * 1024 * 1024,
  // Half of each (and half of configured totals, parseLimits): a uid other
  // than the broker's own that fills its part leaves the other half to the rest.
  maxRetainedEntriesPerUid: 5_000,
  maxRetainedBytesPerUid: 32 * 1024 * 1024,
  maxTrackedSubjects: 100_000,
  // 64 messages: a subscriber away for a restart or a sleep misses nothing on
  // a subject that changes a few times a second; 64 MiB and 10,000 subjects
  // bound the whole (in memory, and on disk with the store).
  maxHistoryPerSubject: 64,
  maxHistoryBytes: 64 * 1024 * 1024,
  maxHistorySubjects: 10_000,
  // 8 MiB: eight maximum-size messages, or ~100k small ones, behind a reader.
  maxOutboundBytesPerPeer: 8 * 1024 * 1024,
  helloTimeoutMs: 5_000,
  maxWatchesPerPeer: 1024,
  // 4096 slots of 16 bytes: a 64 KiB table, sixteen pages every client maps.
  maxNotifySlots: 4096,
  maxNotifyStates: 10_000,
  defaultRequestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
  maxRequestTimeoutMs: MAX_REQUEST_TIMEOUT_MS,
});

/** The native table's own bound on slots (native/src/linux/notify_table_writer.cc). */
export const MAX_NOTIFY_TABLE_SLOTS = 1 << 24;

const LIMIT_NAMES = Object.keys(DEFAULT_BROKER_LIMITS) as Array<keyof BrokerLimitOptions>;

/**
 * Fills in defaults and rejects unknown or ill-typed limits, naming them, so
 * a typo in a config never silently falls back to a default.
 */
export function parseLimits(input: Partial<BrokerLimitOptions> | undefined): BrokerLimitOptions {
  const limits: BrokerLimitOptions = { ...DEFAULT_BROKER_LIMITS };
  if (input === undefined) return limits;
  for (const [key, value] of Object.entries(input)) {
    if (!(LIMIT_NAMES as string[]).includes(key)) {
      throw new InvalidArgumentError(`unknown broker limit "${key}"; known limits: ${LIMIT_NAMES.join(", ")}`);
    }
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidArgumentError(`broker limit "${key}" must be a positive integer (got ${String(value)})`);
    }
    limits[key as keyof BrokerLimitOptions] = value;
  }
  // The per-uid retained quotas follow the totals (half of each) unless given.
  if (input.maxRetainedEntriesPerUid === undefined) limits.maxRetainedEntriesPerUid = Math.max(1, Math.ceil(limits.maxRetainedEntries / 2));
  if (input.maxRetainedBytesPerUid === undefined) limits.maxRetainedBytesPerUid = Math.max(1, Math.ceil(limits.maxRetainedBytes / 2));
  if (limits.maxPayloadBytes > limits.maxFrameBytes) {
    throw new InvalidArgumentError(
      `maxPayloadBytes (${limits.maxPayloadBytes}) must not exceed maxFrameBytes (${limits.maxFrameBytes})`,
    );
  }
  if (limits.maxSubjectBytes > MAX_SUBJECT_BYTES || limits.maxSubjectTokens > MAX_SUBJECT_TOKENS) {
    throw new InvalidArgumentError(`maxSubjectBytes and maxSubjectTokens are at most the protocol's ${MAX_SUBJECT_BYTES} and ${MAX_SUBJECT_TOKENS}`);
  }
  if (limits.maxNotifySlots > MAX_NOTIFY_TABLE_SLOTS) {
    throw new InvalidArgumentError(`maxNotifySlots is at most ${MAX_NOTIFY_TABLE_SLOTS} (a 256 MiB table)`);
  }
  if (limits.defaultRequestTimeoutMs > limits.maxRequestTimeoutMs) {
    throw new InvalidArgumentError("defaultRequestTimeoutMs must not exceed maxRequestTimeoutMs");
  }
  return limits;
}
