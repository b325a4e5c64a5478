// The launchd job (man launchd.plist): generated with the plist library,
// never by string concatenation, so any label or path is escaped correctly.

import { build } from "plist";
import type { ServiceNames } from "./service-names.js";
import { daemonArguments, type ProgramPaths } from "./program.js";

export interface LaunchdJob {
  Label: string;
  ProgramArguments: string[];
  MachServices: Record<string, boolean>;
  KeepAlive: { SuccessfulExit: boolean };
  RunAtLoad: boolean;
  ProcessType: string;
  StandardOutPath: string;
  StandardErrorPath: string;
  EnvironmentVariables: Record<string, string>;
}

export function launchdJob(names: ServiceNames, program: ProgramPaths, logLevel: string): LaunchdJob {
  return {
    Label: names.label,
    ProgramArguments: [program.node, program.cli, ...daemonArguments(names)],
    // The XPC listener checks in under this name; launchd starts the job on the first connection too.
    MachServices: { [names.service]: true },
    // Restart after a crash, not after a clean exit (SIGTERM, `launchctl bootout`).
    KeepAlive: { SuccessfulExit: false },
    RunAtLoad: true,
    // A broker is latency-sensitive when clients use it and idle otherwise.
    ProcessType: "Adaptive",
    StandardOutPath: `${names.logDir}/${names.label}.out.log`,
    StandardErrorPath: `${names.logDir}/${names.label}.log`,
    EnvironmentVariables: { XPCBUS_LOG_LEVEL: logLevel },
  };
}

export function launchdPlist(job: LaunchdJob): string {
  return `${build(job as unknown as Parameters<typeof build>[0])}\n`;
}
