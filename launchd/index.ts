// Service files and installers: launchd (macOS) and systemd (Linux).
export { serviceNames, type ServiceNames, type ServiceScope, type NameOptions } from "./service-names.js";
export { launchdJob, launchdPlist, type LaunchdJob } from "./launchd-plist.js";
export { systemdUnits, privateTmpProblem, SOCKET_UNIT, SERVICE_UNIT, type SystemdUnits } from "./systemd-units.js";
export { currentProgram, daemonArguments, type ProgramPaths } from "./program.js";
export * from "./installer.js";
