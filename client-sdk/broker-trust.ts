// Whether what answered on the broker's socket is a broker this client may
// talk to (docs/SECURITY.md, "Trusting the broker"): the peer's uid, read from
// the connected socket before anything is sent, and, for the default path
// only, the socket's directory. Pure checks plus the one native read.

import type { Socket } from "node:net";
import { loadNative } from "../native/index.js";
import { InvalidArgumentError, UntrustedBrokerError, XpcbusError } from "./errors.js";

/** Environment variable naming one more uid whose broker the client trusts (a system broker's service user). */
export const BROKER_UID_ENV = "XPCBUS_BROKER_UID";

/** Largest uid: (uid_t)-1 is "no uid" to the kernel, never a process's. */
const MAX_UID = 4_294_967_294;

/** This process's effective uid: the one SO_PEERCRED reports for a broker it started itself. */
export function ownUid(): number {
  return typeof process.geteuid === "function" ? process.geteuid() : 0;
}

/** A uid given as an option, checked: an integer from 0 to 4294967294. */
export function parseBrokerUid(value: unknown, from: string): number {
  const number = typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0 || number > MAX_UID) {
    throw new InvalidArgumentError(`${from} must be a uid (an integer from 0 to ${MAX_UID}), not ${JSON.stringify(value)}`);
  }
  return number;
}

/** `$XPCBUS_BROKER_UID` as a uid, or undefined when unset or empty. */
export function brokerUidFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env[BROKER_UID_ENV];
  if (value === undefined || value === "") return undefined;
  return parseBrokerUid(value, `$${BROKER_UID_ENV}`);
}

/** The uids a client trusts: its own, root's, and the one named on purpose. */
export function isTrustedBrokerUid(uid: number, ownUidValue: number, trustedUid: number | undefined): boolean {
  return uid === ownUidValue || uid === 0 || uid === trustedUid;
}

/** What a directory check needs of a stat: fs.Stats has these. */
export interface DirectoryStat {
  uid: number;
  mode: number;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

/**
 * Why the default socket's directory is not to be trusted, or undefined when
 * it is: it must be a real directory (not a symlink, which lstat shows),
 * owned by `expectedUid`, and writable by neither group nor others (anyone who
 * can write it can put their own socket at the broker's name).
 */
export function directoryProblem(dir: string, stat: DirectoryStat, expectedUid: number): string | undefined {
  const mode = (stat.mode & 0o7777).toString(8).padStart(4, "0");
  if (stat.isSymbolicLink()) return `${dir} is a symbolic link, not the broker's directory`;
  if (!stat.isDirectory()) return `${dir} is not a directory`;
  if (stat.uid !== expectedUid) return `${dir} belongs to uid ${stat.uid}, not ${expectedUid} (mode ${mode})`;
  if ((stat.mode & 0o022) !== 0) return `${dir} (owner uid ${stat.uid}) has mode ${mode}: writable by ${(stat.mode & 0o020) !== 0 ? "its group" : "others"}`;
  return undefined;
}

/** The advice every refusal ends with. */
const HOW_TO_TRUST = `trust it on purpose with connect({ brokerUid }), --broker-uid <uid> or $${BROKER_UID_ENV}`;

/** The refusal of a default socket's directory. */
export function untrustedDirectory(path: string, dir: string, problem: string): UntrustedBrokerError {
  return new UntrustedBrokerError(
    dir,
    undefined,
    `refusing the default broker socket ${path}: ${problem}; someone else could have put a socket there. ` +
      `Remove the directory so your broker makes it anew, or name the socket on purpose (--socket, $XPCBUS_SOCKET)`,
  );
}

/** Loads the addon before connecting: without it the broker cannot be checked, so the client does not connect. */
export function assertCredentialsReadable(): void {
  try {
    loadNative();
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new XpcbusError(
      "native_unavailable",
      `the Unix transport reads the broker's uid through the native addon before sending anything, and cannot: ${message}`,
      { cause },
    );
  }
}

/**
 * Reads the uid of the process at the other end of a connected socket
 * (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS) and refuses it unless it is
 * trusted. Throws UntrustedBrokerError; the caller closes the socket.
 */
export function checkBrokerPeer(socket: Socket, path: string, trustedUid: number | undefined): number {
  // A connected net.Socket's libuv handle; its fd is what getsockopt needs.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new UntrustedBrokerError(path, undefined, `cannot check the broker on ${path}: the connected socket has no file descriptor`);
  }
  let uid: number | null;
  try {
    uid = loadNative().peerCredentials(fd).uid;
  } catch (cause) {
    throw new UntrustedBrokerError(path, undefined, `cannot read the credentials of the broker on ${path}: ${(cause as Error).message}`, cause);
  }
  if (uid === null) throw new UntrustedBrokerError(path, undefined, `the system did not say which uid answered on ${path}; nothing was sent`);
  const own = ownUid();
  if (!isTrustedBrokerUid(uid, own, trustedUid)) {
    throw new UntrustedBrokerError(
      path,
      uid,
      `the broker on ${path} runs as uid ${uid}, not as this process's uid ${own} or root${trustedUid === undefined ? "" : ` or the trusted uid ${trustedUid}`}; ` +
        `nothing was sent to it. If it is a broker you mean to use, ${HOW_TO_TRUST}`,
    );
  }
  return uid;
}
