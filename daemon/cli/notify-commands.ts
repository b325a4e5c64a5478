// `xpcbus notify post|wait|check|state` (notifyutil's verbs, through the
// broker) and `xpcbus watch <subject>`: one line per wake-up.

import { connect } from "../../client-sdk/index.js";
import { CliError } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";
import { payloadLine, printLine } from "./output.js";
import { brokerAddress, withClient, type CommonOptions } from "./client-commands.js";

const out = printLine;

function parseState(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || BigInt(text) >= 1n << 64n) throw new CliError(`--state "${text}" is not an unsigned 64-bit integer`, EXIT_USAGE);
  return BigInt(text);
}

export async function notifyPostCommand(name: string, options: CommonOptions & { state?: string }): Promise<void> {
  const state = parseState(options.state);
  await withClient(options, "xpcbus-notify", (client) => client.post(name, state));
}

export async function notifyStateCommand(name: string, options: CommonOptions): Promise<void> {
  out(String(await withClient(options, "xpcbus-notify", (client) => client.notifyState(name))));
}

/** Registers, then reports whether the name was posted since (always "1" on a first check, as notify_check). */
export async function notifyCheckCommand(name: string, options: CommonOptions): Promise<void> {
  await withClient(options, "xpcbus-notify", async (client) => {
    const watch = await client.watchName(name);
    out(`1 ${watch.lastState}`);
  });
}

export async function notifyWaitCommand(name: string, options: CommonOptions & { timeout?: number }): Promise<void> {
  await withClient(options, "xpcbus-notify", async (client) => {
    const watch = await client.watchName(name);
    process.stderr.write(`xpcbus: waiting for "${name}"\n`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      if (options.timeout !== undefined) timer = setTimeout(() => resolve("timeout"), options.timeout);
    });
    const iterator = watch[Symbol.asyncIterator]();
    const result = await Promise.race([iterator.next(), timedOut]);
    clearTimeout(timer);
    if (result === "timeout") throw new CliError(`"${name}" was not posted within ${options.timeout} ms`, EXIT_ERROR);
    if (result.done === true) throw (client.isClosed ? await client.closed() : undefined) ?? new CliError("the connection to the broker ended", EXIT_ERROR);
    out(String(result.value.state));
  });
}

export async function watchCommand(
  subject: string,
  options: CommonOptions & { fetch?: boolean; json?: boolean; count?: number },
): Promise<void> {
  const client = await connect({ ...brokerAddress(options), name: "xpcbus-watch" });
  client.on("reconnecting", ({ attempt }) => process.stderr.write(`xpcbus: broker lost, reconnecting (attempt ${attempt})\n`));
  const stop = (): void => void client.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const watch = await client.watch(subject, { fetch: options.fetch === true });
  process.stderr.write(`xpcbus: watching "${watch.name}"\n`);
  let seen = 0;
  for await (const event of watch) {
    if (options.json === true) {
      out(JSON.stringify({ subject, seq: event.seq, ...(event.value === undefined ? {} : { value: event.value instanceof Uint8Array ? { base64: Buffer.from(event.value).toString("base64") } : event.value, valueSeq: event.valueSeq }) }));
    } else {
      const value = event.value === undefined ? "" : ` ${payloadLine(event.value, typeof event.value === "string" ? "text" : event.value instanceof Uint8Array ? "bytes" : "json")}`;
      out(`${subject} ${event.seq}${value}`);
    }
    if (options.count !== undefined && ++seen >= options.count) break;
  }
  // The watch also ends when the client closed on its own (e.g. the broker refused it for good): say why.
  const error = client.isClosed ? await client.closed() : undefined;
  await client.close();
  if (error !== undefined) throw error;
}
