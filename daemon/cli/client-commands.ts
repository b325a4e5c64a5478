// pub, sub, get, req, status: thin commands over the SDK. Data goes to
// stdout, one line per item; diagnostics go to stderr.

import { connect, InvalidSubjectError } from "../../client-sdk/index.js";
import type { Client } from "../../client-sdk/index.js";
import type { BrokerStatus } from "../../protocol/index.js";
import { subjectProblem } from "../../protocol/index.js";
import { CliError } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";
import { publishLines } from "./pub-stdin.js";
import { messageLine, parseData, payloadText, printLine } from "./output.js";
import { OWN_CONNECTION_ONLY } from "./status-view.js";

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
  // A forgotten argument must not go out as an empty message: an empty one is asked for with ''.
  if (options.stdin !== true && data === undefined) {
    throw new CliError("pub needs the data to publish: give it after the subject ('' for an empty message), or use --stdin", EXIT_USAGE);
  }
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
  const own = status.scope === "peer";
  if (own) out(OWN_CONNECTION_ONLY);
  else {
    out(`retained: ${status.retained.count} values, ${status.retained.bytes} bytes (max ${status.retained.maxCount} / ${status.retained.maxBytes})`);
    out(`pending requests: ${status.pendingRequests}`);
  }
  out(`peers: ${status.peers.length}`);
  for (const p of status.peers) {
    // exeVerified is absent from an older broker's status: show nothing then.
    const who = `pid ${p.pid ?? "?"} uid ${p.uid ?? "?"} ${p.exe ?? "(exe unknown)"}${p.exe !== null && p.exeVerified === false ? " (exe not verified)" : ""}`;
    out(`  #${p.id} ${p.name || "(no name)"}  ${who}  subs ${p.subscriptionCount}  in ${p.msgsIn}  out ${p.msgsOut}  dropped ${p.dropped}`);
  }
  if (own) return;
  out(`subscribed subjects: ${status.subjects.length}`);
  for (const s of status.subjects) out(`  ${s.subject}  ${s.subscribers}`);
}
