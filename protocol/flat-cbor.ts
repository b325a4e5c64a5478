// The frames that carry traffic (`pub`, `msg`, `ok`, `dropped`…) are flat
// CBOR maps: text keys, scalar values. This file reads and writes exactly
// that subset by hand, in one pass and with no allocation beyond the result:
// cbor-x spends ~700 ns on such a map (measured in bench/README.md), most of
// it per-call set-up. Anything outside the subset (nested maps and arrays,
// tags, floats on decode, non-ASCII text on decode, indefinite lengths,
// trailing bytes) is left to cbor-x, so its results and its error messages
// stay what they were. The result is the same value cbor-x + normalise()
// would give; protocol/flat-cbor.test.ts checks that on random maps.

import { FRAME_HEADER_BYTES } from "./limits.js";
import type { DeliverMsg, PubOp } from "./messages.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_SAFE_BIG = BigInt(MAX_SAFE);
const U64_END = 1n << 64n;
const TWO_32 = 0x1_0000_0000;

// ---- reading ----

/**
 * Short ASCII strings seen before (keys, subjects), kept by a hash of their
 * bytes: a hit costs a compare instead of a new string. Direct-mapped and
 * fixed in size, so it never grows; a miss just replaces the slot.
 */
const INTERN_SLOTS = 256;
const INTERN_MAX_BYTES = 48;
const internBytes: Array<Uint8Array | undefined> = new Array(INTERN_SLOTS).fill(undefined);
const internStrings: string[] = new Array(INTERN_SLOTS).fill("");

