// Framing for stream transports: a u32 big-endian length, then that many bytes
// holding one CBOR map (docs/PROTOCOL.md, "Frames"). The decoder is
// incremental and allocation-light: it keeps a list of chunks and only copies
// when a frame straddles them.

import { Encoder, type Options } from "cbor-x";
import { FRAME_HEADER_BYTES } from "./limits.js";
import { decodeFlatMap, encodeFlatFrame, encodeMsgFrame, encodePubFrame } from "./flat-cbor.js";
import type { DeliverMsg, PubOp } from "./messages.js";

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

// Each traffic field and the type it must have for the dedicated writers.
const MSG_FIELDS: Record<string, (v: unknown) => boolean> = {
  op: () => true,
  subject: (v) => typeof v === "string",
  p: (v) => v instanceof Uint8Array,
  seq: (v) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) || typeof v === "bigint",
  enc: (v) => v === undefined || typeof v === "string",
  reply: (v) => v === undefined || typeof v === "string",
  sid: (v) => v === undefined || (typeof v === "number" && Number.isSafeInteger(v) && v >= 0),
  queue: (v) => v === undefined || typeof v === "string",
  retained: (v) => v === undefined || typeof v === "boolean",
};
const PUB_FIELDS: Record<string, (v: unknown) => boolean> = {
  op: () => true,
  subject: (v) => typeof v === "string",
  p: (v) => v instanceof Uint8Array,
  enc: (v) => v === undefined || typeof v === "string",
  retain: (v) => v === undefined || typeof v === "boolean",
  reply: (v) => v === undefined || typeof v === "string",
  id: (v) => v === undefined || (typeof v === "number" && Number.isSafeInteger(v) && v >= 0),
};

/** Whether `op` is a `pub` exactly as its type says, so writePubFrame() can write it. */
export function isWellTypedPub(op: object): op is PubOp {
  return (op as { op?: unknown }).op === "pub" && isExactly(op, PUB_FIELDS);
}

/** Whether every field of `message` is one of `fields`, of its type, and the required ones are there. */
function isExactly(message: object, fields: Record<string, (v: unknown) => boolean>): boolean {
  const m = message as Record<string, unknown>;
  if (m["subject"] === undefined || m["p"] === undefined) return false;
  for (const key in m) {
    const check = fields[key];
    if (check === undefined || !check(m[key])) return false;
  }
  return true;
}

/**
 * CBOR-encodes one message and prefixes it with its length. Flat messages
 * (every frame that carries traffic) go through protocol/flat-cbor.ts, in one
 * buffer; the rest through cbor-x. cbor-x writes numbers above 2^32 as
 * floats; fields that may grow that large (sequence numbers) are passed as
 * BigInt so they go out as CBOR integers either way.
 */
