// The daemon's reloadable settings (`--config FILE`, JSON): read at start
// and again on SIGHUP. A bad file is refused whole, naming the problem, and
// the settings in force stay. Today: the log level; the policy joins later.

import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../protocol/index.js";
import { parseLogLevel } from "./logger.js";

export interface DaemonConfig {
  /** fatal | error | warn | info | debug | trace | silent */
  logLevel?: string;
}

const KEYS = ["logLevel"];

export function readConfigFile(path: string): DaemonConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`config ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`config ${path}: must be a JSON object`);
  }
  const config = parsed as Record<string, unknown>;
  for (const key of Object.keys(config)) {
    if (!KEYS.includes(key)) throw new InvalidArgumentError(`config ${path}: unknown key "${key}"; known: ${KEYS.join(", ")}`);
  }
  if (config["logLevel"] !== undefined) {
    if (typeof config["logLevel"] !== "string") throw new InvalidArgumentError(`config ${path}: "logLevel" must be a string`);
    parseLogLevel(config["logLevel"]);
  }
  return config as DaemonConfig;
}