/** ASCII text at buf[start, start+length), or undefined when a byte is not ASCII. */
function asciiText(buf: Uint8Array, start: number, length: number): string | undefined {
  if (length > INTERN_MAX_BYTES) {
    for (let i = start; i < start + length; i++) if (buf[i]! > 0x7f) return undefined;
    return Buffer.prototype.latin1Slice.call(buf, start, start + length) as string;
  }
  // A hash of a few bytes only; the compare below checks them all (and so
  // that they are ASCII, as every interned string is). Two strings that share
  // it evict each other, which costs a miss, never a wrong string.
  const last = start + length - 1;
  const slot = length === 0 ? 0 : (length * 7 + buf[start]! * 3 + buf[start + (length >> 1)]! * 5 + buf[start + (length >> 2)]! + buf[last]! * 11) & (INTERN_SLOTS - 1);
  const known = internBytes[slot];
  if (known !== undefined && known.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (known[i] !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return internStrings[slot];
  }
  for (let i = start; i < start + length; i++) if (buf[i]! > 0x7f) return undefined;
  const text = length === 0 ? "" : (Buffer.prototype.latin1Slice.call(buf, start, start + length) as string);
  internBytes[slot] = Uint8Array.prototype.slice.call(buf, start, start + length);
  internStrings[slot] = text;
  return text;
}

/**
 * The protocol's own field names, as literals: V8 stores a property fastest
 * under an internalized key, which a string made from bytes is not.
 */
const KNOWN_KEYS = [
  "op", "p", "id", "v", "seq", "sid", "subject", "enc", "reply", "queue", "retain", "timeout", "name", "state",
  "code", "reason", "count", "total", "found", "delivered", "slot", "hash", "replay", "peer", "server", "retained",
];
const knownKeyBytes = KNOWN_KEYS.map((key) => Buffer.from(key, "latin1"));
/**
 * Known keys by a hash of their length and first, middle and last bytes,
 * which no two of them share (checked here, at load): one table read and a
 * compare, no Map.
 */
const keyHash = (buf: Uint8Array, start: number, length: number): number =>
  (length + buf[start]! * 2 + buf[start + (length >> 1)]! * 5 + buf[start + length - 1]!) & 255;
const knownByHash = new Int8Array(256).fill(-1);
knownKeyBytes.forEach((bytes, i) => {
  const h = keyHash(bytes, 0, bytes.length);
  if (knownByHash[h] !== -1) throw new Error(`flat-cbor: keys "${KNOWN_KEYS[i]}" and "${KNOWN_KEYS[knownByHash[h]!]}" share a hash`);
  knownByHash[h] = i;
});

function knownKeyIndex(buf: Uint8Array, start: number, length: number): number {
  if (length === 0 || length > 16) return -1;
  const i = knownByHash[keyHash(buf, start, length)]!;
  if (i < 0) return -1;
  const bytes = knownKeyBytes[i]!;
  if (bytes.length !== length) return -1;
  for (let j = 0; j < length; j++) if (bytes[j] !== buf[start + j]) return -1;
  return i;
}

/** Where a head's argument ends, and its value; -1 for what this reader leaves to cbor-x. */
let argument = 0;
function readHead(buf: Uint8Array, pos: number, end: number): number {
  const info = buf[pos]! & 31;
  if (info < 24) {
    argument = info;
    return pos + 1;
  }
  if (info === 24) {
    if (pos + 2 > end) return -1;
    argument = buf[pos + 1]!;
    return pos + 2;
  }
  if (info === 25) {
    if (pos + 3 > end) return -1;
    argument = (buf[pos + 1]! << 8) | buf[pos + 2]!;
    return pos + 3;
  }
  if (info === 26) {
    if (pos + 5 > end) return -1;
    argument = buf[pos + 1]! * 0x100_0000 + ((buf[pos + 2]! << 16) | (buf[pos + 3]! << 8) | buf[pos + 4]!);
    return pos + 5;
  }
  if (info === 27) {
    if (pos + 9 > end) return -1;
    const high = buf[pos + 1]! * 0x100_0000 + ((buf[pos + 2]! << 16) | (buf[pos + 3]! << 8) | buf[pos + 4]!);
    const low = buf[pos + 5]! * 0x100_0000 + ((buf[pos + 6]! << 16) | (buf[pos + 7]! << 8) | buf[pos + 8]!);
    // Above 2^53 the value is exact only as a bigint: flagged with -1 for the caller.
    argument = high < 0x20_0000 ? high * TWO_32 + low : -1;
    if (argument === -1) bigArgument = (BigInt(high) << 32n) | BigInt(low);
    return pos + 9;
  }
  return -1;
}
let bigArgument = 0n;

/** The value readValue() read last. */
let scalar: unknown;

/** Reads one scalar at `pos` into `scalar`; returns where it ends, or -1 for what is left to cbor-x. */
function readValue(buf: Uint8Array, pos: number, end: number): number {
  if (pos >= end) return -1;
  const head = buf[pos]!;
  switch (head >> 5) {
    case 0:
      pos = readHead(buf, pos, end);
      if (pos < 0) return -1;
      scalar = argument < 0 ? bigArgument : argument;
      return pos;
    case 1:
      pos = readHead(buf, pos, end);
      if (pos < 0 || argument < 0 || argument >= MAX_SAFE) return -1;
      scalar = -1 - argument;
      return pos;
    case 2:
      pos = readHead(buf, pos, end);
      if (pos < 0 || argument < 0 || pos + argument > end) return -1;
      // A view, as cbor-x gives it; new Uint8Array would not be a Buffer.
      scalar = (buf as Buffer).subarray(pos, pos + argument);
      return pos + argument;
    case 3:
      pos = readHead(buf, pos, end);
      if (pos < 0 || argument < 0 || pos + argument > end) return -1;
      scalar = asciiText(buf, pos, argument);
      return scalar === undefined ? -1 : pos + argument;
    case 7:
      if (head === 0xf4) scalar = false;
      else if (head === 0xf5) scalar = true;
      else if (head === 0xf6) scalar = null;
      else if (head === 0xf7) scalar = undefined;
      else return -1;
      return pos + 1;
    default:
      return -1;
  }
}

/** Reads a key at `pos`: its index in KNOWN_KEYS into `keyIndex` (-1 for another), its text into `keyText`. */
let keyIndex = -1;
let keyText: string | undefined;
function readKey(buf: Uint8Array, pos: number, end: number): number {
  if (pos >= end || buf[pos]! >> 5 !== 3) return -1;
  pos = readHead(buf, pos, end);
  if (pos < 0 || argument < 0 || pos + argument > end) return -1;
  keyIndex = knownKeyIndex(buf, pos, argument);
  keyText = keyIndex >= 0 ? KNOWN_KEYS[keyIndex] : asciiText(buf, pos, argument);
  return keyText === undefined || keyText === "__proto__" ? -1 : pos + argument;
}

// Key indexes the traffic path reads into locals (positions in KNOWN_KEYS).
const K_OP = 0, K_P = 1, K_ID = 2, K_SEQ = 4, K_SID = 5, K_SUBJECT = 6, K_ENC = 7, K_REPLY = 8, K_QUEUE = 9, K_RETAIN = 10;
const K_RETAINED = KNOWN_KEYS.indexOf("retained");

/**
 * `msg` and `pub`, the frames that carry traffic, read into locals and built
 * as one object of a stable shape: V8 then needs no dictionary lookups, and a
 * delivery costs the message object and its payload view. Undefined for any
 * other frame, a field these ops do not have, a repeated field, or a
 * required one missing: the generic reader below takes those.
 */
function decodeTraffic(buf: Uint8Array, pos: number, count: number, end: number): Record<string, unknown> | undefined {
  let op: unknown, subject: unknown, p: unknown, seq: unknown, sid: unknown, id: unknown;
  let enc: unknown, reply: unknown, queue: unknown, retain: unknown, retained: unknown;
  let seen = 0;
  for (let i = 0; i < count; i++) {
    pos = readKey(buf, pos, end);
    if (pos < 0) return undefined;
    // The traffic fields are the first ones of KNOWN_KEYS, and "retained"; one bit each for repeats.
    const which = keyIndex === K_RETAINED ? K_RETAIN + 1 : keyIndex <= K_RETAIN ? keyIndex : -1;
    if (which < 0 || (seen & (1 << which)) !== 0) return undefined;
    seen |= 1 << which;
    pos = readValue(buf, pos, end);
    if (pos < 0) return undefined;
    switch (which) {
      case K_OP: op = scalar; break;
      case K_P: p = scalar; break;
      case K_ID: id = scalar; break;
      case K_SEQ: seq = scalar; break;
      case K_SID: sid = scalar; break;
      case K_SUBJECT: subject = scalar; break;
      case K_ENC: enc = scalar; break;
      case K_REPLY: reply = scalar; break;
      case K_QUEUE: queue = scalar; break;
      case K_RETAIN: retain = scalar; break;
      case K_RETAIN + 1: retained = scalar; break;
      default: return undefined;
    }
  }
  if (pos !== end || subject === undefined) return undefined;
  if (op === "msg") {
    if (p === undefined || seq === undefined || id !== undefined || retain !== undefined) return undefined;
    const msg: Record<string, unknown> = { op, subject, p, seq };
    if (enc !== undefined) msg["enc"] = enc;
    if (reply !== undefined) msg["reply"] = reply;
    if (sid !== undefined) msg["sid"] = sid;
    if (queue !== undefined) msg["queue"] = queue;
    if (retained !== undefined) msg["retained"] = retained;
    return msg;
  }
  if (op === "pub") {
    if (seq !== undefined || sid !== undefined || queue !== undefined || retained !== undefined) return undefined;
    const pub: Record<string, unknown> = { op, subject };
    if (p !== undefined) pub["p"] = p;
    if (enc !== undefined) pub["enc"] = enc;
    if (retain !== undefined) pub["retain"] = retain;
    if (reply !== undefined) pub["reply"] = reply;
    if (id !== undefined) pub["id"] = id;
    return pub;
  }
  return undefined;
}

/**
 * Reads the flat CBOR map at buf[start, end), or returns undefined for
 * anything outside the subset this file handles (then decode with cbor-x).
 * Byte strings are views of `buf`, as cbor-x gives them.
 */
export function decodeFlatMap(buf: Uint8Array, start: number, end: number): Record<string, unknown> | undefined {
  if (start >= end || buf[start]! >> 5 !== 5) return undefined;
  const first = readHead(buf, start, end);
  if (first < 0 || argument < 0) return undefined;
  const count = argument;
  const traffic = decodeTraffic(buf, first, count, end);
  if (traffic !== undefined) return traffic;
  let pos = first;
  const map: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    pos = readKey(buf, pos, end);
    if (pos < 0) return undefined;
    const key = keyText as string;
    pos = readValue(buf, pos, end);
    if (pos < 0) return undefined;
    map[key] = scalar;
  }
  return pos === end ? map : undefined;
}

