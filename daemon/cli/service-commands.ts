// `xpcbus launchd …` and `xpcbus systemd …`: print, install, uninstall (and
// status for launchd) the broker as a service. Every action is a plan of
// file writes and commands; --dry-run prints it without running anything.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { currentProgram, launchdJob, launchdPlist, privateTmpProblem, serviceNames, type ServiceScope, systemdUnits } from "../../launchd/index.js";
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
  system?: boolean;
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

/** A diagnostic before the plan: on stderr, so the plan on stdout stays what it was. */
function note(line: string): void {
  process.stderr.write(`xpcbus: ${line}\n`);
}

function execute(
  steps: Step[],
  options: { dryRun?: boolean; scope: ServiceScope; nativeHere: boolean; elsewhere: string; /** Throws when the plan cannot work here; runs before anything is written. */ check?: () => void },
): void {
  const dryRun = options.dryRun === true;
  if (!dryRun && !options.nativeHere) throw new CliError(options.elsewhere, EXIT_ERROR);
  if (!dryRun && options.scope === "system" && uid() !== 0) {
    throw new CliError("installing the system-wide broker needs root (sudo); or use --user", EXIT_ERROR);
  }
  if (!dryRun) options.check?.();
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
  // Printed or dry-run off macOS, the plan is for a Mac: say so before it, not after a user has read it as this machine's.
  if (!nativeHere && (action === "print" || options.dryRun === true)) {
    note(`launchd is macOS's service manager: this is the plan for macOS, not for this ${process.platform} machine (here: xpcbus systemd print|install)`);
  }
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
  if (options.user === true && options.system === true) throw new CliError("give --user or --system, not both", EXIT_USAGE);
  const user = options.user === true;
  const scope: ServiceScope = user ? "user" : "system";
  const program = currentProgram();
  const units = systemdUnits(scope, program, logLevelOf(options.logLevel), homedir());
  const elsewhere = "systemd is Linux's service manager; on macOS install a launchd job: xpcbus launchd install --user";
  const nativeHere = process.platform === "linux";
  const unstartable = scope === "system" ? privateTmpProblem(program) : undefined;
  if (!nativeHere && (action === "print" || options.dryRun === true)) {
    note(`systemd is Linux's service manager: these are the units for Linux, not for this ${process.platform} machine (here: xpcbus launchd print|install)`);
  }
  if (unstartable !== undefined && (action === "print" || (action === "install" && options.dryRun === true))) note(`warning: ${unstartable}`);
  switch (action) {
    case "print":
      out(`# ${units.directory}/xpcbus.socket\n${units.socketUnit}\n# ${units.directory}/xpcbus.service\n${units.serviceUnit}`);
      return;
    case "install":
      return execute(systemdInstallPlan(units, user), {
        dryRun: options.dryRun,
        scope,
        nativeHere,
        elsewhere,
        check: () => {
          if (unstartable !== undefined) throw new CliError(`${unstartable}; nothing was written`, EXIT_ERROR);
          checkServiceManager(user);
        },
      });
    case "uninstall":
      return execute(systemdUninstallPlan(units, user), { dryRun: options.dryRun, scope, nativeHere, elsewhere });
  }
}

/** How long `systemctl --user show-environment` may take to say whether a user manager answers. */
const SYSTEMCTL_CHECK_TIMEOUT_MS = 5000;

/**
 * Fails, before anything is written, when no systemd would take the units:
 * `systemctl enable` at the end of the plan would fail ("Failed to connect
 * to bus") and leave the unit files behind. For --user that is a user
 * manager reachable on its bus (a login session, or lingering); for the
 * system units, systemd running as init (sd_booted(): /run/systemd/system).
 */
function checkServiceManager(user: boolean): void {
  if (!user) {
    if (!existsSync("/run/systemd/system")) {
      throw new CliError("systemd is not running on this machine (no /run/systemd/system): there is no service manager to install the units into; nothing was written", EXIT_ERROR);
    }
    return;
  }
  const probe = spawnSync("systemctl", ["--user", "show-environment"], { stdio: ["ignore", "ignore", "pipe"], timeout: SYSTEMCTL_CHECK_TIMEOUT_MS });
  if (probe.error !== undefined && (probe.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new CliError("systemctl is not installed: this machine does not run systemd; nothing was written", EXIT_ERROR);
  }
  if (probe.status === 0) return;
  const why = probe.error?.message ?? probe.stderr.toString().trim().split("\n")[0] ?? `exit status ${probe.status}`;
  const me = process.env["USER"] ?? "$USER";
  throw new CliError(
    `no systemd user manager answers for this user (systemctl --user: ${why || `exit status ${probe.status}`}): ` +
      `keep one running with "loginctl enable-linger ${me}" and log in again (or set XDG_RUNTIME_DIR=/run/user/${uid()}), ` +
      `or install the system units instead: sudo xpcbus systemd install --system; nothing was written`,
    EXIT_ERROR,
  );
}
