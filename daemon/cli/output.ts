// How messages are printed: one line each, text by default, JSON lines with
// --json. Bytes are shown as base64 so a line never breaks a terminal or a pipe.

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

function payloadJson(data: Payload): unknown {
  return data instanceof Uint8Array ? { base64: Buffer.from(data).toString("base64") } : data;
}

export function messageLine(message: Printable, json: boolean): string {
  if (json) {
    return JSON.stringify({ subject: message.subject, seq: message.seq, encoding: message.encoding, data: payloadJson(message.data) });
  }
  return `${message.subject} ${payloadText(message.data, message.encoding)}`;
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
