// pub, sub, get, history, req, status: thin commands over the SDK. Data goes
// to stdout, one line per item; diagnostics go to stderr.

import { connect, InvalidSubjectError } from "../../client-sdk/index.js";
import type { Client, SubscribeOptions, SubscriptionGap } from "../../client-sdk/index.js";
import type { BrokerStatus } from "../../protocol/index.js";
import { subjectProblem } from "../../protocol/index.js";
import { CliError } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";
import { publishLines } from "./pub-stdin.js";
import { messageLine, parseData, payloadJson, payloadLine, payloadText, printLine } from "./output.js";
import { OWN_CONNECTION_ONLY } from "./status-view.js";

export interface CommonOptions {
  socket?: string;
  /** macOS: reach the broker over XPC at this mach service instead of the socket. */
  service?: string;
  /** Unix socket: one more uid whose broker is trusted (docs/SECURITY.md, "Trusting the broker"). */
  brokerUid?: number;
  /** macOS, with --service: a code-signing requirement the broker must satisfy. */
  brokerRequirement?: string;
}

/** The connect() options that say where the broker is and which one to trust: a socket, or (macOS) a mach service. */
export function brokerAddress(options: CommonOptions): { socket?: string; service?: string; brokerUid?: number; brokerRequirement?: string } {
  if (options.socket !== undefined && options.service !== undefined) {
    throw new CliError("give --socket or --service, not both", EXIT_USAGE);
  }
  if (options.service !== undefined) {
    if (options.brokerUid !== undefined) throw new CliError("--broker-uid is for the Unix socket, not --service", EXIT_USAGE);
    return options.brokerRequirement === undefined ? { service: options.service } : { service: options.service, brokerRequirement: options.brokerRequirement };
  }
  if (options.brokerRequirement !== undefined) throw new CliError("--broker-requirement is for --service (XPC, macOS); on the Unix socket the broker's uid is checked (--broker-uid)", EXIT_USAGE);
  return options.brokerUid !== undefined ? { socket: options.socket, brokerUid: options.brokerUid } : { socket: options.socket };
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
  options: CommonOptions & { json?: boolean; count?: number; queue?: string; replay?: boolean; since?: string },
): Promise<void> {
  // Checked before connecting: a bad resume point is the command line's fault.
  const subscribeOptions: SubscribeOptions = { queue: options.queue, replay: options.replay === true };
  if (options.since !== undefined) {
    if (options.queue !== undefined) throw new CliError("--since cannot be combined with --queue: a queue group member takes what the group gets from now on", EXIT_USAGE);
    if (options.replay === true) throw new CliError("--since cannot be combined with --replay: the kept messages are printed instead", EXIT_USAGE);
    Object.assign(subscribeOptions, parseSincePoint(options.since, Date.now()));
  }
  const client = await connect({ ...brokerAddress(options), name: "xpcbus-sub" });
  client.on("reconnecting", ({ attempt, delayMs }) => process.stderr.write(`xpcbus: broker lost, reconnecting (attempt ${attempt}, in ${delayMs} ms)\n`));
  client.on("reconnected", () => process.stderr.write("xpcbus: reconnected\n"));
  client.on("slowConsumer", ({ dropped }) => process.stderr.write(`xpcbus: output is not keeping up; ${dropped} messages dropped\n`));
  client.on("dropped", ({ count, total }) =>
    process.stderr.write(`xpcbus: the broker dropped ${count} message${count === 1 ? "" : "s"} (${total} in all): this subscriber was not reading fast enough\n`),
  );
  // Also after a reconnect, which resumes from the last message printed.
  subscribeOptions.onGap = (gap) => process.stderr.write(`${gapLine(gap)}\n`);
  const stop = (): void => void client.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const sub = await client.subscribe(subject, subscribeOptions);
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

/** The line `sub` prints on stderr for a gap. */
export function gapLine(gap: SubscriptionGap): string {
  if (gap.lost === undefined) return `xpcbus: gap on ${gap.subject}: an unknown number of messages may be missing`;
  const count = `${gap.atLeast ? "at least " : ""}${gap.lost} message${gap.lost === 1 ? "" : "s"}`;
  return `xpcbus: gap on ${gap.subject}: ${count} no longer kept`;
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** An ISO 8601 date, or date and time: what Date.parse reads the same everywhere. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * `sub --since`: a sequence number (digits only), a duration back from `now`
 * (30s, 5m, 2h, 1d, 500ms) or an ISO date/time. Anything else is a usage error.
 */
export function parseSincePoint(text: string, now: number): { since: number } | { sinceTime: number } {
  if (/^\d+$/.test(text)) {
    const seq = Number(text);
    if (Number.isSafeInteger(seq)) return { since: seq };
  }
  const duration = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (duration !== null) {
    const ms = Number(duration[1]) * DURATION_MS[duration[2]!]!;
    if (Number.isSafeInteger(ms)) return { sinceTime: Math.max(0, now - ms) };
  }
  if (ISO_TIME.test(text)) {
    const time = Date.parse(text);
    if (Number.isSafeInteger(time) && time >= 0) return { sinceTime: time };
  }
  throw new CliError(
    `--since takes a sequence number (e.g. 1200), a duration back from now (30s, 5m, 2h, 1d) or an ISO date/time (e.g. 2024-05-01T12:00:00Z); got "${text}"`,
    EXIT_USAGE,
  );
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

/** `history`: the latest kept messages, oldest first: "<seq> <subject> <payload>", or JSON lines with the time. */
export async function historyCommand(subject: string, options: CommonOptions & { json?: boolean; limit?: number }): Promise<void> {
  const result = await withClient(options, "xpcbus-history", (client) => client.history(subject, { limit: options.limit }));
  for (const m of result.messages) {
    if (options.json === true) {
      out(JSON.stringify({ subject: m.subject, seq: m.seq, time: m.time.toISOString(), encoding: m.encoding, data: payloadJson(m.data) }));
    } else {
      out(`${m.seq} ${m.subject} ${payloadLine(m.data, m.encoding)}`);
    }
  }
  if (result.truncated) {
    process.stderr.write(`xpcbus: only the latest ${result.messages.length} kept messages fit in one answer from the broker\n`);
  }
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
    const h = status.history;
    if (h !== undefined) out(`history: ${h.messages} messages of ${h.subjects} subjects, ${h.bytes} bytes (${h.perSubject} per subject, max ${h.maxBytes} bytes)`);
    out(`pending requests: ${status.pendingRequests}`);
  }
  // Absent from brokers before the store.
  const store = status.store;
  if (store !== undefined) {
    const where = store.kind === "sqlite" ? ` ${store.path ?? ""} (durability ${store.durability ?? "normal"}, ${store.commits} commits${store.failedCommits > 0 ? `, ${store.failedCommits} failed` : ""})` : " (nothing outlives the broker)";
    out(`store: ${store.kind}${where}${store.failing ? "  FAILING: new state is in memory only until a commit succeeds" : ""}`);
  }
  const bridge = status.bridge;
  if (bridge !== undefined) out(`bridge: ${bridge.state}${bridge.server !== undefined ? ` to ${bridge.server}` : ` (${bridge.servers.join(", ")})`}  exported ${bridge.exported}  imported ${bridge.imported}  dropped ${bridge.dropped}  held ${bridge.bufferedBytes} bytes${bridge.lastError !== undefined ? `  last error: ${bridge.lastError}` : ""}`);
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