// ---- writing ----

/** Bytes of a head whose argument is `n` (a non-negative integer). */
function headBytes(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x1_0000 ? 3 : n < TWO_32 ? 5 : 9;
}

function writeHead(out: Buffer, pos: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[pos] = m | n;
    return pos + 1;
  }
  if (n < 0x100) {
    out[pos] = m | 24;
    out[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x1_0000) {
    out[pos] = m | 25;
    out[pos + 1] = n >>> 8;
    out[pos + 2] = n & 0xff;
    return pos + 3;
  }
  if (n < TWO_32) {
    out[pos] = m | 26;
    out.writeUInt32BE(n, pos + 1);
    return pos + 5;
  }
  out[pos] = m | 27;
  out.writeUInt32BE(Math.floor(n / TWO_32), pos + 1);
  out.writeUInt32BE(n >>> 0, pos + 5);
  return pos + 9;
}

/** UTF-8 length of `text`; the ASCII case without a native call. */
function textBytes(text: string): number {
  if (text.length <= 64) {
    let i = 0;
    while (i < text.length && text.charCodeAt(i) < 0x80) i++;
    if (i === text.length) return text.length;
  }
  return Buffer.byteLength(text, "utf8");
}

function writeText(out: Buffer, pos: number, text: string, bytes: number): number {
  pos = writeHead(out, pos, 3, bytes);
  if (bytes === text.length && bytes <= 64) {
    for (let i = 0; i < bytes; i++) out[pos + i] = text.charCodeAt(i);
  } else {
    out.write(text, pos, bytes, "utf8");
  }
  return pos + bytes;
}

