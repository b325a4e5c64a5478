// The last value of each subject published with `retain`, bounded both by
// entry count and by bytes; the least recently used entry goes first.

import { LRUCache } from "lru-cache";
import type { PayloadEncoding } from "../../client-sdk/protocol/messages.js";

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
  readonly #values: LRUCache<string, RetainedValue>;
  readonly maxEntries: number;
  readonly maxBytes: number;

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.#values = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: entrySize });
  }

  /** Keeps `value` as the subject's retained value; an empty payload clears it (as MQTT does). */
  put(value: RetainedValue): void {
    if (value.payload.byteLength === 0) {
      this.#values.delete(value.subject);
      return;
    }
    // The payload may be a view into a larger receive buffer: keep only its own bytes.
    const payload = Uint8Array.prototype.slice.call(value.payload);
    this.#values.set(value.subject, { ...value, payload });
  }

  get(subject: string): RetainedValue | undefined {
    return this.#values.get(subject);
  }

  /** Retained values whose subject satisfies `matches`, in publish order (by seq). */
  matching(matches: (subject: string) => boolean): RetainedValue[] {
    const found: RetainedValue[] = [];
    for (const value of this.#values.values()) if (value !== undefined && matches(value.subject)) found.push(value);
    return found.sort((a, b) => a.seq - b.seq);
  }

  get count(): number {
    return this.#values.size;
  }

  get bytes(): number {
    return this.#values.calculatedSize;
  }
}
