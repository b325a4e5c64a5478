// pub, sub, get, req, status: thin commands over the SDK. Data goes to
// stdout, one line per item; diagnostics go to stderr.

import { createInterface } from "node:readline";
import { connect, XpcbusError, InvalidSubjectError } from "../../client-sdk/index.js";
import type { Client } from "../../client-sdk/index.js";
import type { BrokerStatus } from "../../protocol/index.js";
import { subjectProblem } from "../../protocol/index.js";
import { CliError, describe, exitCodeOf, ReportedFailure } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";
import { messageLine, parseData, payloadText, printLine } from "./output.js";

export interface CommonOptions {
  socket?: string;
  /** macOS: reach the broker over XPC at this mach service instead of the socket. */
  service?: string;
}

/** The connect() options that say where the broker is: a socket, or (macOS) a mach service. */
export function brokerAddress(options: CommonOptions): { socket?: string; service?: string } {
  if (options.socket !== undefined && options.service !== undefined) {
    throw new CliError("give --socket or --service, not both", EXIT_USAGE);
  }
  return options.service !== undefined ? { service: options.service } : { socket: options.socket };
}

const out = printLine;

/** Runs `run` on a one-shot connection, closed afterwards. One-shot commands fail fast: no reconnecting behind the user's back. */
export async function withClient<T>(options: CommonOptions, name: string, run: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect({ ...brokerAddress(options), name, reconnect: false });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

export async function pubCommand(
  subject: string,
  data: string | undefined,
  options: CommonOptions & { json?: boolean; stdin?: boolean; retain?: boolean },
): Promise<void> {
  if (options.stdin === true && data !== undefined) throw new CliError("give the data as an argument or with --stdin, not both", EXIT_USAGE);
  // Before connecting or reading stdin: a bad subject is a usage error, not one failure per line.
  const problem = subjectProblem(subject, false);
  if (problem !== undefined) throw new InvalidSubjectError(problem);
  const json = options.json === true;
  const retain = options.retain === true;
  await withClient(options, "xpcbus-pub", async (client) => {
    if (options.stdin !== true) {
      await client.publish(subject, parseData(data, json), { retain });
      return;
    }
    await publishLines(client, subject, json, retain);
  });
}

/** How many publishes of `pub --stdin` may await their acknowledgement at once. */
const STDIN_BATCH = 256;

/** Codes that are about one line's data: that line is skipped and the others still go. */
const LINE_PROBLEMS: ReadonlySet<string> = new Set(["payload_too_large"]);

/**
 * `pub --stdin`: one message per line; acknowledgements are awaited in
 * batches so a long input streams instead of round-tripping each line. A line
 * whose data cannot be sent (not JSON with --json, over the payload limit) is
 * reported as "line N: why" and skipped; the rest are still sent and the exit
 * code is 1. Anything else (refused by the policy, the connection lost) would
 * fail every later line alike, so it ends the command at that line.
 */
async function publishLines(client: Client, subject: string, json: boolean, retain: boolean): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let skipped = 0;
  let fatal: CliError | undefined;
  const report = (lineNo: number, error: unknown): void => {
    if (error instanceof CliError || (error instanceof XpcbusError && LINE_PROBLEMS.has(error.code))) {
      skipped++;
      process.stderr.write(`xpcbus: line ${lineNo}: ${describe(error)}\n`);
    } else {
      fatal ??= new CliError(`line ${lineNo}: ${describe(error)}`, exitCodeOf(error));
    }
  };
  let lineNo = 0;
  let inFlight: Array<Promise<unknown>> = [];
  for await (const line of lines) {
    lineNo++;
    const at = lineNo;
    let value: unknown;
    try {
      value = parseLine(line, json);
    } catch (error) {
      report(at, error);
      continue;
    }
    // Each publish is handled as soon as it settles, so no rejection is left unhandled.
    inFlight.push(client.publish(subject, value, { retain }).catch((error: unknown) => report(at, error)));
    if (inFlight.length >= STDIN_BATCH) {
      await Promise.all(inFlight);
      inFlight = [];
    }
    if (fatal !== undefined) break;
  }
  await Promise.all(inFlight);
  if (fatal !== undefined) throw fatal;
  if (skipped > 0) throw new ReportedFailure(`${skipped} of ${lineNo} lines were not sent`, EXIT_ERROR);
}

