// `xpcbus pub <subject> --stdin`: one message per line of standard input, on
// the SDK's batched path. Lines are cut from each chunk read (no per-line
// async iteration) and published without waiting for an acknowledgement
// each: the publishes of one chunk leave in one write. Every
// STDIN_CHECKPOINT_LINES lines a ping makes a checkpoint: everything before
// it has reached the broker, and any error the broker sent about those
// publishes has arrived, so a refusal stops the command within that many
// lines of its cause. The socket's backpressure paces the reading.

import type { Client, BrokerError } from "../../client-sdk/index.js";
import { XpcbusError } from "../../client-sdk/index.js";
import { CliError, describe, exitCodeOf, ReportedFailure } from "./cli-error.js";
import { EXIT_ERROR } from "./exit-codes.js";

/** Lines between two checkpoints (a ping round trip). */
export const STDIN_CHECKPOINT_LINES = 4096;

/** Codes that are about one line's data: that line is skipped and the others still go. */
const LINE_PROBLEMS: ReadonlySet<string> = new Set(["payload_too_large"]);

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * A line whose data cannot be sent (not JSON with --json, over the payload
 * limit) is reported as "line N: why" and skipped; the rest are still sent
 * and the exit code is 1. A refusal by the broker (the policy, a limit)
 * would fail every later line alike, so it ends the command, naming the
 * checkpoint it was seen at. Lines end at "\n" or "\r\n".
 */
export async function publishLines(client: Client, subject: string, json: boolean, retain: boolean, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  let refused: BrokerError | undefined;
  const onRefused = (error: BrokerError): void => {
    refused ??= error;
  };
  client.on("brokerError", onRefused);
  let lineNo = 0;
  let checkpointAt = 0;
  let skipped = 0;
  let fatal: CliError | undefined;
  const options = { retain, ack: false };
  const report = (at: number, error: unknown): void => {
    if (error instanceof CliError || (error instanceof XpcbusError && LINE_PROBLEMS.has(error.code))) {
      skipped++;
      process.stderr.write(`xpcbus: line ${at}: ${describe(error)}\n`);
    } else {
      fatal ??= new CliError(`line ${at}: ${describe(error)}`, exitCodeOf(error));
    }
  };
  /** Waits for room on the socket when the SDK says so; one wait for all. */
  let room: Promise<unknown> | undefined;
  const publish = (text: string): void => {
    lineNo++;
    let value: unknown = text;
    if (json) {
      try {
        value = JSON.parse(text) as unknown;
      } catch (error) {
        report(lineNo, new CliError(`not valid JSON: ${(error as Error).message}`, EXIT_ERROR));
        return;
      }
    }
    const at = lineNo;
    room = client.publish(subject, value, options).catch((error: unknown) => report(at, error));
  };
  const checkpoint = async (): Promise<void> => {
    await room;
    await client.flush();
    checkpointAt = lineNo;
    if (refused !== undefined) fatal ??= new CliError(`by line ${checkpointAt}: ${describe(refused)}`, exitCodeOf(refused));
  };

  /** Reads and publishes until the input ends or a fault ends the command. */
  const readAll = async (): Promise<void> => {
    let rest: Buffer | undefined;
    for await (const read of input) {
      let chunk = read as Buffer;
      if (rest !== undefined) {
        chunk = Buffer.concat([rest, chunk]);
        rest = undefined;
      }
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        publish(chunk.toString("utf8", start, nl > start && chunk[nl - 1] === CARRIAGE_RETURN ? nl - 1 : nl));
        start = nl + 1;
        if (lineNo - checkpointAt >= STDIN_CHECKPOINT_LINES) {
          await checkpoint();
          if (fatal !== undefined) return;
        }
      }
      if (start < chunk.length) rest = chunk.subarray(start);
      // The SDK asks to wait when its socket is past the high-water mark: stop reading until then.
      await room;
      if (fatal !== undefined) return;
    }
    // A last line without a newline is a line too.
    if (rest !== undefined) publish(rest.toString("utf8", 0, rest[rest.length - 1] === CARRIAGE_RETURN ? rest.length - 1 : rest.length));
    await checkpoint();
  };

  try {
    await readAll();
  } finally {
    client.off("brokerError", onRefused);
  }
  if (fatal !== undefined) throw fatal;
  if (skipped > 0) throw new ReportedFailure(`${skipped} of ${lineNo} lines were not sent`, EXIT_ERROR);
}
