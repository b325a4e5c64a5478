// Peer identity of an accepted Unix socket, through the native addon.
// Node has no SO_PEERCRED, so the addon reads it from the socket's fd.

import type { Socket } from "node:net";
import type { Logger } from "pino";
import { loadNative } from "../../native/index.js";
import type { PeerIdentity } from "../core/peer-link.js";

const UNKNOWN: PeerIdentity = { pid: null, uid: null, gid: null, exe: null, exeVerified: false, method: "none" };

/** libuv keeps the fd on the socket's handle; it is there for the socket's whole life. */
function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return typeof handle?.fd === "number" && handle.fd >= 0 ? handle.fd : undefined;
}

export function unixPeerIdentity(socket: Socket, log: Logger): PeerIdentity {
  const fd = socketFd(socket);
  if (fd === undefined) {
    log.warn("accepted socket has no file descriptor; peer identity unknown");
    return UNKNOWN;
  }
  try {
    const creds = loadNative().peerCredentials(fd);
    if (creds.exe === null) log.debug({ peerPid: creds.pid, reason: creds.exeError }, "peer executable not confirmed");
    // Info, not warn: on an old kernel every peer is so, and only a policy with exe rules cares.
    else if (creds.exeVerified !== true) log.info({ peerPid: creds.pid, peerExe: creds.exe, reason: creds.exeError }, "peer executable not verified");
    return { pid: creds.pid, uid: creds.uid, gid: creds.gid, exe: creds.exe, exeVerified: creds.exe !== null && creds.exeVerified === true, method: creds.method };
  } catch (error) {
    log.warn({ err: error }, "cannot read peer credentials; peer identity unknown");
    return UNKNOWN;
  }
}
