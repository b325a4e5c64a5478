// How messages are printed: one line each, text by default, JSON lines with
// --json. Bytes are shown as base64, and a text payload with a line break (or
// another control character) as a JSON string, so one message is always one
// line and never breaks a terminal or a pipe.

import type { Payload, PayloadEncoding } from "../../protocol/index.js";
import { CliError } from "./cli-error.js";
import { EXIT_USAGE } from "./exit-codes.js";

/** One item of the CLI's data on stdout (diagnostics go to stderr). */
export function printLine(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

export interface Printable {
  subject: string;
  data: Payload;
  encoding: PayloadEncoding;
  seq: number;
}

export function payloadText(data: Payload, encoding: PayloadEncoding): string {
  if (encoding === "text" && typeof data === "string") return data;
  if (data instanceof Uint8Array) return `base64:${Buffer.from(data).toString("base64")}`;
  return JSON.stringify(data);
}

/**
 * Control characters that would split a line or drive the terminal: C0 but
 * tab, as JSON.stringify escapes them ("\n", "\r", "\u001b").
 */
const LINE_BREAKING = /[\u0000-\u0008\u000a-\u001f]/;

/**
 * A payload as one line: as payloadText, but a text with a line break or
 * another control character is printed as a JSON string ("a\nb" in quotes),
 * so `sub` and `watch` print exactly one line per message.
 */
export function payloadLine(data: Payload, encoding: PayloadEncoding): string {
  const text = payloadText(data, encoding);
  return encoding === "text" && LINE_BREAKING.test(text) ? JSON.stringify(text) : text;
}

export function payloadJson(data: Payload): unknown {
  return data instanceof Uint8Array ? { base64: Buffer.from(data).toString("base64") } : data;
}

export function messageLine(message: Printable, json: boolean): string {
  if (json) {
    return JSON.stringify({ subject: message.subject, seq: message.seq, encoding: message.encoding, data: payloadJson(message.data) });
  }
  return `${message.subject} ${payloadLine(message.data, message.encoding)}`;
}

/** Parses the data argument of pub/req: text as is, or a JSON value with --json. */
export function parseData(text: string | undefined, json: boolean): unknown {
  if (text === undefined) return json ? null : "";
  if (!json) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CliError(`--json data is not valid JSON: ${(error as Error).message}`, EXIT_USAGE);
  }
}
