// Turning any failure into one line on stderr and an exit code.

import { statSync } from "node:fs";
import { dirname } from "node:path";
import { XpcbusError } from "../../client-sdk/index.js";
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

/**
 * A failure the command has already reported (line by line on stderr, or a
 * verdict on stdout): only its exit code is left to give, nothing is printed.
 */
export class ReportedFailure extends CliError {
  constructor(summary: string, exitCode: number) {
    super(summary, exitCode);
    this.name = "ReportedFailure";
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof XpcbusError) {
    if (error.code === "connection_failed" || error.code === "disconnected") return EXIT_UNREACHABLE;
    if (error.code === "invalid_subject" || error.code === "invalid_queue" || error.code === "invalid_argument" || error.code === "transport_unavailable") return EXIT_USAGE;
  }
  return EXIT_ERROR;
}

export function describe(error: unknown): string {
  if (error instanceof XpcbusError) {
    const hint = error.code === "connection_failed" ? connectionHint(error.cause) : "";
    return `${error.message}${hint} [${error.code}]`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Why a connect failed, from the OS error the SDK keeps as `cause`: no socket
 * there, a socket nobody listens on, or one this user may not use. They need
 * different fixes, so one "is it running?" does not fit them all.
 */
function connectionHint(cause: unknown): string {
  const os = cause as (NodeJS.ErrnoException & { address?: unknown }) | undefined;
  const path = typeof os?.address === "string" ? os.address : undefined;
  switch (os?.code) {
    case "ECONNREFUSED":
      return ' (the socket file is there but no broker listens on it: one stopped without removing it; "xpcbus daemon" on that socket replaces it)';
    case "EACCES":
    case "EPERM":
      return ` (${permissionHint(path)})`;
    default:
      // ENOENT, or no OS error at all (e.g. gave up reconnecting).
      return ' (is "xpcbus daemon" running on that socket?)';
  }
}

const SOCKET_MODE_ADVICE =
  'the broker\'s owner decides who may connect with "xpcbus daemon --socket-mode" (0660: its group, 0666: everyone), and then its --policy who is admitted';

function modeOf(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}

/** Names what stops this user: the socket's own owner and mode, or a directory on the way it may not enter. */
function permissionHint(path: string | undefined): string {
  const uid = process.getuid?.();
  const me = uid === undefined ? "this user" : `uid ${uid}`;
  if (path === undefined) return `the socket exists but ${me} may not connect to it; ${SOCKET_MODE_ADVICE}`;
  try {
    const socket = statSync(path);
    return `the socket exists but ${me} may not connect to it: it belongs to uid ${socket.uid} with mode ${modeOf(socket.mode)}; ${SOCKET_MODE_ADVICE}`;
  } catch {
    // The socket cannot even be looked at: a directory on the way is closed to us.
  }
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      const stat = statSync(dir);
      return `${me} may not enter ${dir} (it belongs to uid ${stat.uid} with mode ${modeOf(stat.mode)}), so it cannot reach the socket in it; a broker meant for other users needs a socket in a directory they may enter (e.g. --system) and --socket-mode`;
    } catch {
      if (dirname(dir) === dir) break;
    }
  }
  return `${me} may not reach the socket; ${SOCKET_MODE_ADVICE}`;
}
