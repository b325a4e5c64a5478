// `xpcbus policy check FILE` and `xpcbus policy explain FILE --pid N | --uid N [--gid N] [--exe PATH [--exe-unverified]]`
// (exit 0 admitted, 1 denied, 2 usage).

import { readFileSync, readlinkSync } from "node:fs";
import { describeIdentity, evaluate, RIGHTS } from "../core/policy.js";
import type { PeerIdentity } from "../core/peer-link.js";
import { readPolicyFile } from "../policy-file.js";
import { loadNative, type NativeAddon } from "../../native/index.js";
import { CliError, ReportedFailure } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";

function load(file: string) {
  try {
    return readPolicyFile(file);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
}

export function policyCheckCommand(file: string): void {
  const policy = load(file);
  process.stdout.write(`ok: ${policy.rules.length} rule(s), otherwise ${policy.otherwise}\n`);
}

/**
 * A live process's identity as the broker would see it at connect: from
 * /proc on Linux, from proc_pidinfo and proc_pidpath on macOS (the native
 * addon). The process is alive and named by the caller: as a broker with a
 * pidfd or an audit token would, the exe is taken as verified.
 */
function identityOfPid(pid: number): PeerIdentity {
  if (process.platform === "darwin") return identityOfPidMac(pid);
  if (process.platform !== "linux") {
    throw new CliError(`--pid reads a process's identity on Linux and macOS only (this is ${process.platform}); give --uid, --gid and --exe`, EXIT_USAGE);
  }
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    throw new CliError(`no process ${pid} (or /proc is not readable)`, EXIT_USAGE);
  }
  const field = (name: string): number | null => {
    const line = status.split("\n").find((l) => l.startsWith(`${name}:`));
    // Effective ids, as SO_PEERCRED reports them.
    const value = line?.split(/\s+/)[2];
    return value === undefined ? null : Number(value);
  };
  let exe: string | null = null;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    // Another user's process: the broker (as root) would see it; we may not.
  }
  return { pid, uid: field("Uid"), gid: field("Gid"), exe, exeVerified: exe !== null, method: "proc" };
}

function identityOfPidMac(pid: number): PeerIdentity {
  let found: ReturnType<NonNullable<NativeAddon["processIdentity"]>>;
  try {
    const read = loadNative().processIdentity;
    if (read === undefined) throw new Error("this build of the native addon has no processIdentity");
    found = read(pid);
  } catch (error) {
    throw new CliError(`cannot read the identity of process ${pid}: ${(error as Error).message}; give --uid, --gid and --exe instead`, EXIT_USAGE);
  }
  if (found === null) throw new CliError(`no process ${pid}`, EXIT_USAGE);
  return { pid, uid: found.uid, gid: found.gid, exe: found.exe, exeVerified: found.exe !== null, method: "proc_pidinfo" };
}

/** The numbers are parsed (and --pid refused beside --uid, --gid or --exe) by the option declarations in main.ts. */
export function policyExplainCommand(file: string, options: { pid?: number; uid?: number; gid?: number; exe?: string; exeUnverified?: boolean }): void {
  if (options.exeUnverified === true && options.exe === undefined) {
    throw new CliError("--exe-unverified needs --exe (the executable that could not be verified)", EXIT_USAGE);
  }
  const policy = load(file);
  let identity: PeerIdentity;
  if (options.pid !== undefined) {
    identity = identityOfPid(options.pid);
  } else if (options.uid !== undefined) {
    const exe = options.exe ?? null;
    identity = { pid: null, uid: options.uid, gid: options.gid ?? null, exe, exeVerified: exe !== null && options.exeUnverified !== true, method: "given" };
  } else {
    throw new CliError("give --pid N, or --uid N (with --gid and --exe if the rules use them)", EXIT_USAGE);
  }
  const grant = evaluate(policy, identity);
  const out = [
    `identity: ${describeIdentity(identity)}`,
    `${grant.allowed ? "admitted" : "DENIED"}: ${grant.reason}`,
    ...(grant.allowed ? RIGHTS.map((right) => `  ${right}: ${grant.rights[right].length > 0 ? grant.rights[right].join(" ") : "(nothing)"}`) : []),
    ...(grant.allowed ? [`  monitor: ${grant.monitor ? "yes (status shows the whole broker)" : "no (status shows its own connection only)"}`] : []),
  ];
  process.stdout.write(`${out.join("\n")}\n`);
  // Like grep: scripts can branch on the verdict; stdout has already said it.
  if (!grant.allowed) throw new ReportedFailure("the policy denies this identity", EXIT_ERROR);
}
