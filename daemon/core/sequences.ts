// Sequence numbers that only grow, also across broker restarts: one counter
// for the whole broker, so a number says where a publish stands among all
// publishes, of every subject. They become a notify(3) name's 64-bit state,
// a client that remembers "last seen 41" must never be shown 41 again by a
// restarted broker, and one number is enough to resume a subscription on
// many subjects (`sub` with `since`, docs/PROTOCOL.md §9.6).
//
// The core touches no files, so durability is a `SequenceFloor` given by the
// daemon: it says the lowest value a fresh broker may issue, and is told,
// ahead of time, the highest value the broker might issue ("reservation").
// After a crash the next broker starts above every reservation, hence above
// every value ever issued.

import { LRUCache } from "lru-cache";

export interface SequenceFloor {
  /** Every value issued from now on is greater than this. */
  readonly floor: number;
  /** Promise durably that no value above `upTo` will be issued before the next reserve. */
  reserve(upTo: number): void;
}

/** How far ahead of the highest issued value a reservation reaches: one durable write per this many publishes. */
export const SEQUENCE_RESERVATION_BLOCK = 1 << 20;

/** A floor that is not durable: for brokers embedded in tests or in one process's lifetime. */
export function volatileSequenceFloor(floor = 0): SequenceFloor {
  return { floor, reserve() {} };
}

export class Sequences {
  readonly #floor: SequenceFloor;
  // Each subject's last value, for `state`, notify and `status`: a subject
  // evicted from here reads 0 until its next publish. Each value sits in a
  // holder, so a publish costs one cache lookup (which also marks it
  // recently used) and no second write into the cache.
  readonly #last: LRUCache<string, { value: number; count: number }>;
  #highest: number;
  #reserved: number;

  constructor(floor: SequenceFloor, maxTrackedSubjects: number) {
    this.#floor = floor;
    this.#last = new LRUCache({ max: maxTrackedSubjects });
    this.#highest = floor.floor;
    this.#reserved = floor.floor;
    this.#reserveFrom(floor.floor);
  }

  /** The last value issued for `subject`, or 0 if none since this broker started. */
  current(subject: string): number {
    return this.#last.get(subject)?.value ?? 0;
  }

  /** The highest value issued so far (the floor before the first). */
  get highest(): number {
    return this.#highest;
  }

  next(subject: string): number {
    const held = this.#last.get(subject);
    const value = ++this.#highest;
    if (value > this.#reserved) this.#reserveFrom(value);
    if (held !== undefined) {
      held.value = value;
      held.count++;
    } else {
      this.#last.set(subject, { value, count: 1 });
    }
    return value;
  }

  /** Remembers `subject`'s last value from before this broker started (the store's), without issuing one. */
  seed(subject: string, value: number): void {
    const held = this.#last.get(subject);
    if (held === undefined) this.#last.set(subject, { value, count: 0 });
    else if (value > held.value) held.value = value;
  }

  /** Subjects tracked (at most maxTrackedSubjects). */
  get size(): number {
    return this.#last.size;
  }

  /** Up to `limit` subjects, most recently published first: the last value and the publishes counted since tracked. */
  recent(limit: number): Array<{ subject: string; seq: number; messages: number }> {
    const out: Array<{ subject: string; seq: number; messages: number }> = [];
    for (const [subject, held] of this.#last.entries()) {
      if (out.length >= limit) break;
      out.push({ subject, seq: held.value, messages: held.count });
    }
    return out;
  }

  #reserveFrom(value: number): void {
    const upTo = value + SEQUENCE_RESERVATION_BLOCK;
    this.#floor.reserve(upTo);
    this.#reserved = upTo;
  }
}
