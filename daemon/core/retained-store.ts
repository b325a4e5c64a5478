// The last value of each subject published with `retain`, bounded by entry
// count and by bytes, in total and per publisher's uid. Nothing is ever
// evicted: a retained value is somebody's state, and one chatty app must not
// erase every other app's. A value that does not fit is refused (the publish
// gets `err retained_full`, docs/PROTOCOL.md §9.4) and what is kept stays.
// Per-uid bounds (dbus-broker's per-user quotas, for the same reason): one
// identity at its quota does not stop another from retaining. The broker's
// own uid (the owner's apps) is held to the totals only. Values are
// kept in the order they were last retained, which is the replay order
// (§9.4): a subject retained again moves to the end.

import type { PayloadEncoding } from "../../protocol/index.js";

export interface RetainedValue {
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly enc: PayloadEncoding | undefined;
  readonly seq: number;
}

export interface RetainedBounds {
  maxEntries: number;
  maxBytes: number;
  maxEntriesPerUid: number;
  maxBytesPerUid: number;
  /** A uid held to the totals only (the broker's own: the owner's apps), or none. */
  exemptUid?: number | undefined;
}

/** What one uid holds; `uid` null for peers whose uid is unknown (one shared account). */
export interface RetainedUse {
  uid: number | null;
  count: number;
  bytes: number;
}

// Counted against the byte bounds besides the payload: the subject and the
// map overhead, so a flood of small retained values is bounded too.
const ENTRY_OVERHEAD_BYTES = 64;

/** What one kept value or message counts against a byte bound (the history counts alike, history.ts). */
export function entrySize(subject: string, payload: Uint8Array): number {
  return payload.byteLength + subject.length + ENTRY_OVERHEAD_BYTES;
}

interface Kept {
  readonly value: RetainedValue;
  readonly owner: number | null;
  readonly size: number;
}

export class RetainedStore {
  /** In the order last retained: a Map keeps insertion order, and a re-retained subject is deleted and re-added. */
  readonly #values = new Map<string, Kept>();
  readonly #use = new Map<number | null, RetainedUse>();
  #bytes = 0;
  readonly bounds: Readonly<RetainedBounds>;

  constructor(bounds: RetainedBounds) {
    this.bounds = Object.freeze({ ...bounds });
  }

  get maxEntries(): number {
    return this.bounds.maxEntries;
  }

  get maxBytes(): number {
    return this.bounds.maxBytes;
  }

  /**
   * Why `payload` cannot become `subject`'s retained value for a publisher of
   * `owner`'s uid, or undefined when it fits. An empty payload clears and
   * always fits. The subject's current value counts as freed (it would be
   * replaced), and against its own owner's use.
   */
  refusal(subject: string, payload: Uint8Array, owner: number | null): string | undefined {
    if (payload.byteLength === 0) return undefined;
    const size = entrySize(subject, payload);
    const previous = this.#values.get(subject);
    const { maxEntries, maxBytes, maxEntriesPerUid, maxBytesPerUid } = this.bounds;
    const cap = owner !== null && owner === this.bounds.exemptUid ? maxBytes : Math.min(maxBytes, maxBytesPerUid);
    if (size > cap) {
      return `a retained value of ${size} bytes (payload, subject and 64) is larger than the whole retained space it may use (${cap} bytes)`;
    }
    const count = this.#values.size + (previous === undefined ? 1 : 0);
    const bytes = this.#bytes - (previous?.size ?? 0) + size;
    if (count > maxEntries || bytes > maxBytes) {
      return `the retained space is full (${this.#values.size} of ${maxEntries} values, ${this.#bytes} of ${maxBytes} bytes); nothing kept was dropped: clear values you no longer need (publish an empty payload with retain)`;
    }
    if (owner !== null && owner === this.bounds.exemptUid) return undefined;
    const use = this.#use.get(owner);
    const ownPrevious = previous !== undefined && previous.owner === owner ? previous : undefined;
    const ownCount = (use?.count ?? 0) + (ownPrevious === undefined ? 1 : 0);
    const ownBytes = (use?.bytes ?? 0) - (ownPrevious?.size ?? 0) + size;
    if (ownCount > maxEntriesPerUid || ownBytes > maxBytesPerUid) {
      return `uid ${owner ?? "(unknown)"} is at its retained quota (${use?.count ?? 0} of ${maxEntriesPerUid} values, ${use?.bytes ?? 0} of ${maxBytesPerUid} bytes); nothing kept was dropped: clear values you no longer need (publish an empty payload with retain)`;
    }
    return undefined;
  }

  /**
   * Keeps `value` as its subject's retained value, charged to `owner`; an
   * empty payload clears it (as MQTT does). The caller has checked refusal():
   * a value that does not fit is not kept, and false says so.
   */
  put(value: RetainedValue, owner: number | null): boolean {
    if (value.payload.byteLength === 0) {
      this.#forget(value.subject);
      return true;
    }
    if (this.refusal(value.subject, value.payload, owner) !== undefined) return false;
    // The payload may be a view into a larger receive buffer: keep only its own bytes.
    this.restore({ ...value, payload: Uint8Array.prototype.slice.call(value.payload) }, owner);
    return true;
  }

  /**
   * Puts back a value the store kept, whatever the bounds say now (they may
   * have been lowered since): a value once accepted is never dropped to fit.
   */
  restore(value: RetainedValue, owner: number | null): void {
    this.#forget(value.subject);
    const kept: Kept = { value, owner, size: entrySize(value.subject, value.payload) };
    this.#values.set(value.subject, kept);
    this.#bytes += kept.size;
    const use = this.#use.get(owner) ?? { uid: owner, count: 0, bytes: 0 };
    use.count++;
    use.bytes += kept.size;
    this.#use.set(owner, use);
  }

  get(subject: string): RetainedValue | undefined {
    return this.#values.get(subject)?.value;
  }

  /** Retained values whose subject satisfies `matches`, in the order they were last retained (oldest first). */
  matching(matches: (subject: string) => boolean): RetainedValue[] {
    const found: RetainedValue[] = [];
    for (const { value } of this.#values.values()) if (matches(value.subject)) found.push(value);
    return found;
  }

  get count(): number {
    return this.#values.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** What each uid holds, for `status`, the largest first. */
  use(): RetainedUse[] {
    return [...this.#use.values()].map((u) => ({ ...u })).sort((a, b) => b.bytes - a.bytes);
  }

  #forget(subject: string): void {
    const kept = this.#values.get(subject);
    if (kept === undefined) return;
    this.#values.delete(subject);
    this.#bytes -= kept.size;
    const use = this.#use.get(kept.owner);
    if (use === undefined) return;
    use.count--;
    use.bytes -= kept.size;
    if (use.count === 0) this.#use.delete(kept.owner);
  }
}
