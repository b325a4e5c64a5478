// The last value of each subject published with `retain`, bounded both by
// entry count and by bytes; the least recently used entry goes first.
// Two orders, on purpose: eviction follows use (a write, or a `get`), replay
// follows publish order (docs/PROTOCOL.md §9.4), which is what a subscriber
// restoring state needs and which `seq` cannot give across subjects (§9.6).

import { LRUCache } from "lru-cache";
import type { PayloadEncoding } from "../../protocol/index.js";

export interface RetainedValue {
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly enc: PayloadEncoding | undefined;
  readonly seq: number;
}

// Counted against the byte bound besides the payload: the subject and the
// map overhead, so a flood of empty retained values is bounded too.
const ENTRY_OVERHEAD_BYTES = 64;

function entrySize(value: RetainedValue): number {
  return value.payload.byteLength + value.subject.length + ENTRY_OVERHEAD_BYTES;
}

export class RetainedStore {
  /** Recency for eviction and the byte count: `get` counts as a use. */
  readonly #values: LRUCache<string, RetainedValue>;
  /**
   * The same values in the order they were last retained: a Map keeps
   * insertion order, and a subject retained again is deleted and re-added,
   * so it moves to the end. Kept in step with #values by its dispose hook.
   */
  readonly #retainOrder = new Map<string, RetainedValue>();
  readonly maxEntries: number;
  readonly maxBytes: number;

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.#values = new LRUCache({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: entrySize,
      // Called synchronously for every value that leaves: evicted, deleted,
      // replaced, or refused for being bigger than the whole bound.
      dispose: (_value, subject) => this.#retainOrder.delete(subject),
    });
  }

  /** Keeps `value` as the subject's retained value; an empty payload clears it (as MQTT does). */
  put(value: RetainedValue): void {
    if (value.payload.byteLength === 0) {
      this.#values.delete(value.subject);
      return;
    }
    // The payload may be a view into a larger receive buffer: keep only its own bytes.
    const kept = { ...value, payload: Uint8Array.prototype.slice.call(value.payload) };
    this.#retainOrder.delete(value.subject);
    this.#values.set(value.subject, kept);
    // A value bigger than the whole byte bound is not kept (and its predecessor is gone).
    if (this.#values.has(value.subject)) this.#retainOrder.set(value.subject, kept);
  }

  /** The subject's value; counts as a use for eviction, leaves the replay order alone. */
  get(subject: string): RetainedValue | undefined {
    return this.#values.get(subject);
  }

  /** Retained values whose subject satisfies `matches`, in the order they were last retained (oldest first). */
  matching(matches: (subject: string) => boolean): RetainedValue[] {
    const found: RetainedValue[] = [];
    for (const value of this.#retainOrder.values()) if (matches(value.subject)) found.push(value);
    return found;
  }

  get count(): number {
    return this.#values.size;
  }

  get bytes(): number {
    return this.#values.calculatedSize;
  }
}
