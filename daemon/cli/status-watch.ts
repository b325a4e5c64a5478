// `xpcbus status --watch` (alias `xpcbus top`): the broker's status again
// every --interval ms, with rates from the deltas between refreshes. On a
// terminal the screen is cleared and redrawn; into a pipe or a file each
// refresh is a block appended after the last; with --json, one JSON line each.

import { connect } from "../../client-sdk/index.js";
import { brokerAddress, statusCommand, type CommonOptions } from "./client-commands.js";
import { CliError, describe } from "./cli-error.js";
import { DEFAULT_STATUS_INTERVAL_MS } from "./cli-limits.js";
import { EXIT_USAGE } from "./exit-codes.js";
import { printLine } from "./output.js";
import { renderView, statusView, type Sample } from "./status-view.js";


/** ANSI: cursor home, clear the screen. */
const CLEAR_SCREEN = "\u001b[H\u001b[2J";

export interface StatusOptions extends CommonOptions {
  json?: boolean;
  watch?: boolean;
  interval?: number;
  count?: number;
}

/** `status`: once, or with --watch as a live view. */
export async function statusOrWatchCommand(options: StatusOptions): Promise<void> {
  if (options.watch !== true) {
    if (options.interval !== undefined || options.count !== undefined) throw new CliError("--interval and --count go with --watch (or use xpcbus top)", EXIT_USAGE);
    return statusCommand(options);
  }
  return statusWatchCommand(options);
}

export async function statusWatchCommand(options: StatusOptions): Promise<void> {
  const intervalMs = options.interval ?? DEFAULT_STATUS_INTERVAL_MS;
  const tty = process.stdout.isTTY === true && options.json !== true;
  const client = await connect({ ...brokerAddress(options), name: "xpcbus-top" });
  client.on("reconnecting", ({ attempt, delayMs }) => process.stderr.write(`xpcbus: broker lost, reconnecting (attempt ${attempt}, in ${delayMs} ms)\n`));
  client.on("reconnected", () => process.stderr.write("xpcbus: reconnected\n"));
  let wake: (() => void) | undefined;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let previous: Sample | undefined;
  let shown = 0;
  try {
    while (!stopped && !client.isClosed) {
      let sample: Sample | undefined;
      try {
        sample = { status: await client.status(), atMs: performance.now() };
      } catch (error) {
        // The broker went away: say so once per refresh and keep trying while the client reconnects.
        if (client.isClosed) break;
        process.stderr.write(`xpcbus: no status: ${describe(error)}\n`);
      }
      if (sample !== undefined) {
        const view = statusView(sample, previous);
        previous = sample;
        if (options.json === true) {
          printLine(JSON.stringify(view));
        } else {
          const size = tty ? { columns: process.stdout.columns ?? 80, rows: process.stdout.rows ?? 24 } : { columns: Infinity, rows: Infinity };
          const block = renderView(view, size).join("\n");
          process.stdout.write(tty ? `${CLEAR_SCREEN}${block}\n` : `${shown > 0 ? "\n" : ""}${block}\n`);
        }
        shown++;
        if (options.count !== undefined && shown >= options.count) break;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  const error = client.isClosed ? await client.closed() : undefined;
  await client.close();
  if (error !== undefined) throw error;
}
