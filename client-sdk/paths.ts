// Where the broker's socket lives by default, shared by the daemon (to
// listen) and the SDK (to connect), so both agree without configuration.

import { join } from "node:path";

/** The system-wide broker's socket (`xpcbus daemon --system`): /run on Linux, /var/run on macOS. */
export const SYSTEM_SOCKET_PATH = process.platform === "darwin" ? "/var/run/xpcbus/broker.sock" : "/run/xpcbus/broker.sock";

/** Environment variable that overrides the default socket path for clients and the daemon. */
export const SOCKET_ENV = "XPCBUS_SOCKET";

/**
 * The per-user broker's socket: `$XDG_RUNTIME_DIR/xpcbus/broker.sock`, which
 * is private to the user and cleaned at logout, else `/tmp/xpcbus-<uid>/broker.sock`.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[SOCKET_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const runtime = env["XDG_RUNTIME_DIR"];
  if (runtime !== undefined && runtime.startsWith("/")) return join(runtime, "xpcbus", "broker.sock");
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return join("/tmp", `xpcbus-${uid}`, "broker.sock");
}
