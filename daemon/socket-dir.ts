// The socket's directory is the first access gate: a per-user broker's
// directory is the user's alone (0700), the system broker's is 0755 with an
// owner-only socket inside. An existing directory that anyone else could
// write to, or that belongs to someone else, is refused: a socket there
// could be swapped under our clients.

import { chmodSync, lstatSync, mkdirSync } from "node:fs";
import { XpcbusError } from "../protocol/index.js";

export interface SocketDirRules {
  /** Mode to create the directory with (and to enforce when we own it). */
  mode: number;
  /** Enforce `mode` and ownership on an existing directory (default paths); leave user-chosen ones alone. */
  strict: boolean;
}

export function prepareSocketDir(dir: string, rules: SocketDirRules): void {
  const uid = process.getuid?.() ?? 0;
  try {
    mkdirSync(dir, { recursive: true, mode: rules.mode });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    // The OS error mapped here, at the edge, into one line that says who may not do what.
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw new XpcbusError("socket_unusable", `uid ${uid} may not create the socket's directory ${dir} (${code})`, { cause });
    }
    throw new XpcbusError("socket_unusable", `cannot create the socket's directory ${dir}: ${(cause as Error).message}`, { cause });
  }
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new XpcbusError("socket_unusable", `${dir} is not a directory`);
  if (!rules.strict) return;
  if (stat.uid !== uid) {
    throw new XpcbusError("socket_unusable", `${dir} belongs to uid ${stat.uid}, not to this user (${uid}); refusing to use it`);
  }
  if ((stat.mode & 0o777) !== rules.mode) chmodSync(dir, rules.mode);
}
