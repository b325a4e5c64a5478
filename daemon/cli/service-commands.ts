// `xpcbus launchd …` and `xpcbus systemd …`: print, install, uninstall (and
// status for launchd) the broker as a service. Every action is a plan of
// file writes and commands; --dry-run prints it without running anything.

import { homedir } from "node:os";
import { currentProgram, launchdJob, launchdPlist, serviceNames, type ServiceScope, systemdUnits } from "../../launchd/index.js";
import {
  launchdInstallPlan,
  launchdStatusPlan,
  launchdUninstallPlan,
  runPlan,
  systemdInstallPlan,
  systemdUninstallPlan,
  type Step,
} from "../../launchd/index.js";
import { DEFAULT_LOG_LEVEL, parseLogLevel } from "../logger.js";
import { CliError } from "./cli-error.js";
import { printLine } from "./output.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";

export interface LaunchdOptions {
  user?: boolean;
  system?: boolean;
  label?: string;
  dev?: boolean;
  socket?: string;
  service?: string;
  logLevel?: string;
  dryRun?: boolean;
}

export interface SystemdOptions {
  user?: boolean;
  logLevel?: string;
  dryRun?: boolean;
}

const ACTIONS = ["print", "install", "uninstall", "status"] as const;

const out = printLine;

function logLevelOf(text: string | undefined): string {
  try {
    return parseLogLevel(text ?? DEFAULT_LOG_LEVEL);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
}

function uid(): number {
  return process.getuid?.() ?? 0;
}

function execute(steps: Step[], options: { dryRun?: boolean; scope: ServiceScope; nativeHere: boolean; elsewhere: string }): void {
  const dryRun = options.dryRun === true;
  if (!dryRun && !options.nativeHere) throw new CliError(options.elsewhere, EXIT_ERROR);
  if (!dryRun && options.scope === "system" && uid() !== 0) {
    throw new CliError("installing the system-wide broker needs root (sudo); or use --user", EXIT_ERROR);
  }
  try {
    runPlan(steps, { dryRun, print: (line) => out(dryRun ? line : `+ ${line}`) });
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_ERROR);
  }
}

export function launchdCommand(action: string, options: LaunchdOptions): void {
  if (!(ACTIONS as readonly string[]).includes(action)) throw new CliError(`unknown action "${action}"; use ${ACTIONS.join(", ")}`, EXIT_USAGE);
  if (options.user === true && options.system === true) throw new CliError("give --user or --system, not both", EXIT_USAGE);
  const scope: ServiceScope = options.system === true ? "system" : "user";
  const names = serviceNames({ scope, dev: options.dev, label: options.label, service: options.service, socket: options.socket });
  const plist = launchdPlist(launchdJob(names, currentProgram(), logLevelOf(options.logLevel)));
  const elsewhere =
    "launchd is macOS's service manager; on Linux run the broker under systemd: xpcbus systemd install --user " +
    "(writes xpcbus.socket and xpcbus.service, then systemctl --user enable --now xpcbus.socket)";
  const nativeHere = process.platform === "darwin";
  switch (action) {
    case "print":
      out(plist);
      return;
    case "install":
      return execute(launchdInstallPlan(names, plist, uid()), { dryRun: options.dryRun, scope, nativeHere, elsewhere });
    case "uninstall":
      return execute(launchdUninstallPlan(names, uid()), { dryRun: options.dryRun, scope, nativeHere, elsewhere });
    case "status":
      return execute(launchdStatusPlan(names, uid()), { dryRun: options.dryRun, scope: "user", nativeHere, elsewhere });
  }
}

export function systemdCommand(action: string, options: SystemdOptions): void {
  if (!["print", "install", "uninstall"].includes(action)) throw new CliError(`unknown action "${action}"; use print, install, uninstall`, EXIT_USAGE);
  const user = options.user === true;
  const scope: ServiceScope = user ? "user" : "system";
  const units = systemdUnits(scope, currentProgram(), logLevelOf(options.logLevel), homedir());
  const elsewhere = "systemd is Linux's service manager; on macOS install a launchd job: xpcbus launchd install --user";
  const nativeHere = process.platform === "linux";
  switch (action) {
    case "print":
      out(`# ${units.directory}/xpcbus.socket\n${units.socketUnit}\n# ${units.directory}/xpcbus.service\n${units.serviceUnit}`);
      return;
    case "install":
      return execute(systemdInstallPlan(units, user), { dryRun: options.dryRun, scope, nativeHere, elsewhere });
    case "uninstall":
      return execute(systemdUninstallPlan(units, user), { dryRun: options.dryRun, scope, nativeHere, elsewhere });
  }
}