/** What a value costs on the wire, or -1 when it is not one this writer handles. */
function valueBytes(value: unknown): number {
  switch (typeof value) {
    case "string": {
      const bytes = textBytes(value);
      return headBytes(bytes) + bytes;
    }
    case "number":
      if (Number.isSafeInteger(value)) return headBytes(value < 0 ? -1 - value : value);
      return 9;
    case "bigint":
      return value >= 0n && value < U64_END ? (value <= MAX_SAFE_BIG ? headBytes(Number(value)) : 9) : -1;
    case "boolean":
    case "undefined":
      return 1;
    case "object":
      if (value === null) return 1;
      if (value instanceof Uint8Array) return headBytes(value.byteLength) + value.byteLength;
      return -1;
    default:
      return -1;
  }
}

function writeValue(out: Buffer, pos: number, value: unknown): number {
  switch (typeof value) {
    case "string":
      return writeText(out, pos, value, textBytes(value));
    case "number":
      if (Number.isSafeInteger(value)) return value < 0 ? writeHead(out, pos, 1, -1 - value) : writeHead(out, pos, 0, value);
      out[pos] = 0xfb;
      out.writeDoubleBE(value, pos + 1);
      return pos + 9;
    case "bigint":
      if (value <= MAX_SAFE_BIG) return writeHead(out, pos, 0, Number(value));
      out[pos] = 0x1b;
      out.writeBigUInt64BE(value, pos + 1);
      return pos + 9;
    case "boolean":
      out[pos] = value ? 0xf5 : 0xf4;
      return pos + 1;
    case "undefined":
      // As cbor-x writes it; readers take it as the field left out (docs/PROTOCOL.md §2).
      out[pos] = 0xf7;
      return pos + 1;
    default: {
      if (value === null) {
        out[pos] = 0xf6;
        return pos + 1;
      }
      const bytes = value as Uint8Array;
      pos = writeHead(out, pos, 2, bytes.byteLength);
      out.set(bytes, pos);
      return pos + bytes.byteLength;
    }
  }
}

