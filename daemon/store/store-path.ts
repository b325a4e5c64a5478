// Where a broker keeps its store when --store does not say. The rule keeps
// two brokers from ever sharing a file by accident: only a broker on its
// default socket uses the per-user (or system) state directory; a broker on
// any other socket (tests, a second broker) keeps its store beside its socket,
// as it already keeps `<socket>.seq` and `<socket>.notify`.

import { join } from "node:path";

export const STORE_FILE_NAME = "store.db";
/** The system broker's store (`--system`) on Linux: state that outlives reboots, FHS /var/lib. */
export const SYSTEM_STORE_PATH_LINUX = "/var/lib/xpcbus/store.db";
/** The system broker's store on macOS, which has no /var/lib convention. */
export const SYSTEM_STORE_PATH_DARWIN = "/Library/Application Support/xpcbus/store.db";

export interface StorePathInputs {
  /** The machine-wide broker (--system). */
  system: boolean;
  /** The socket is the one xpcbus chose itself (no --socket, no $XPCBUS_SOCKET). */
  socketPathIsDefault: boolean;
  socketPath: string;
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  homedir: string;
}

export function defaultStorePath(inputs: StorePathInputs): string {
  if (!inputs.socketPathIsDefault) return `${inputs.socketPath}.store.db`;
  if (inputs.system) return inputs.platform === "darwin" ? SYSTEM_STORE_PATH_DARWIN : SYSTEM_STORE_PATH_LINUX;
  if (inputs.platform === "darwin") return join(inputs.homedir, "Library", "Application Support", "xpcbus", STORE_FILE_NAME);
  // XDG Base Directory: a relative $XDG_STATE_HOME is invalid and ignored.
  const state = inputs.env["XDG_STATE_HOME"];
  const base = state !== undefined && state.startsWith("/") ? state : join(inputs.homedir, ".local", "state");
  return join(base, "xpcbus", STORE_FILE_NAME);
}
