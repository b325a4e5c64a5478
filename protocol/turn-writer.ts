// Writing frames to a stream socket with one syscall per event-loop turn, the
// same way on both sides (broker links and clients): what a turn produces for
// a socket is gathered and leaves in one write when the turn ends (a
// nextTick, never a timer), as NATS flushes once per read it processes. A
// lone frame waits only for the rest of the callback that made it. Small
// frames are copied into a slab (a copy of ~100 bytes costs far less than a
// stream write per frame); large ones are passed by reference, and a turn
// with both leaves as one writev. docs/PROTOCOL.md §2 says what a reader
// sees; §9.7 how the broker counts what waits here.

/** The part of a net.Socket a TurnWriter uses. */
export interface CorkableStream {
  readonly destroyed: boolean;
  readonly writableLength: number;
  readonly writableHighWaterMark: number;
  readonly writableNeedDrain: boolean;
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
}

/**
 * Frames given to write() up to this size are copied into the slab; larger
 * ones are already a buffer of their own and are written as they are (a
 * copy of a few KiB costs more than one more piece in the writev).
 */
const COPY_MAX_BYTES = 1024;
/** The most reserve() hands out: a frame encoded in place costs its one copy there. */
export const RESERVE_MAX_BYTES = 8 * 1024;
/**
 * A writer's slab starts small and doubles each time a turn fills it, up to
 * the most; an idle connection so holds at most MAX_SLAB_BYTES, a quiet one 4 KiB.
 */
const MIN_SLAB_BYTES = 4 * 1024;
const MAX_SLAB_BYTES = 64 * 1024;

/**
 * Work that must run before any bytes of this turn leave the process: a
 * broker's store commit (daemon/core/durable-turn.ts), so that no frame
 * reports a publish the store could still lose. Registered by its owner each
 * turn it has such work (one entry per broker in the process); the first
 * flush of any writer runs them all, once.
 */
let beforeFlush: Array<() => void> = [];

export function runBeforeNextFlush(work: () => void): void {
  beforeFlush.push(work);
}

export class TurnWriter {
  readonly #stream: CorkableStream;
  #slab: Buffer | undefined;
  /** Where the bytes gathered this turn start in the slab, and where they end. */
  #slabStart = 0;
  #slabUsed = 0;
  /** Sealed pieces of this turn, in order: slab regions and large frames. */
  #pieces: Uint8Array[] = [];
  #pendingBytes = 0;
  #turnScheduled = false;
  #roomWait: Promise<void> | undefined;
  readonly #endTurn = (): void => {
    this.#turnScheduled = false;
    this.flush();
  };

  constructor(stream: CorkableStream) {
    this.#stream = stream;
  }

  /** Bytes not yet taken by the kernel: gathered this turn, plus what the stream holds. */
  get bufferedBytes(): number {
    return this.#pendingBytes + this.#stream.writableLength;
  }

  /** Gathers `bytes` for this turn's write; false once past the stream's high-water mark (then see whenWritable()). */
  write(bytes: Uint8Array): boolean {
    const n = bytes.byteLength;
    if (n > COPY_MAX_BYTES) {
      this.#sealSlab();
      this.#pieces.push(bytes);
    } else {
      if (this.#slab === undefined || this.#slabUsed + n > this.#slab.length) this.#newSlab();
      this.#slab!.set(bytes, this.#slabUsed);
      this.#slabUsed += n;
    }
    this.#pendingBytes += n;
    this.#scheduleTurn();
    return this.belowMark;
  }

  #scheduleTurn(): void {
    if (this.#turnScheduled) return;
    this.#turnScheduled = true;
    process.nextTick(this.#endTurn);
  }

  #newSlab(): void {
    this.#sealSlab();
    const size = this.#slab === undefined ? MIN_SLAB_BYTES : Math.min(MAX_SLAB_BYTES, this.#slab.length * 2);
    this.#slab = Buffer.allocUnsafeSlow(size);
    this.#slabStart = 0;
    this.#slabUsed = 0;
  }

  /**
   * Room for `size` bytes (at most RESERVE_MAX_BYTES) in this turn's write:
   * returns where they start in `slab`, for the caller to fill at once. They
   * count as written. Lets an encoder write a frame in place.
   */
  reserve(size: number): number {
    if (this.#slab === undefined || this.#slabUsed + size > this.#slab.length) this.#newSlab();
    const at = this.#slabUsed;
    this.#slabUsed += size;
    this.#pendingBytes += size;
    this.#scheduleTurn();
    return at;
  }

  /** The buffer reserve() returned an offset into (valid until the next reserve or write). */
  get slab(): Buffer {
    return this.#slab as Buffer;
  }

  /** Whether the bytes written so far leave room below the stream's high-water mark. */
  get belowMark(): boolean {
    return this.bufferedBytes < this.#stream.writableHighWaterMark;
  }

  /** Writes what this turn gathered now (before an end(), or at the turn's end). */
  flush(): void {
    if (beforeFlush.length > 0) {
      const work = beforeFlush;
      beforeFlush = [];
      for (const w of work) w();
    }
    this.#sealSlab();
    const pieces = this.#pieces;
    if (pieces.length === 0) return;
    this.#pieces = [];
    this.#pendingBytes = 0;
    const stream = this.#stream;
    if (stream.destroyed) return;
    if (pieces.length === 1) {
      stream.write(pieces[0]!);
      return;
    }
    stream.cork();
    for (const piece of pieces) stream.write(piece);
    stream.uncork();
  }

  /**
   * Resolves once there is room again: at once when below the high-water
   * mark, else after this turn's write and the stream's "drain" (or close).
   * One wait shared by every caller, not a listener each.
   */
  whenWritable(): Promise<void> {
    if (this.bufferedBytes < this.#stream.writableHighWaterMark || this.#stream.destroyed) return Promise.resolve();
    this.#roomWait ??= new Promise<void>((resolve) => {
      const stream = this.#stream;
      const done = (): void => {
        stream.off("drain", done);
        stream.off("close", done);
        this.#roomWait = undefined;
        resolve();
      };
      // Waiting yields the turn, so the gathered bytes are written first; a
      // stream that then took them all without crossing its mark has no drain to give.
      process.nextTick(() => {
        if (!stream.writableNeedDrain || stream.destroyed) done();
        else {
          stream.once("drain", done);
          stream.once("close", done);
        }
      });
    });
    return this.#roomWait;
  }

  #sealSlab(): void {
    if (this.#slab === undefined || this.#slabUsed === this.#slabStart) return;
    // The region now belongs to the stream until written; later frames go after it.
    this.#pieces.push(this.#slab.subarray(this.#slabStart, this.#slabUsed));
    this.#slabStart = this.#slabUsed;
  }
}
