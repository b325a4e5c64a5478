// The recent history of each subject: its last messages, kept so that a
// subscriber that was away can resume (`sub` with `since`) and `history` can
// show them. Bounded three ways (docs/PROTOCOL.md §11): messages per subject,
// bytes in all, subjects in all. What leaves is never a surprise to the
// reader: each subject records what it dropped, as runs of consecutive
// sequence numbers (a burst is one run), so a resuming subscriber is told
// exactly how many it missed (a `gap` frame), or, past MAX_DROPPED_RUNS
// runs, at least how many.
//
// Past the byte bound, the subject published least recently gives up its
// oldest message first; past the subject bound, the subject published least
// recently is forgotten whole (a later `since` older than its last message
// gets a gap of unknown size for the patterns that could have matched it).

import type { PayloadEncoding } from "../../protocol/index.js";
import type { StoredMessage, StoredSubject } from "./durable-store.js";
import { entrySize } from "./retained-store.js";

export interface HistoryBounds {
  /** Messages kept per subject. */
  perSubject: number;
  /** Bytes of payloads and subjects kept in all. */
  maxBytes: number;
  /** Subjects with a history record. */
  maxSubjects: number;
}

export interface HistoryEntry {
  readonly subject: string;
  readonly seq: number;
  readonly n: number;
  readonly time: number;
  readonly enc: PayloadEncoding | undefined;
  /**
   * In memory without a store. With one, only until the message is committed
   * (a view into the bytes it was read from, not a copy); then undefined, and
   * read back from the store when asked for.
   */
  payload: Uint8Array | undefined;
  /** Counted against maxBytes. */
  readonly size: number;
  /** Set by the store's turn: this message is in the store (or left the history before it got there). */
  settled?: boolean;
}

/** A kept message with its payload, as resume() and latest() hand them out. */
export type KeptMessage = StoredMessage;

/** Where the payloads of committed messages are (the store). */
export interface PayloadSource {
  readPayload(seq: number): Uint8Array | undefined;
}

/** Told of every change, to write it through to the store. */
export interface HistoryChanges {
  appended(entry: HistoryEntry, record: SubjectHistory): void;
  /** `entry` left its subject's history (and the subject's record of drops changed). */
  dropped(entry: HistoryEntry, record: SubjectHistory): void;
  /** A subject forgotten whole, with the messages it still had. */
  forgotten(subject: string, entries: readonly HistoryEntry[]): void;
}

/** Where a resuming subscriber left off: after a sequence number, or from a time (Unix ms). */
export type ResumePoint = { readonly seq: number } | { readonly time: number };

/** A subject whose messages after the resume point are not all kept. */
export interface HistoryGap {
  /** The subject, or the subscription's pattern when the loss cannot be placed (lost unknown). */
  readonly subject: string;
  /** How many messages are missing; undefined when unknown. */
  readonly lost: number | undefined;
  /** True when `lost` is a lower bound (more were dropped than the record keeps). */
  readonly atLeast: boolean;
}

function isAfter(point: ResumePoint, seq: number, time: number): boolean {
  return "seq" in point ? seq > point.seq : time >= point.time;
}

/**
 * A run of dropped messages whose sequence numbers follow one another (a
 * burst on one subject is one run): first seq, how many, first and last time.
 */
interface DroppedRun {
  first: number;
  count: number;
  firstTime: number;
  lastTime: number;
}

/** Runs of drops a subject records: past it the oldest run is forgotten and counts from before it are lower bounds. */
export const MAX_DROPPED_RUNS = 64;

/** One subject: its kept messages (oldest first) and the record of those it dropped. */
export class SubjectHistory {
  readonly subject: string;
  /** Oldest first; a plain array: at most perSubject long, shifted once per publish past it. */
  readonly entries: HistoryEntry[] = [];
  /** The n of its latest publish. */
  n: number;
  /** The drops, oldest first, as runs of consecutive sequence numbers. */
  readonly runs: DroppedRun[];
  /** How many it has dropped in all (more than the runs hold, once the oldest were forgotten). */
  droppedTotal: number;

  constructor(subject: string, n = 0, dropped?: { runs: DroppedRun[]; total: number }) {
    this.subject = subject;
    this.n = n;
    this.runs = dropped?.runs ?? [];
    this.droppedTotal = dropped?.total ?? 0;
  }

  /** The record of drops as the store keeps it: total, then (first, count, firstTime, lastTime) per run, as float64. */
  encodeDropped(): Uint8Array {
    const out = new Float64Array(1 + 4 * this.runs.length);
    out[0] = this.droppedTotal;
    this.runs.forEach((run, i) => out.set([run.first, run.count, run.firstTime, run.lastTime], 1 + 4 * i));
    return new Uint8Array(out.buffer);
  }

  static decodeDropped(bytes: Uint8Array): { runs: DroppedRun[]; total: number } {
    const usable = bytes.byteLength - (bytes.byteLength % 8);
    const values = new Float64Array(new Uint8Array(bytes.subarray(0, usable)).buffer);
    const runs: DroppedRun[] = [];
    let recorded = 0;
    for (let i = 1; i + 3 < values.length; i += 4) {
      runs.push({ first: values[i]!, count: values[i + 1]!, firstTime: values[i + 2]!, lastTime: values[i + 3]! });
      recorded += values[i + 1]!;
    }
    return { runs, total: values.length > 0 ? Math.max(values[0]!, recorded) : 0 };
  }

