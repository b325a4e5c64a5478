// Names of an installed broker: label, mach service, socket, notify prefix,
// log files. One place decides them, so `--dev` gives a broker that never
// collides with the installed one, and plists and units agree.

import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { defaultSocketPath, SYSTEM_SOCKET_PATH } from "../client-sdk/index.js";
import { DEFAULT_SERVICE_NAME } from "../protocol/index.js";

export type ServiceScope = "user" | "system";

export interface ServiceNames {
  scope: ServiceScope;
  dev: boolean;
  /** launchd Label. */
  label: string;
  /** Mach service name (MachServices key; clients' --service). */
  service: string;
  socket: string;
  /** Notification prefix of the broker's subjects: the service name, behind user.uid.<uid>. for a macOS user agent. */
  notifyPrefix: string;
  logDir: string;
  /** Where the plist goes. */
  plistPath: string;
}

export interface NameOptions {
  scope: ServiceScope;
  dev?: boolean;
  label?: string;
  service?: string;
  socket?: string;
  /** For tests: the user's home, uid and environment. */
  home?: string;
  uid?: number;
  env?: NodeJS.ProcessEnv;
}

export function serviceNames(options: NameOptions): ServiceNames {
  const dev = options.dev === true;
  const home = options.home ?? homedir();
  const suffix = dev ? ".dev" : "";
  const label = options.label ?? `${DEFAULT_SERVICE_NAME}${suffix}`;
  const service = options.service ?? `${DEFAULT_SERVICE_NAME}${suffix}`;
  const baseSocket = options.scope === "system" ? SYSTEM_SOCKET_PATH : defaultSocketPath({ ...(options.env ?? process.env), XPCBUS_SOCKET: "" });
  const socket = options.socket ?? (dev ? join(dirname(baseSocket), "broker-dev.sock") : baseSocket);
  return {
    scope: options.scope,
    dev,
    label,
    service,
    socket,
    notifyPrefix: options.scope === "user" ? `user.uid.${options.uid ?? process.getuid?.() ?? 0}.${service}` : service,
    logDir: options.scope === "system" ? "/var/log/xpcbus" : join(home, "Library", "Logs", "xpcbus"),
    plistPath:
      options.scope === "system" ? join("/Library/LaunchDaemons", `${label}.plist`) : join(home, "Library", "LaunchAgents", `${label}.plist`),
  };
}
