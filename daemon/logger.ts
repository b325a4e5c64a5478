// One pino logger for the daemon, writing to stderr so stdout stays the CLI's
// data channel. Synchronous writes: the broker logs rarely (never per message
// above "debug"), and a log line must not be lost when the process exits.

import pino, { type Logger, type LevelWithSilent } from "pino";
import { InvalidArgumentError } from "../protocol/index.js";

export const LOG_LEVEL_ENV = "XPCBUS_LOG_LEVEL";
export const DEFAULT_LOG_LEVEL: LevelWithSilent = "info";
const LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function parseLogLevel(value: string | undefined): LevelWithSilent {
  if (value === undefined || value === "") return DEFAULT_LOG_LEVEL;
  if (!(LEVELS as string[]).includes(value)) {
    throw new InvalidArgumentError(`log level "${value}" is not one of ${LEVELS.join(", ")}`);
  }
  return value as LevelWithSilent;
}

export function createLogger(level: LevelWithSilent): Logger {
  return pino({ level, base: { pid: process.pid }, name: "xpcbus" }, pino.destination({ fd: 2, sync: true }));
}