export function encodeFrame(message: object): Buffer {
  const op = (message as { op?: unknown }).op;
  // The two traffic frames, when they are exactly what their type says (the broker's and the SDK's own).
  if (op === "msg" && (message as DeliverMsg).seq !== undefined && isExactly(message, MSG_FIELDS)) return encodeMsgFrame(message as DeliverMsg);
  if (op === "pub" && isExactly(message, PUB_FIELDS)) return encodePubFrame(message as PubOp);
  const flat = encodeFlatFrame(message);
  if (flat !== undefined) return flat;
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

/** Reads buf[start, end) as one frame body: the flat fast path, else cbor-x. */
function decodeBodyAt(buf: Buffer, start: number, end: number): { message: Record<string, unknown> } | { fault: FrameFault } {
  const flat = decodeFlatMap(buf, start, end);
  if (flat !== undefined) return { message: flat };
  return decodeFrameBody(buf.subarray(start, end));
}

/**
 * Splits a byte stream into frames. `push()` hands over every complete
 * message of a chunk in one pass, read in place, or stops at the first
 * fault: after a fault the stream cannot be resynchronised, so the caller
 * reports it and closes the connection. Only a frame cut by a chunk boundary
 * is copied, once, when its last byte arrives.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  /** Bytes of a frame cut by the end of a chunk, in arrival order. */
  #partial: Buffer[] = [];
  #buffered = 0;
  /** The cut frame's total size (header included) once its header is known, else 0. */
  #partialNeeds = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet part of a complete frame. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer, onMessage: (message: Record<string, unknown>, frameBytes: number) => void): FrameFault | undefined {
    let buf = chunk;
    let pos = 0;
    if (this.#buffered > 0) {
      const joined = this.#completePartial(chunk);
      if (joined === undefined) return this.#partialNeeds < 0 ? this.#lengthFault() : undefined;
      // The cut frame is whole: read it, then go on with the rest of the chunk.
      const fault = this.#emit(joined.frame, 0, joined.frame.length, onMessage);
      if (fault !== undefined) return fault;
      pos = joined.used;
    }
    const end = buf.length;
    while (end - pos >= FRAME_HEADER_BYTES) {
      const length = buf.readUInt32BE(pos);
      const fault = this.#checkLength(length);
      if (fault !== undefined) return fault;
      const frameEnd = pos + FRAME_HEADER_BYTES + length;
      if (frameEnd > end) break;
      const emitted = this.#emit(buf, pos, frameEnd, onMessage);
      if (emitted !== undefined) return emitted;
      pos = frameEnd;
    }
    if (pos < end) {
      buf = pos === 0 ? buf : buf.subarray(pos);
      this.#partial.push(buf);
      this.#buffered = buf.length;
      this.#partialNeeds = buf.length >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + buf.readUInt32BE(0) : 0;
    }
    return undefined;
  }

  /** Called at end of stream: a partial frame left over means the peer stopped mid-frame. */
  end(): FrameFault | undefined {
    if (this.#buffered === 0) return undefined;
    return { code: "truncated_frame", reason: `the stream ended inside a frame (${this.#buffered} bytes of it received)` };
  }

  #checkLength(length: number): FrameFault | undefined {
    if (length === 0) return { code: "bad_frame", reason: "a frame has length 0; a frame holds one CBOR map" };
    if (length > this.#maxFrameBytes) {
      return { code: "frame_too_large", reason: `frame of ${length} bytes is over the limit of ${this.#maxFrameBytes}` };
    }
    return undefined;
  }

  #lengthFault(): FrameFault | undefined {
    const first = this.#partial.length === 1 ? (this.#partial[0] as Buffer) : Buffer.concat(this.#partial);
    return this.#checkLength(first.readUInt32BE(0));
  }

  #emit(buf: Buffer, start: number, end: number, onMessage: (message: Record<string, unknown>, frameBytes: number) => void): FrameFault | undefined {
    const decoded = decodeBodyAt(buf, start + FRAME_HEADER_BYTES, end);
    if ("fault" in decoded) return decoded.fault;
    onMessage(decoded.message, end - start);
    return undefined;
  }

  /**
   * Adds `chunk` to the cut frame. Returns the frame once whole (and how much
   * of `chunk` it used), undefined while more is needed; sets #partialNeeds
   * to -1 when the frame's length is one the decoder refuses.
   */
  #completePartial(chunk: Buffer): { frame: Buffer; used: number } | undefined {
    if (this.#partialNeeds === 0) {
      // The header itself was cut: take just enough of this chunk to read it.
      const missing = FRAME_HEADER_BYTES - this.#buffered;
      if (chunk.length < missing) {
        this.#partial.push(chunk);
        this.#buffered += chunk.length;
        return undefined;
      }
      const header = Buffer.concat([...this.#partial, chunk.subarray(0, missing)]);
      const length = header.readUInt32BE(0);
      if (this.#checkLength(length) !== undefined) {
        this.#partial = [header];
        this.#partialNeeds = -1;
        return undefined;
      }
      this.#partialNeeds = FRAME_HEADER_BYTES + length;
    }
    const needed = this.#partialNeeds - this.#buffered;
    if (chunk.length < needed) {
      this.#partial.push(chunk);
      this.#buffered += chunk.length;
      return undefined;
    }
    const frame = Buffer.allocUnsafe(this.#partialNeeds);
    let filled = 0;
    for (const part of this.#partial) {
      part.copy(frame, filled);
      filled += part.length;
    }
    chunk.copy(frame, filled, 0, needed);
    this.#partial = [];
    this.#buffered = 0;
    this.#partialNeeds = 0;
    return { frame, used: needed };
  }
}