/**
 * Encodes a flat message as a whole frame, the u32 length first, into one
 * buffer: a payload is copied once, straight into place. Undefined when the
 * message holds anything else (a nested map, an array…): use cbor-x then.
 */
export function encodeFlatFrame(message: object): Buffer | undefined {
  const fields = message as Record<string, unknown>;
  let size = 0;
  let count = 0;
  for (const key in fields) {
    const cost = valueBytes(fields[key]);
    if (cost < 0) return undefined;
    const keyBytes = textBytes(key);
    size += headBytes(keyBytes) + keyBytes + cost;
    count++;
  }
  size += headBytes(count);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
  out.writeUInt32BE(size, 0);
  let pos = writeHead(out, FRAME_HEADER_BYTES, 5, count);
  for (const key in fields) {
    pos = writeText(out, pos, key, textBytes(key));
    pos = writeValue(out, pos, fields[key]);
  }
  return out;
}

// ---- the two traffic frames, without the generic walk ----

/** A key as CBOR text, made once. */
function keyBytes(key: string): Buffer {
  const out = Buffer.allocUnsafe(headBytes(key.length) + key.length);
  writeText(out, 0, key, key.length);
  return out;
}
const OP_MSG = Buffer.concat([keyBytes("op"), keyBytes("msg")]);
const OP_PUB = Buffer.concat([keyBytes("op"), keyBytes("pub")]);
const KEY_SUBJECT = keyBytes("subject");
const KEY_P = keyBytes("p");
const KEY_SEQ = keyBytes("seq");
const KEY_ENC = keyBytes("enc");
const KEY_REPLY = keyBytes("reply");
const KEY_SID = keyBytes("sid");
const KEY_QUEUE = keyBytes("queue");
const KEY_RETAIN = keyBytes("retain");
const KEY_ID = keyBytes("id");
const KEY_RETAINED = keyBytes("retained");

function putKey(out: Buffer, pos: number, key: Buffer): number {
  for (let i = 0; i < key.length; i++) out[pos + i] = key[i]!;
  return pos + key.length;
}

/** Bytes of an optional text field, 0 when absent. */
function optionalTextSize(key: Buffer, value: string | undefined): number {
  if (value === undefined) return 0;
  const bytes = textBytes(value);
  return key.length + headBytes(bytes) + bytes;
}

function putOptionalText(out: Buffer, pos: number, key: Buffer, value: string | undefined): number {
  if (value === undefined) return pos;
  return writeText(out, putKey(out, pos, key), value, textBytes(value));
}

/** An unsigned integer field's value: a number, or a bigint for values above 2^53 (seq is passed so above 2^32, see wireUint). */
function uintSize(value: number | bigint): number {
  return typeof value === "number" ? headBytes(value) : valueBytes(value);
}

function putUint(out: Buffer, pos: number, value: number | bigint): number {
  return typeof value === "number" ? writeHead(out, pos, 0, value) : writeValue(out, pos, value);
}

/**
 * A `msg` frame, as encodeFrame() would write it minus fields left
 * undefined, with the payload copied once into place. The broker builds one
 * per publish and shares it between every plain subscriber.
 */
