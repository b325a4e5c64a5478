// `xpcbus reply <subject> [data] | --exec <command>`: answers requests on a
// subject, with fixed data or with a command's output, through the SDK's
// respond(), so a failure reaches the requester as a responder error (its
// `req` exits 1 with the message) instead of a timeout. One line per request
// answered on stdout: it is this command's data, like `sub`'s messages.

import { connect, InvalidSubjectError, type CallbackError, type Message } from "../../client-sdk/index.js";
import { subjectProblem } from "../../protocol/index.js";
import { brokerAddress, type CommonOptions } from "./client-commands.js";
import { CliError } from "./cli-error.js";
import { ExecRunner } from "./exec-runner.js";
import { EXIT_USAGE } from "./exit-codes.js";
import { parseData, payloadJson, payloadLine, printLine } from "./output.js";

export interface ReplyOptions extends CommonOptions {
  exec?: string;
  json?: boolean;
  queue?: string;
  count?: number;
}

/** What one request got: the reply value, or the error the requester saw. */
type Outcome = { reply: unknown } | { error: string };

function requestLine(request: Message, outcome: Outcome, json: boolean): string {
  if (json) {
    return JSON.stringify({ subject: request.subject, encoding: request.encoding, data: payloadJson(request.data), ...("reply" in outcome ? { reply: outcome.reply } : outcome) });
  }
  const asked = payloadLine(request.data, request.encoding);
  if ("error" in outcome) return `${request.subject} ${asked} -> error: ${outcome.error}`;
  const answered = typeof outcome.reply === "string" ? payloadLine(outcome.reply, "text") : JSON.stringify(outcome.reply);
  return `${request.subject} ${asked} -> ${answered}`;
}

export async function replyCommand(subject: string, data: string | undefined, options: ReplyOptions): Promise<void> {
  if (options.exec !== undefined && data !== undefined) throw new CliError("give the reply data or --exec <command>, not both", EXIT_USAGE);
  if (options.exec === undefined && data === undefined) {
    throw new CliError("reply needs what to answer: the data after the subject ('' for an empty reply), or --exec <command>", EXIT_USAGE);
  }
  const problem = subjectProblem(subject, true);
  if (problem !== undefined) throw new InvalidSubjectError(problem);
  const json = options.json === true;
  const fixed = data === undefined ? undefined : parseData(data, json);
  const runner = options.exec === undefined ? undefined : new ExecRunner(options.exec);

  const client = await connect({ ...brokerAddress(options), name: "xpcbus-reply" });
  client.on("reconnecting", ({ attempt, delayMs }) => process.stderr.write(`xpcbus: broker lost, reconnecting (attempt ${attempt}, in ${delayMs} ms)\n`));
  client.on("reconnected", () => process.stderr.write("xpcbus: reconnected\n"));
  // Failures of our own handler are printed with their request below; one the
  // SDK found after it (a reply the broker refused, e.g. over its payload limit) is said here.
  const printed = new WeakSet<object>();
  client.on("callbackError", (error: CallbackError) => {
    if (error.cause instanceof Object && printed.has(error.cause)) return;
    process.stderr.write(`xpcbus: a reply on "${error.subject}" could not be sent: ${(error.cause as Error)?.message ?? String(error.cause)}\n`);
  });

  let draining = false;
  /** Takes no more requests, lets the ones being answered finish, then closes. */
  const finish = (): void => {
    if (draining) return;
    draining = true;
    void client.drain().catch(() => client.close());
  };
  /** On a signal, running commands are killed too: their requesters get an error now rather than a timeout later. */
  const interrupt = (): void => {
    runner?.stop();
    finish();
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);

  let accepted = 0;
  const answer = async (request: Message): Promise<unknown> => {
    accepted++;
    // After the last one: stop taking requests (drain waits for those still being answered).
    if (options.count !== undefined && accepted === options.count) setImmediate(finish);
    try {
      let reply = fixed;
      if (runner !== undefined) {
        const output = await runner.run(request.raw, { XPCBUS_SUBJECT: request.subject });
        reply = json ? parseOutput(output) : output;
      }
      printLine(requestLine(request, { reply }, json));
      return reply;
    } catch (error) {
      printLine(requestLine(request, { error: (error as Error).message }, json));
      if (error instanceof Object) printed.add(error);
      throw error;
    }
  };
  try {
    await client.respond(subject, answer, options.queue === undefined ? {} : { queue: options.queue });
  } catch (error) {
    await client.close();
    throw error;
  }
  process.stderr.write(`xpcbus: replying on "${subject}"${options.queue === undefined ? "" : ` in queue group "${options.queue}"`}\n`);
  const error = await client.closed();
  runner?.stop();
  if (error !== undefined) throw error;
}

function parseOutput(output: string): unknown {
  try {
    return JSON.parse(output) as unknown;
  } catch (error) {
    throw new Error(`--exec output is not valid JSON (--json): ${(error as Error).message}`);
  }
}
