// Framing for stream transports: a u32 big-endian length, then that many bytes
// holding one CBOR map (docs/PROTOCOL.md, "Frames"). The decoder is
// incremental and allocation-light: it keeps a list of chunks and only copies
// when a frame straddles them.

import { Encoder, type Options } from "cbor-x";
import { FRAME_HEADER_BYTES } from "./limits.js";

// Plain CBOR only: no records extension (other clients would not read it),
// maps decode to objects, byte strings stay byte strings. Integers with an
// 8-byte argument decode to BigInt; normalise() turns those that fit in a
// double exactly back into numbers, so only true uint64 values (notification
// states above 2^53) stay BigInt.
const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  variableMapSize: true,
} as Options);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

function normalise(value: unknown, depth: number): unknown {
  if (typeof value === "bigint") return value <= MAX_SAFE && value >= MIN_SAFE ? Number(value) : value;
  if (depth > 8 || value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalise(value[i], depth + 1);
    return value;
  }
  const map = value as Record<string, unknown>;
  for (const key in map) {
    const field = map[key];
    if (typeof field === "bigint" || (typeof field === "object" && field !== null)) map[key] = normalise(field, depth + 1);
  }
  return map;
}

/**
 * CBOR-encodes one message and prefixes it with its length.
 * cbor-x writes numbers above 2^32 as floats; fields that may grow that large
 * (sequence numbers) are passed as BigInt so they go out as CBOR integers.
 */
export function encodeFrame(message: object): Buffer {
  const body = cbor.encode(message);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export type FrameFault =
  | { code: "frame_too_large"; reason: string }
  | { code: "bad_frame"; reason: string }
  | { code: "truncated_frame"; reason: string };

/** Decodes one frame body into a map, or says why it is not one. */
export function decodeFrameBody(body: Uint8Array): { message: Record<string, unknown> } | { fault: FrameFault } {
  let value: unknown;
  try {
    value = cbor.decode(body);
  } catch (error) {
    return { fault: { code: "bad_frame", reason: `the frame is not one well-formed CBOR item: ${(error as Error).message}` } };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array || value instanceof Date) {
    return { fault: { code: "bad_frame", reason: "a frame must hold a CBOR map" } };
  }
  return { message: normalise(value, 0) as Record<string, unknown> };
}

/**
 * Splits a byte stream into frames. `push()` returns every complete message,
 * or stops at the first fault: after a fault the stream cannot be resynchronised,
 * so the caller reports it and closes the connection.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet part of a complete frame. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer, onMessage: (message: Record<string, unknown>, frameBytes: number) => void): FrameFault | undefined {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (this.#buffered >= FRAME_HEADER_BYTES) {
      const length = this.#peekLength();
      if (length === 0) return { code: "bad_frame", reason: "a frame has length 0; a frame holds one CBOR map" };
      if (length > this.#maxFrameBytes) {
        return { code: "frame_too_large", reason: `frame of ${length} bytes is over the limit of ${this.#maxFrameBytes}` };
      }
      if (this.#buffered < FRAME_HEADER_BYTES + length) break;
      this.#consume(FRAME_HEADER_BYTES);
      const body = this.#consume(length);
      const decoded = decodeFrameBody(body);
      if ("fault" in decoded) return decoded.fault;
      onMessage(decoded.message, FRAME_HEADER_BYTES + length);
    }
    return undefined;
  }

  /** Called at end of stream: a partial frame left over means the peer stopped mid-frame. */
  end(): FrameFault | undefined {
    if (this.#buffered === 0) return undefined;
    return { code: "truncated_frame", reason: `the stream ended inside a frame (${this.#buffered} bytes of it received)` };
  }

  #peekLength(): number {
    const first = this.#chunks[0] as Buffer;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    return this.#peek(FRAME_HEADER_BYTES).readUInt32BE(0);
  }

  #peek(n: number): Buffer {
    const joined = Buffer.concat(this.#chunks);
    this.#chunks = [joined];
    return joined.subarray(0, n);
  }

  #consume(n: number): Buffer {
    const first = this.#chunks[0] as Buffer;
    this.#buffered -= n;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    // The frame spans chunks: join exactly what it needs, once.
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0] as Buffer;
      const take = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, take);
      filled += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    return out;
  }
}
