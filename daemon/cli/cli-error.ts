// Turning any failure into one line on stderr and an exit code.

import { XpcbusError } from "../../client-sdk/errors.js";
import { EXIT_ERROR, EXIT_UNREACHABLE, EXIT_USAGE } from "./exit-codes.js";

/** An error the CLI reports as-is, with its own exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof XpcbusError) {
    if (error.code === "connection_failed" || error.code === "disconnected") return EXIT_UNREACHABLE;
    if (error.code === "invalid_subject" || error.code === "invalid_argument" || error.code === "transport_unavailable") return EXIT_USAGE;
  }
  return EXIT_ERROR;
}

export function describe(error: unknown): string {
  if (error instanceof XpcbusError) {
    const hint = error.code === "connection_failed" ? ' (is "xpcbus daemon" running on that socket?)' : "";
    return `${error.message}${hint} [${error.code}]`;
  }
  return error instanceof Error ? error.message : String(error);
}
