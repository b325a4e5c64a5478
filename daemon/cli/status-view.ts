// What `xpcbus status --watch` (`xpcbus top`) shows, computed from two
// status answers: msgs/s per peer from the deltas of its counters, per
// subscribed subject from its subscribers', and the table that fits a
// terminal's width. Pure functions: no I/O, tested in process.

import type { BrokerStatus, PeerStatus } from "../../protocol/index.js";

/** What the CLI says when the broker showed this connection only (status scope "peer": no `monitor` right). */
export const OWN_CONNECTION_ONLY = "this connection only: the policy gives it no monitor right, so the broker shows nothing of other peers";

/** One status answer and when it arrived (ms, monotonic). */
export interface Sample {
  status: BrokerStatus;
  atMs: number;
}

export interface PeerRow {
  id: number;
  name: string;
  pid: number | null;
  exe: string | null;
  subscriptions: number;
  msgsIn: number;
  msgsOut: number;
  /** Messages the peer sent (publishes, requests…) per second; null on the first refresh. */
  inPerSec: number | null;
  /** Messages delivered to the peer per second; null on the first refresh. */
  outPerSec: number | null;
  dropped: number;
  droppedPerSec: number | null;
  /** Bytes waiting in the broker for this peer, when the broker reports it (`queuedBytes`); else null. */
  queuedBytes: number | null;
}

export interface SubjectRow {
  subject: string;
  subscribers: number;
  /** Publishes per second to this very subject (from the broker's `published` counters); null for a pattern or before a second sample. */
  inPerSec: number | null;
  /**
   * Deliveries per second to this subject's subscribers: the sum of their
   * out rates. The broker counts per peer, not per subject, so this is exact
   * only when each of them subscribes to this subject alone (`exact`); else
   * an upper bound.
   */
  outPerSec: number | null;
  exact: boolean;
}

export interface StatusView {
  at: string;
  /** Time since the previous refresh, ms; null on the first. */
  intervalMs: number | null;
  broker: {
    pid: number;
    server: string;
    /** "peer" when the broker showed this connection only (no `monitor` right): the counts below are then 0, not the broker's. */
    scope: "broker" | "peer";
    startedAt: string;
    peers: number;
    subjects: number;
    pendingRequests: number;
    retained: BrokerStatus["retained"];
    process: Record<string, number> | null;
  };
  peers: PeerRow[];
  subjects: SubjectRow[];
}

const perSecond = (delta: number, ms: number): number => Math.round((delta * 1000 * 10) / ms) / 10;

/** The view of `current`, with rates against `previous` (none if absent, or if the broker restarted between them). */
export function statusView(current: Sample, previous: Sample | undefined, now = new Date()): StatusView {
  const status = current.status;
  const sameBroker = previous !== undefined && previous.status.pid === status.pid && previous.status.startedAt === status.startedAt;
  const ms = sameBroker ? current.atMs - previous.atMs : 0;
  const before = new Map<number, PeerStatus>(sameBroker ? previous.status.peers.map((p) => [p.id, p]) : []);
  const rate = (now_: number, then: number | undefined): number | null => {
    if (!sameBroker || ms <= 0) return null;
    // A peer that was not there last time connected since: all it did is in this interval.
    return perSecond(Math.max(0, now_ - (then ?? 0)), ms);
  };
  const peers: PeerRow[] = status.peers.map((p) => {
    const was = before.get(p.id);
    const queued = p.queuedBytes;
    return {
      id: p.id,
      name: p.name,
      pid: p.pid,
      exe: p.exe,
      subscriptions: p.subscriptionCount,
      msgsIn: p.msgsIn,
      msgsOut: p.msgsOut,
      inPerSec: rate(p.msgsIn, was?.msgsIn),
      outPerSec: rate(p.msgsOut, was?.msgsOut),
      dropped: p.dropped,
      droppedPerSec: rate(p.dropped, was?.dropped),
      queuedBytes: typeof queued === "number" ? queued : null,
    };
  });
  // Busiest first; equal ones in connection order, so a quiet table does not reshuffle.
  peers.sort((a, b) => (b.inPerSec ?? 0) + (b.outPerSec ?? 0) - ((a.inPerSec ?? 0) + (a.outPerSec ?? 0)) || a.id - b.id);
  // Publishes per subject, from the broker's counters (older brokers send none).
  const publishedBefore = new Map((sameBroker ? (previous.status.published ?? []) : []).map((x) => [x.subject, x.messages]));
  const inRate = new Map<string, number | null>();
  for (const p of status.published ?? []) inRate.set(p.subject, rate(p.messages, publishedBefore.get(p.subject)));
  const subjects: SubjectRow[] = status.subjects.map((s) => {
    const holders = status.peers.filter((p) => p.subscriptions.some((sub) => sub.subject === s.subject));
    let outPerSec: number | null = null;
    for (const holder of holders) {
      const row = peers.find((r) => r.id === holder.id);
      if (row?.outPerSec != null) outPerSec = (outPerSec ?? 0) + row.outPerSec;
    }
    // Exact when every subscriber holds this one subscription, and all of them are listed.
    const exact = holders.length === s.subscribers && holders.every((p) => p.subscriptionCount === 1);
    const inPerSec = inRate.get(s.subject) ?? null;
    inRate.delete(s.subject);
    return { subject: s.subject, subscribers: s.subscribers, inPerSec, outPerSec: outPerSec === null ? null : Math.round(outPerSec * 10) / 10, exact };
  });
  // Subjects published to that no subscription names as such (none, or a pattern).
  for (const [subject, inPerSec] of inRate) subjects.push({ subject, subscribers: 0, inPerSec, outPerSec: null, exact: true });
  subjects.sort((a, b) => (b.inPerSec ?? 0) + (b.outPerSec ?? 0) - ((a.inPerSec ?? 0) + (a.outPerSec ?? 0)) || a.subject.localeCompare(b.subject));
  return {
    at: now.toISOString(),
    intervalMs: sameBroker ? Math.round(ms) : null,
    broker: {
      pid: status.pid,
      server: status.server,
      scope: status.scope ?? "broker",
      startedAt: status.startedAt,
      peers: status.peers.length,
      subjects: status.subjectCount,
      pendingRequests: status.pendingRequests,
      retained: status.retained,
      process: status.process ?? null,
    },
    peers,
    subjects,
  };
}

