// Payloads travel as bytes plus an encoding tag, so a receiver in any language
// gets back what was sent: bytes as bytes, a string as a string, a JSON-able
// value as that value (docs/PROTOCOL.md, "Payload encodings").

import { InvalidArgumentError } from "./errors.js";
import type { PayloadEncoding } from "./messages.js";

/** What an application may publish. */
export type Payload = Uint8Array | string | JsonValue;
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface EncodedPayload {
  bytes: Uint8Array;
  enc: PayloadEncoding;
}

const EMPTY = new Uint8Array(0);

export function encodePayload(data: unknown): EncodedPayload {
  if (data === undefined) return { bytes: EMPTY, enc: "bytes" };
  if (data instanceof Uint8Array) return { bytes: data, enc: "bytes" };
  if (typeof data === "string") return { bytes: Buffer.from(data, "utf8"), enc: "text" };
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch (error) {
    throw new InvalidArgumentError(`payload cannot be encoded as JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw new InvalidArgumentError(`payload of type ${typeof data} cannot be encoded as JSON`);
  return { bytes: Buffer.from(text, "utf8"), enc: "json" };
}

/**
 * Turns received bytes back into the value that was published. A JSON payload
 * that does not parse is returned as its text rather than thrown: the data
 * came from another peer, and losing it would be worse than its wrong tag.
 */
export function decodePayload(bytes: Uint8Array, enc: PayloadEncoding | undefined): Payload {
  if (enc === "text") return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  if (enc === "json") {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    try {
      return JSON.parse(text) as JsonValue;
    } catch {
      return text;
    }
  }
  return bytes;
}
