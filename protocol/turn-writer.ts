// Writing frames to a stream socket without a syscall per frame and without
// added latency, the same way on both sides (broker links and clients): the
// first write of an event-loop turn goes out at once, so a lone frame waits
// for nothing; the socket is then corked until the turn ends (a nextTick,
// never a timer), so whatever else the turn produces for that socket leaves in
// one writev. Corked bytes count in writableLength like any the socket holds,
// so high-water checks and "drain" work as before. NATS flushes once per read
// for the same reason (docs/PROTOCOL.md §9.7 for the broker's accounting).

/** The part of a net.Socket a TurnWriter uses. */
export interface CorkableStream {
  readonly destroyed: boolean;
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
}

export class TurnWriter {
  readonly #stream: CorkableStream;
  /** Something was written this turn: the stream is corked until the turn ends. */
  #inTurn = false;
  readonly #endTurn = (): void => {
    this.#inTurn = false;
    if (!this.#stream.destroyed) this.#stream.uncork();
  };

  constructor(stream: CorkableStream) {
    this.#stream = stream;
  }

  /** Writes `bytes`; returns the stream's answer (false: past its high-water mark). */
  write(bytes: Uint8Array): boolean {
    const belowMark = this.#stream.write(bytes);
    if (!this.#inTurn) {
      this.#inTurn = true;
      this.#stream.cork();
      process.nextTick(this.#endTurn);
    }
    return belowMark;
  }
}
