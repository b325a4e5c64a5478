// Installing and removing the broker as a service: the files to write and
// the commands to run, as a plan that `--dry-run` prints and otherwise runs.
// launchd on macOS; systemd on Linux.

import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { XpcbusError } from "../client-sdk/index.js";
import type { ServiceNames } from "./service-names.js";
import { SERVICE_UNIT, SOCKET_UNIT, type SystemdUnits } from "./systemd-units.js";

export type Step =
  | { kind: "mkdir"; path: string }
  | { kind: "write"; path: string; content: string; mode: number }
  | { kind: "remove"; path: string }
  | { kind: "run"; argv: string[]; /** A failure here is reported but does not stop the plan (e.g. bootout of a job not loaded). */ tolerateFailure?: boolean };

export function describeStep(step: Step): string {
  switch (step.kind) {
    case "mkdir":
      return `mkdir -p ${step.path}`;
    case "write":
      return `write ${step.path} (mode ${step.mode.toString(8)})`;
    case "remove":
      return `rm -f ${step.path}`;
    case "run":
      return step.argv.join(" ");
  }
}

function launchdDomain(names: ServiceNames, uid: number): string {
  return names.scope === "system" ? "system" : `gui/${uid}`;
}

export function launchdInstallPlan(names: ServiceNames, plist: string, uid: number): Step[] {
  const domain = launchdDomain(names, uid);
  return [
    { kind: "mkdir", path: dirname(names.plistPath) },
    { kind: "mkdir", path: names.logDir },
    { kind: "write", path: names.plistPath, content: plist, mode: 0o644 },
    // Replacing an installed job: take the old one out first (fails harmlessly if none).
    { kind: "run", argv: ["launchctl", "bootout", `${domain}/${names.label}`], tolerateFailure: true },
    { kind: "run", argv: ["launchctl", "bootstrap", domain, names.plistPath] },
    { kind: "run", argv: ["launchctl", "enable", `${domain}/${names.label}`] },
  ];
}

export function launchdUninstallPlan(names: ServiceNames, uid: number): Step[] {
  return [
    { kind: "run", argv: ["launchctl", "bootout", `${launchdDomain(names, uid)}/${names.label}`], tolerateFailure: true },
    { kind: "remove", path: names.plistPath },
  ];
}

export function launchdStatusPlan(names: ServiceNames, uid: number): Step[] {
  return [{ kind: "run", argv: ["launchctl", "print", `${launchdDomain(names, uid)}/${names.label}`] }];
}

export function systemdInstallPlan(units: SystemdUnits, user: boolean): Step[] {
  const systemctl = user ? ["systemctl", "--user"] : ["systemctl"];
  return [
    { kind: "mkdir", path: units.directory },
    { kind: "write", path: join(units.directory, SOCKET_UNIT), content: units.socketUnit, mode: 0o644 },
    { kind: "write", path: join(units.directory, SERVICE_UNIT), content: units.serviceUnit, mode: 0o644 },
    { kind: "run", argv: [...systemctl, "daemon-reload"] },
    { kind: "run", argv: [...systemctl, "enable", "--now", SOCKET_UNIT] },
  ];
}

export function systemdUninstallPlan(units: SystemdUnits, user: boolean): Step[] {
  const systemctl = user ? ["systemctl", "--user"] : ["systemctl"];
  return [
    { kind: "run", argv: [...systemctl, "disable", "--now", SOCKET_UNIT, SERVICE_UNIT], tolerateFailure: true },
    { kind: "remove", path: join(units.directory, SOCKET_UNIT) },
    { kind: "remove", path: join(units.directory, SERVICE_UNIT) },
    { kind: "run", argv: [...systemctl, "daemon-reload"] },
  ];
}

/** Runs the plan, or only prints it. Output of commands goes to this process's stdout/stderr. */
export function runPlan(steps: Step[], options: { dryRun: boolean; print: (line: string) => void }): void {
  for (const step of steps) {
    options.print(describeStep(step));
    if (options.dryRun) continue;
    switch (step.kind) {
      case "mkdir":
        mkdirSync(step.path, { recursive: true });
        break;
      case "write":
        writeFileSync(step.path, step.content, { mode: step.mode });
        break;
      case "remove":
        rmSync(step.path, { force: true });
        break;
      case "run": {
        const result = spawnSync(step.argv[0] as string, step.argv.slice(1), { stdio: "inherit" });
        if ((result.status !== 0 || result.error !== undefined) && step.tolerateFailure !== true) {
          const why = result.error !== undefined ? result.error.message : `exit status ${result.status}`;
          throw new XpcbusError("invalid_argument", `"${describeStep(step)}" failed (${why})`);
        }
      }
    }
  }
}
