// What a stream peer is owed beyond what its socket has taken: frames in the
// order the broker produced them, the oldest `msg` frames droppable for a slow
// reader, answers never. docs/PROTOCOL.md §9.7 is the contract it keeps.
//
// Memory is what the bound says. Queued frames are copied into slabs, so a
// small frame does not pin a shared 8 KiB pool buffer or cost a few hundred
// bytes of object overhead per frame; a frame that is sent or dropped frees its
// bytes as soon as the rest of its slab does, and a slab holds at most
// SLAB_BYTES. Messages and answers sit in two FIFOs stamped with one counter,
// so dropping the oldest messages never walks past answers, and writing out
// merges the two back into production order.

/**
 * Size of the buffers queued frames are copied into: the first slab of a
 * backlog is small (a peer that is briefly behind costs little), each next one
 * twice the last up to the most; a larger frame gets a slab of its own.
 */
export const MIN_SLAB_BYTES = 4 * 1024;
export const SLAB_BYTES = 64 * 1024;

interface Slab {
  readonly bytes: Buffer;
  /** Bytes written into it so far. */
  used: number;
  /** Frames in it not yet taken out. */
  frames: number;
}

/** One FIFO of frames, packed into slabs. */
class SlabFifo {
  readonly #slabs: Slab[] = [];
  #slabHead = 0;
  /** Per frame, oldest first from #frameHead: its length and its production stamp. */
  #lengths: number[] = [];
  #stamps: number[] = [];
  #frameHead = 0;
  /** Where the oldest frame starts in the oldest slab. */
  #offset = 0;
  #nextSlabBytes = MIN_SLAB_BYTES;
  bytes = 0;

  get size(): number {
    return this.#lengths.length - this.#frameHead;
  }

  /** Stamp of the oldest frame (Infinity when empty). */
  get headStamp(): number {
    return this.size === 0 ? Infinity : (this.#stamps[this.#frameHead] as number);
  }

  push(frame: Uint8Array, stamp: number): void {
    let tail = this.#slabs.length > this.#slabHead ? this.#slabs[this.#slabs.length - 1] : undefined;
    if (tail === undefined || tail.bytes.length - tail.used < frame.length) {
      tail = { bytes: Buffer.allocUnsafeSlow(Math.max(this.#nextSlabBytes, frame.length)), used: 0, frames: 0 };
      this.#nextSlabBytes = Math.min(SLAB_BYTES, this.#nextSlabBytes * 2);
      this.#slabs.push(tail);
    }
    tail.bytes.set(frame, tail.used);
    tail.used += frame.length;
    tail.frames++;
    this.#lengths.push(frame.length);
    this.#stamps.push(stamp);
    this.bytes += frame.length;
  }

  /**
   * Takes out the oldest frames, as long as they sit in one slab, their stamps
   * are below `beforeStamp` and they add up to at most `maxBytes` (at least one
   * frame is taken). Returns a view of their bytes, or undefined when empty.
   */
  take(beforeStamp: number, maxBytes: number): Buffer | undefined {
    if (this.size === 0) return undefined;
    const slab = this.#slabs[this.#slabHead] as Slab;
    const start = this.#offset;
    let end = start;
    let taken = 0;
    while (taken < slab.frames && this.#frameHead < this.#lengths.length) {
      const length = this.#lengths[this.#frameHead] as number;
      if (taken > 0 && ((this.#stamps[this.#frameHead] as number) >= beforeStamp || end - start + length > maxBytes)) break;
      end += length;
      taken++;
      this.#frameHead++;
    }
    const view = slab.bytes.subarray(start, end);
    this.#consumed(slab, taken, end - start);
    return view;
  }

  /** Drops the oldest frames until `bytes` are freed or none are left; returns how many. */
  drop(bytes: number): number {
    let freed = 0;
    let count = 0;
    while (freed < bytes && this.size > 0) {
      const slab = this.#slabs[this.#slabHead] as Slab;
      const length = this.#lengths[this.#frameHead] as number;
      this.#frameHead++;
      freed += length;
      count++;
      this.#consumed(slab, 1, length);
    }
    return count;
  }

  #consumed(slab: Slab, frames: number, length: number): void {
    this.bytes -= length;
    slab.frames -= frames;
    this.#offset += length;
    if (slab.frames === 0) {
      // The slab is never written again: the socket may still hold views of it.
      this.#slabs[this.#slabHead++] = undefined as unknown as Slab;
      this.#offset = 0;
    }
    this.#compact();
  }

  #compact(): void {
    if (this.size === 0) {
      this.#nextSlabBytes = MIN_SLAB_BYTES;
      this.#lengths = [];
      this.#stamps = [];
      this.#frameHead = 0;
    } else if (this.#frameHead > 4096 && this.#frameHead * 2 > this.#lengths.length) {
      this.#lengths = this.#lengths.slice(this.#frameHead);
      this.#stamps = this.#stamps.slice(this.#frameHead);
      this.#frameHead = 0;
    }
    if (this.#slabHead === this.#slabs.length) {
      this.#slabs.length = 0;
      this.#slabHead = 0;
    } else if (this.#slabHead > 64 && this.#slabHead * 2 > this.#slabs.length) {
      this.#slabs.splice(0, this.#slabHead);
      this.#slabHead = 0;
    }
  }
}

export class OutboundQueue {
  readonly #messages = new SlabFifo();
  readonly #answers = new SlabFifo();
  readonly #encodeDropped: (count: number, total: number) => Buffer;
  #stamp = 0;
  /** Messages dropped since the last `dropped` notice was handed out. */
  #unreported = 0;
  /** Messages dropped over the connection's life. */
  droppedTotal = 0;

  /** `encodeDropped` frames the notice that tells the peer what it lost. */
  constructor(encodeDropped: (count: number, total: number) => Buffer) {
    this.#encodeDropped = encodeDropped;
  }

  /** Bytes of `msg` frames waiting: what docs/PROTOCOL.md §9.7's bound counts. */
  get messageBytes(): number {
    return this.#messages.bytes;
  }

  /** Bytes of answers (everything but `msg`) waiting; they are never dropped. */
  get answerBytes(): number {
    return this.#answers.bytes;
  }

  get isEmpty(): boolean {
    return this.#messages.size === 0 && this.#answers.size === 0 && this.#unreported === 0;
  }

  push(frame: Uint8Array, droppable: boolean): void {
    (droppable ? this.#messages : this.#answers).push(frame, this.#stamp++);
  }

  /** Drops the oldest messages until `bytes` are freed; they are reported by one notice, taken out next. */
  dropOldest(bytes: number): number {
    const count = this.#messages.drop(bytes);
    this.#unreported += count;
    this.droppedTotal += count;
    return count;
  }

  /**
   * The next bytes to write, up to about `maxBytes`: first the notice of what
   * was dropped (the peer learns of a gap before what follows it), then frames
   * in the order they were produced. Undefined when nothing waits.
   */
  take(maxBytes: number): Buffer | undefined {
    if (this.#unreported > 0) {
      const notice = this.#encodeDropped(this.#unreported, this.droppedTotal);
      this.#unreported = 0;
      return notice;
    }
    const messagesFirst = this.#messages.headStamp < this.#answers.headStamp;
    const [from, other] = messagesFirst ? [this.#messages, this.#answers] : [this.#answers, this.#messages];
    return from.take(other.headStamp, maxBytes);
  }
}
