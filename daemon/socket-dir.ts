// The socket's directory is the first access gate: a per-user broker's
// directory is the user's alone (0700), the system broker's is 0755 with an
// owner-only socket inside. An existing directory that anyone else could
// write to, or that belongs to someone else, is refused: a socket there
// could be swapped under our clients. Only the directory itself is created,
// never its parents.

import { chmodSync, lstatSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
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
    // The last level only, as for the default paths ($XDG_RUNTIME_DIR/xpcbus,
    // /tmp/xpcbus-<uid>, /run/xpcbus): a mistyped --socket must not leave a
    // tree of new directories behind, and one the user did not name is not ours to make.
    mkdirSync(dir, { mode: rules.mode });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return checkSocketDir(dir, rules, uid);
    if (code === "ENOENT") {
      throw new XpcbusError(
        "socket_unusable",
        `cannot create the socket's directory ${dir}: its parent ${dirname(dir)} does not exist (only the last level is created; make the others first, e.g. mkdir -p ${dirname(dir)})`,
        { cause },
      );
    }
    // The OS error mapped here, at the edge, into one line that says who may not do what.
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw new XpcbusError("socket_unusable", `uid ${uid} may not create the socket's directory ${dir} (${code})`, { cause });
    }
    throw new XpcbusError("socket_unusable", `cannot create the socket's directory ${dir}: ${(cause as Error).message}`, { cause });
  }
  checkSocketDir(dir, rules, uid);
}

function checkSocketDir(dir: string, rules: SocketDirRules, uid: number): void {
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new XpcbusError("socket_unusable", `${dir} is not a directory`);
  if (!rules.strict) return;
  if (stat.uid !== uid) {
    throw new XpcbusError("socket_unusable", `${dir} belongs to uid ${stat.uid}, not to this user (${uid}); refusing to use it`);
  }
  if ((stat.mode & 0o777) !== rules.mode) chmodSync(dir, rules.mode);
}
