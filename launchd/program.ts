// What a service manager runs: absolute paths to this node and this CLI,
// and the daemon's arguments for a set of service names.

import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServiceNames } from "./service-names.js";

export interface ProgramPaths {
  node: string;
  cli: string;
}

/** This node binary and the built CLI next to this module (dist/launchd → dist/daemon/cli/main.js). */
export function currentProgram(): ProgramPaths {
  const here = dirname(fileURLToPath(import.meta.url));
  // Built: dist/launchd/program.js; from the sources (tests): launchd/program.ts.
  const dist = basename(dirname(here)) === "dist" ? resolve(here, "..") : resolve(here, "..", "dist");
  return { node: process.execPath, cli: join(dist, "daemon", "cli", "main.js") };
}

/**
 * `xpcbus daemon` arguments. The notify prefix follows from --service (the
 * daemon derives it, adding user.uid.<uid>. for a macOS user agent), so it is
 * not passed; systemd units have no mach service.
 */
export function daemonArguments(names: ServiceNames, options: { withService?: boolean } = {}): string[] {
  const args = ["daemon", "--socket", names.socket];
  if (options.withService !== false) args.push("--service", names.service);
  if (names.scope === "system") args.push("--system");
  return args;
}