  toStored(): StoredSubject {
    return { subject: this.subject, n: this.n, dropped: this.encodeDropped() };
  }

  /** Drops the oldest kept message; returns it. */
  dropOldest(): HistoryEntry {
    const entry = this.entries.shift()!;
    const last = this.runs.at(-1);
    if (last !== undefined && last.first + last.count === entry.seq) {
      last.count++;
      last.lastTime = entry.time;
    } else {
      this.runs.push({ first: entry.seq, count: 1, firstTime: entry.time, lastTime: entry.time });
      if (this.runs.length > MAX_DROPPED_RUNS) this.runs.shift();
    }
    this.droppedTotal++;
    return entry;
  }

  /** The messages after `point` this subject no longer has. */
  lostAfter(point: ResumePoint): HistoryGap | undefined {
    if (this.runs.length === 0) return undefined;
    let lost = 0;
    let atLeast = false;
    let recorded = 0;
    for (const run of this.runs) {
      recorded += run.count;
      const last = run.first + run.count - 1;
      if ("seq" in point) {
        if (run.first > point.seq) lost += run.count;
        else if (last > point.seq) lost += last - point.seq;
      } else if (run.firstTime >= point.time) {
        lost += run.count;
      } else if (run.lastTime >= point.time) {
        // The point falls inside the run: its last message is after it, how many more is not recorded.
        lost += 1;
        atLeast = true;
      }
    }
    if (lost === 0) return undefined;
    // Every recorded run is after the point, and older drops were not recorded: there may be more.
    const oldest = this.runs[0]!;
    if (this.droppedTotal > recorded && isAfter(point, oldest.first, oldest.firstTime)) atLeast = true;
    return { subject: this.subject, lost, atLeast };
  }
}

export class History {
  readonly bounds: Readonly<HistoryBounds>;
  /** Every subject with a record, least recently published first (the subject bound's order). */
  readonly #subjects = new Map<string, SubjectHistory>();
  /** Subjects with at least one message, least recently published first (the byte bound's order). */
  readonly #withEntries = new Map<string, SubjectHistory>();
  #lastPublished: SubjectHistory | undefined;
  #bytes = 0;
  #count = 0;
  /** Messages after this are all known here, but for the drops each subject records. */
  readonly #knownAfter: { seq: number; time: number };
  /** The newest message of any subject forgotten whole: resuming from before it may have lost messages that cannot be counted. */
  #forgottenThrough = { seq: 0, time: 0 };
  readonly #changes: HistoryChanges | undefined;
  readonly #payloads: PayloadSource | undefined;

  /**
   * Without `payloads` (no store) every payload is copied and kept here. With
   * them, `changes` must write each message through and release its payload
   * once committed (durable-turn.ts): the history's bytes then live on disk.
   */
  constructor(bounds: HistoryBounds, knownAfter: { seq: number; time: number }, changes?: HistoryChanges, payloads?: PayloadSource) {
    this.bounds = Object.freeze({ ...bounds });
    this.#knownAfter = { ...knownAfter };
    this.#changes = changes;
    this.#payloads = payloads;
  }

  get size(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get subjectCount(): number {
    return this.#subjects.size;
  }

  /** Puts back what the store kept (messages in increasing seq), before any publish. */
  load(subjects: StoredSubject[], messages: StoredMessage[]): void {
    // From the store: already in it (settled), so dropping one later deletes it there; its payload is read back when asked for.
    const inStore = this.#payloads !== undefined;
    for (const s of subjects) {
      const record = new SubjectHistory(s.subject, s.n, SubjectHistory.decodeDropped(s.dropped));
      this.#subjects.set(s.subject, record);
    }
    for (const m of messages) {
      let record = this.#subjects.get(m.subject);
      if (record === undefined) {
        record = new SubjectHistory(m.subject, m.n);
        this.#subjects.set(m.subject, record);
      }
      record.n = Math.max(record.n, m.n);
      const size = entrySize(m.subject, m.payload);
      this.#add(record, { subject: m.subject, seq: m.seq, n: m.n, time: m.time, enc: m.enc, payload: inStore ? undefined : m.payload, size, settled: inStore });
    }
    // The store may hold more than today's bounds allow (they were lowered): apply them (and write that through).
    for (const record of this.#subjects.values()) this.#trimToBound(record);
    this.#evictPastBounds();
  }

  /** Adds a publish to its subject's history and applies the bounds. */
  append(subject: string, seq: number, time: number, payload: Uint8Array, enc: PayloadEncoding | undefined): HistoryEntry {
    let record = this.#subjects.get(subject);
    if (record === undefined) {
      record = new SubjectHistory(subject);
      this.#subjects.set(subject, record);
    } else if (this.#lastPublished !== record) {
      // Least recently published first: move to the end (skipped when the same subject publishes again).
      this.#subjects.delete(subject);
      this.#subjects.set(subject, record);
    }
    this.#lastPublished = record;
    record.n++;
    // Without a store, a copy: the payload may be a view into a whole read
    // chunk, which must not stay pinned. With one, the view until the commit.
    const entry: HistoryEntry = {
      subject,
      seq,
      n: record.n,
      time,
      enc,
      payload: this.#payloads === undefined ? new Uint8Array(payload) : payload,
      size: entrySize(subject, payload),
    };
    this.#add(record, entry);
    this.#changes?.appended(entry, record);
    this.#trimToBound(record);
    this.#evictPastBounds();
    return entry;
  }

  #add(record: SubjectHistory, entry: HistoryEntry): void {
    if (record.entries.length === 0) this.#withEntries.set(record.subject, record);
    else if (this.#withEntries.size > 1) {
      this.#withEntries.delete(record.subject);
      this.#withEntries.set(record.subject, record);
    }
    record.entries.push(entry);
    this.#bytes += entry.size;
    this.#count++;
  }

  #drop(record: SubjectHistory): void {
    const entry = record.dropOldest();
    this.#bytes -= entry.size;
    this.#count--;
    if (record.entries.length === 0) this.#withEntries.delete(record.subject);
    this.#changes?.dropped(entry, record);
  }

