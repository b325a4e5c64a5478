// systemd units for Linux: a socket unit that owns the listening socket
// (socket activation: the broker starts on the first connection and the
// socket survives its restarts), and the service that runs the daemon.

import { daemonArguments, type ProgramPaths } from "./program.js";
import { serviceNames, type ServiceScope } from "./service-names.js";

export const SOCKET_UNIT = "xpcbus.socket";
export const SERVICE_UNIT = "xpcbus.service";

export interface SystemdUnits {
  socketUnit: string;
  serviceUnit: string;
  /** Where they are installed. */
  directory: string;
}

/** Directories a system unit's PrivateTmp=yes replaces with empty ones of its own. */
const PRIVATE_TMP_DIRS = ["/tmp", "/var/tmp"];

/**
 * Why the system unit could not start this program, or undefined. Its
 * PrivateTmp=yes gives the service empty /tmp and /var/tmp, so a node or a
 * checkout under them is not there for it: every start would fail with
 * "No such file or directory". The installer refuses rather than dropping
 * PrivateTmp: the hardening stays for everyone, and a system service should
 * not run from a directory that tmp cleaners and reboots empty anyway.
 */
export function privateTmpProblem(program: ProgramPaths): string | undefined {
  for (const path of [program.node, program.cli]) {
    const dir = PRIVATE_TMP_DIRS.find((tmp) => path === tmp || path.startsWith(`${tmp}/`));
    if (dir !== undefined) {
      return `the system unit would run ${path}, which is under ${dir}: its PrivateTmp=yes hides ${dir} from the service, so it could never start; install xpcbus (and node) outside ${dir} (e.g. npm install -g), or use --user`;
    }
  }
  return undefined;
}

/** systemd quotes arguments with spaces or specials; plain ones stay as they are. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, "\\$1")}"`;
}

export function systemdUnits(scope: ServiceScope, program: ProgramPaths, logLevel: string, home: string): SystemdUnits {
  const user = scope === "user";
  // %t is the runtime directory: $XDG_RUNTIME_DIR for user units, /run for system ones.
  const listen = "%t/xpcbus/broker.sock";
  const socketPath = user ? "%t/xpcbus/broker.sock" : "/run/xpcbus/broker.sock";
  const names = { ...serviceNames({ scope }), socket: socketPath };
  const execStart = [program.node, program.cli, ...daemonArguments(names, { withService: false })].map(quote).join(" ");
  const socketUnit = [
    "[Unit]",
    "Description=xpcbus broker socket",
    "",
    "[Socket]",
    `ListenStream=${listen}`,
    "SocketMode=0600",
    `DirectoryMode=${user ? "0700" : "0755"}`,
    // The daemon never unlinks a socket it did not create; systemd removes this one.
    "RemoveOnStop=yes",
    "",
    "[Install]",
    "WantedBy=sockets.target",
    "",
  ].join("\n");
  const hardening = user
    ? ["NoNewPrivileges=yes"]
    : [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        // Read-only, not hidden: node or the package may live under /home or /root.
        "ProtectHome=read-only",
        "ReadWritePaths=/run/xpcbus",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictAddressFamilies=AF_UNIX",
        // Not MemoryDenyWriteExecute: V8's JIT needs writable executable memory.
      ];
  const serviceUnit = [
    "[Unit]",
    "Description=xpcbus local pub/sub broker",
    `Requires=${SOCKET_UNIT}`,
    `After=${SOCKET_UNIT}`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${execStart}`,
    // SIGHUP reloads the log level; SIGTERM is a clean stop (exit 0 within 2 s).
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=on-failure",
    `Environment=XPCBUS_LOG_LEVEL=${logLevel}`,
    ...hardening,
    "",
    "[Install]",
    `Also=${SOCKET_UNIT}`,
    "",
  ].join("\n");
  return {
    socketUnit,
    serviceUnit,
    directory: user ? `${home}/.config/systemd/user` : "/etc/systemd/system",
  };
}