/** Cuts `text` to `width` characters, keeping its end (a path's file name) behind "…". */
export function truncateStart(text: string, width: number): string {
  if (width <= 0) return "";
  if (text.length <= width) return text;
  return width === 1 ? "…" : `…${text.slice(text.length - width + 1)}`;
}

function truncateEnd(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

const num = (n: number | null): string => (n === null ? "-" : String(n));

function mib(bytes: number | undefined): string {
  return bytes === undefined ? "?" : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Pads cells to their column's width: right-aligned numbers, left-aligned text. */
function layout(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd());
}

export interface RenderOptions {
  /** Terminal width; lines never exceed it. Infinity when unknown (a pipe): nothing is cut. */
  columns: number;
  /** Terminal height: rows past it are summarised as "… N more". Infinity when unknown. */
  rows: number;
}

/** The view as a block of lines that fit `columns`: a header, the peers, the subjects. */
export function renderView(view: StatusView, options: RenderOptions): string[] {
  const b = view.broker;
  const memory = b.process === null ? "" : `  rss ${mib(b.process["rss"])}  fds ${b.process["fds"] ?? "?"}`;
  const header = [
    `${b.server}  pid ${b.pid}  ${view.at}${view.intervalMs === null ? "  (rates from the next refresh)" : `  (rates over ${view.intervalMs} ms)`}`,
    b.scope === "peer"
      ? OWN_CONNECTION_ONLY
      : `peers ${b.peers}  subjects ${b.subjects}  pending requests ${b.pendingRequests}  retained ${b.retained.count} (${b.retained.bytes} B)${memory}`,
  ];
  const showQueue = view.peers.some((p) => p.queuedBytes !== null);
  const peerHeader = ["ID", "NAME", "PID", "IN/s", "OUT/s", "DROPPED", ...(showQueue ? ["QUEUE B"] : []), "SUBS", "EXE"];
  const peerCells = view.peers.map((p) => [
    String(p.id),
    truncateEnd(p.name || "-", 20),
    num(p.pid),
    num(p.inPerSec),
    num(p.outPerSec),
    p.droppedPerSec !== null && p.droppedPerSec > 0 ? `${p.dropped} (+${p.droppedPerSec}/s)` : String(p.dropped),
    ...(showQueue ? [num(p.queuedBytes)] : []),
    String(p.subscriptions),
    p.exe ?? "?",
  ]);
  // The rows the screen has for tables, past the header, two blank lines, two
  // column headers and two "… more" lines: two thirds to the peers, the rest to the subjects.
  const budget = Math.max(4, options.rows - header.length - 6);
  const peerRows = Math.max(1, Math.min(view.peers.length, Math.ceil((budget * 2) / 3)));
  const subjectRows = Math.max(1, budget - Math.min(view.peers.length, peerRows));
  const shownPeers = peerCells.slice(0, peerRows);
  // Every column but the exe at its natural width; the exe gets what is left of the line, cut from the start.
  const fixed = layout([peerHeader.slice(0, -1), ...shownPeers.map((r) => r.slice(0, -1))], peerHeader.slice(0, -1).map((_, i) => i !== 1));
  const exeWidth = Math.max(8, options.columns - (fixed[0]!.length + 2));
  const peerLines = layout(
    [peerHeader, ...shownPeers.map((r) => [...r.slice(0, -1), truncateStart(r[r.length - 1]!, exeWidth)])],
    peerHeader.map((_, i) => i !== 1 && i !== peerHeader.length - 1),
  );
  if (view.peers.length > shownPeers.length) peerLines.push(`… ${view.peers.length - shownPeers.length} more peers`);
  const subjectLines =
    view.subjects.length === 0
      ? []
      : layout(
          [["IN/s", "SUBSCRIBERS", "OUT/s", "SUBJECT"], ...view.subjects.slice(0, subjectRows).map((s) => [s.inPerSec === null ? "-" : String(s.inPerSec), String(s.subscribers), s.outPerSec === null ? "-" : `${s.exact ? "" : "≤"}${s.outPerSec}`, s.subject])],
          [true, true, true, false],
        );
  if (view.subjects.length > subjectRows) subjectLines.push(`… ${view.subjects.length - subjectRows} more subjects`);
  const lines = [...header, "", ...peerLines, ...(subjectLines.length > 0 ? ["", ...subjectLines] : [])];
  return lines.map((line) => truncateEnd(line, options.columns));
}