/** One line of `pub --stdin --json`: a bad one is that line's problem (exit 1), not a usage error. */
function parseLine(line: string, json: boolean): unknown {
  if (!json) return line;
  try {
    return JSON.parse(line) as unknown;
  } catch (error) {
    throw new CliError(`not valid JSON: ${(error as Error).message}`, EXIT_ERROR);
  }
}

export async function subCommand(
  subject: string,
  options: CommonOptions & { json?: boolean; count?: number; queue?: string; replay?: boolean },
): Promise<void> {
  const client = await connect({ ...brokerAddress(options), name: "xpcbus-sub" });
  client.on("reconnecting", ({ attempt, delayMs }) => process.stderr.write(`xpcbus: broker lost, reconnecting (attempt ${attempt}, in ${delayMs} ms)\n`));
  client.on("reconnected", () => process.stderr.write("xpcbus: reconnected\n"));
  client.on("slowConsumer", ({ dropped }) => process.stderr.write(`xpcbus: output is not keeping up; ${dropped} messages dropped\n`));
  client.on("dropped", ({ count, total }) =>
    process.stderr.write(`xpcbus: the broker dropped ${count} message${count === 1 ? "" : "s"} (${total} in all): this subscriber was not reading fast enough\n`),
  );
  const stop = (): void => void client.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const sub = await client.subscribe(subject, { queue: options.queue, replay: options.replay === true });
  let seen = 0;
  for await (const message of sub) {
    out(messageLine(message, options.json === true));
    seen++;
    if (options.count !== undefined && seen >= options.count) break;
  }
  const error = client.isClosed ? await client.closed() : undefined;
  await client.close();
  if (error !== undefined) throw error;
}

export async function getCommand(subject: string, options: CommonOptions & { json?: boolean }): Promise<void> {
  const result = await withClient(options, "xpcbus-get", (client) => client.get(subject));
  if (options.json === true) {
    out(
      result.found
        ? messageLine({ subject, seq: result.seq, encoding: result.encoding, data: result.data }, true)
        : JSON.stringify({ subject, found: false }),
    );
  } else if (result.found) {
    out(payloadText(result.data, result.encoding));
  }
  if (!result.found) throw new CliError(`no retained value on "${subject}"`, EXIT_ERROR);
}

export async function reqCommand(
  subject: string,
  data: string | undefined,
  options: CommonOptions & { json?: boolean; timeout?: number },
): Promise<void> {
  const json = options.json === true;
  const reply = await withClient(options, "xpcbus-req", (client) =>
    client.request(subject, parseData(data, json), { timeoutMs: options.timeout }),
  );
  out(json ? messageLine(reply, true) : payloadText(reply.data, reply.encoding));
}

export async function statusCommand(options: CommonOptions & { json?: boolean }): Promise<void> {
  const status = await withClient(options, "xpcbus-status", (client) => client.status());
  if (options.json === true) {
    out(JSON.stringify(status));
    return;
  }
  printStatus(status);
}

function printStatus(status: BrokerStatus): void {
  out(`${status.server}  pid ${status.pid}  since ${status.startedAt}`);
  out(`retained: ${status.retained.count} values, ${status.retained.bytes} bytes (max ${status.retained.maxCount} / ${status.retained.maxBytes})`);
  out(`pending requests: ${status.pendingRequests}`);
  out(`peers: ${status.peers.length}`);
  for (const p of status.peers) {
    // exeVerified is absent from an older broker's status: show nothing then.
    const who = `pid ${p.pid ?? "?"} uid ${p.uid ?? "?"} ${p.exe ?? "(exe unknown)"}${p.exe !== null && p.exeVerified === false ? " (exe not verified)" : ""}`;
    out(`  #${p.id} ${p.name || "(no name)"}  ${who}  subs ${p.subscriptionCount}  in ${p.msgsIn}  out ${p.msgsOut}  dropped ${p.dropped}`);
  }
  out(`subscribed subjects: ${status.subjects.length}`);
  for (const s of status.subjects) out(`  ${s.subject}  ${s.subscribers}`);
}