export function encodeMsgFrame(m: DeliverMsg): Buffer {
  const subject = m.subject;
  const p = m.p;
  const payloadBytes = p.byteLength;
  const subjectBytes = textBytes(subject);
  const seq = m.seq as number | bigint;
  const size =
    1 + OP_MSG.length +
    KEY_SUBJECT.length + headBytes(subjectBytes) + subjectBytes +
    KEY_P.length + headBytes(payloadBytes) + payloadBytes +
    KEY_SEQ.length + uintSize(seq) +
    optionalTextSize(KEY_ENC, m.enc) + optionalTextSize(KEY_REPLY, m.reply) +
    (m.sid === undefined ? 0 : KEY_SID.length + headBytes(m.sid)) + optionalTextSize(KEY_QUEUE, m.queue) +
    (m.retained === undefined ? 0 : KEY_RETAINED.length + 1);
  const count =
    4 + (m.enc === undefined ? 0 : 1) + (m.reply === undefined ? 0 : 1) + (m.sid === undefined ? 0 : 1) + (m.queue === undefined ? 0 : 1) + (m.retained === undefined ? 0 : 1);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
  out.writeUInt32BE(size, 0);
  out[FRAME_HEADER_BYTES] = 0xa0 | count;
  let pos = putKey(out, FRAME_HEADER_BYTES + 1, OP_MSG);
  pos = writeText(out, putKey(out, pos, KEY_SUBJECT), subject, subjectBytes);
  pos = writeHead(out, putKey(out, pos, KEY_P), 2, payloadBytes);
  out.set(p, pos);
  pos = putUint(out, putKey(out, pos + payloadBytes, KEY_SEQ), seq);
  pos = putOptionalText(out, pos, KEY_ENC, m.enc);
  pos = putOptionalText(out, pos, KEY_REPLY, m.reply);
  if (m.sid !== undefined) pos = writeHead(out, putKey(out, pos, KEY_SID), 0, m.sid);
  pos = putOptionalText(out, pos, KEY_QUEUE, m.queue);
  if (m.retained !== undefined) out[putKey(out, pos, KEY_RETAINED)] = m.retained ? 0xf5 : 0xf4;
  return out;
}

/** The whole size of `op`'s frame, length prefix included. */
export function pubFrameBytes(op: PubOp): number {
  const subjectBytes = textBytes(op.subject);
  return (
    FRAME_HEADER_BYTES + 1 + OP_PUB.length +
    KEY_SUBJECT.length + headBytes(subjectBytes) + subjectBytes +
    KEY_P.length + headBytes(op.p.byteLength) + op.p.byteLength +
    optionalTextSize(KEY_ENC, op.enc) + (op.retain === undefined ? 0 : KEY_RETAIN.length + 1) +
    optionalTextSize(KEY_REPLY, op.reply) + (op.id === undefined ? 0 : KEY_ID.length + headBytes(op.id))
  );
}

/**
 * Writes `op`'s frame (pubFrameBytes(op) bytes) at out[at]: a publisher
 * encodes straight into its connection's write buffer, with no frame object
 * in between.
 */
export function writePubFrame(op: PubOp, out: Buffer, at: number, frameBytes: number): void {
  const count = 3 + (op.enc === undefined ? 0 : 1) + (op.retain === undefined ? 0 : 1) + (op.reply === undefined ? 0 : 1) + (op.id === undefined ? 0 : 1);
  out.writeUInt32BE(frameBytes - FRAME_HEADER_BYTES, at);
  out[at + FRAME_HEADER_BYTES] = 0xa0 | count;
  let pos = putKey(out, at + FRAME_HEADER_BYTES + 1, OP_PUB);
  pos = writeText(out, putKey(out, pos, KEY_SUBJECT), op.subject, textBytes(op.subject));
  pos = writeHead(out, putKey(out, pos, KEY_P), 2, op.p.byteLength);
  out.set(op.p, pos);
  pos += op.p.byteLength;
  pos = putOptionalText(out, pos, KEY_ENC, op.enc);
  if (op.retain !== undefined) {
    pos = putKey(out, pos, KEY_RETAIN);
    out[pos++] = op.retain ? 0xf5 : 0xf4;
  }
  pos = putOptionalText(out, pos, KEY_REPLY, op.reply);
  if (op.id !== undefined) writeHead(out, putKey(out, pos, KEY_ID), 0, op.id);
}

/** A `pub` frame in a buffer of its own. */
export function encodePubFrame(op: PubOp): Buffer {
  const size = pubFrameBytes(op);
  const out = Buffer.allocUnsafe(size);
  writePubFrame(op, out, 0, size);
  return out;
}