  #trimToBound(record: SubjectHistory): void {
    while (record.entries.length > this.bounds.perSubject) this.#drop(record);
  }

  #evictPastBounds(): void {
    while (this.#bytes > this.bounds.maxBytes && this.#withEntries.size > 0) {
      const record = this.#withEntries.values().next().value as SubjectHistory;
      this.#drop(record);
    }
    while (this.#subjects.size > this.bounds.maxSubjects) {
      const record = this.#subjects.values().next().value as SubjectHistory;
      this.#forget(record);
    }
  }

  #forget(record: SubjectHistory): void {
    this.#subjects.delete(record.subject);
    if (this.#lastPublished === record) this.#lastPublished = undefined;
    const last = record.entries.at(-1);
    const lastRun = record.runs.at(-1);
    const lastSeq = last?.seq ?? (lastRun === undefined ? 0 : lastRun.first + lastRun.count - 1);
    const lastTime = last?.time ?? lastRun?.lastTime ?? 0;
    this.#forgottenThrough = {
      seq: Math.max(this.#forgottenThrough.seq, lastSeq),
      time: Math.max(this.#forgottenThrough.time, lastTime),
    };
    for (const entry of record.entries) this.#bytes -= entry.size;
    this.#count -= record.entries.length;
    this.#withEntries.delete(record.subject);
    this.#changes?.forgotten(record.subject, record.entries);
  }

  /**
   * What a subscriber resuming from `point` on the subjects `matches` accepts
   * is owed: the gaps first, then the kept messages after the point, in
   * increasing seq (publish order).
   */
  resume(pattern: string, matches: (subject: string) => boolean, point: ResumePoint): { gaps: HistoryGap[]; messages: KeptMessage[] } {
    const gaps: HistoryGap[] = [];
    const unknownBefore = "seq" in point ? point.seq < this.#knownAfter.seq || point.seq < this.#forgottenThrough.seq : point.time < this.#knownAfter.time || point.time <= this.#forgottenThrough.time;
    if (unknownBefore) gaps.push({ subject: pattern, lost: undefined, atLeast: false });
    const messages: HistoryEntry[] = [];
    for (const record of this.#subjects.values()) {
      if (!matches(record.subject)) continue;
      const gap = record.lostAfter(point);
      if (gap !== undefined) gaps.push(gap);
      const entries = record.entries;
      // Entries are in increasing seq (and time): find the first after the point from the end.
      let i = entries.length;
      while (i > 0 && isAfter(point, entries[i - 1]!.seq, entries[i - 1]!.time)) i--;
      for (; i < entries.length; i++) messages.push(entries[i]!);
    }
    messages.sort((a, b) => a.seq - b.seq);
    return { gaps, messages: this.#withPayloads(messages) };
  }

  /** The entries with their payloads (read back from the store where released); one the store lost is left out. */
  #withPayloads(entries: HistoryEntry[]): KeptMessage[] {
    const out: KeptMessage[] = [];
    for (const e of entries) {
      const payload = e.payload ?? this.#payloads?.readPayload(e.seq);
      if (payload !== undefined) out.push({ subject: e.subject, seq: e.seq, n: e.n, time: e.time, enc: e.enc, payload });
    }
    return out;
  }

  /** Up to `limit` of the latest messages on the subjects `matches` accepts, oldest first. */
  latest(matches: (subject: string) => boolean, limit: number): KeptMessage[] {
    const found: HistoryEntry[] = [];
    for (const record of this.#subjects.values()) {
      if (!matches(record.subject)) continue;
      const entries = record.entries;
      for (let i = Math.max(0, entries.length - limit); i < entries.length; i++) found.push(entries[i]!);
    }
    found.sort((a, b) => a.seq - b.seq);
    return this.#withPayloads(found.length > limit ? found.slice(found.length - limit) : found);
  }
}
