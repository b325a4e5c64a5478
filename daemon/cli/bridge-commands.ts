// `xpcbus bridge check FILE`: reads a bridge file as the daemon's --bridge
// would, and says what it found (exit 0) or every problem (exit 2, usage).

import { readBridgeFile } from "../bridge/bridge-config.js";
import { CliError } from "./cli-error.js";
import { EXIT_USAGE } from "./exit-codes.js";

export function bridgeCheckCommand(file: string): void {
  let config;
  try {
    config = readBridgeFile(file);
  } catch (error) {
    // The message is the whole report: a header, then one `  <place>: <why>` line per problem.
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
  process.stdout.write(`ok: ${config.export.length} export(s), ${config.import.length} import(s), servers ${config.nats.servers.join(" ")}\n`);
}
