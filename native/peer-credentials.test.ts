// peerCredentials(fd) in a real process: with a pidfd the executable is
// verified; with no descriptor left for one (the state a broker at its fd
// limit is in, like an old kernel or a seccomp filter) the executable is
// still read, by pid alone, and reported as not verified.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const linux = process.platform === "linux";
const LOADER = join(import.meta.dirname, "..", "dist", "native", "loader.js");

/** Low enough to fill quickly, high enough for Node to start. */
const NOFILE = 256;

/**
 * Runs in a child whose RLIMIT_NOFILE is NOFILE: accepts a connection from
 * itself on a Unix socket, reads its peer's credentials, then opens
 * /dev/null until EMFILE and reads them again.
 */
const SCRIPT = `
import { mkdtempSync, openSync, closeSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { loadNative } from ${JSON.stringify(LOADER)};
const native = loadNative();
const dir = mkdtempSync(join(tmpdir(), "xpcbus-creds-"));
const server = createServer();
server.listen(join(dir, "s.sock"));
await once(server, "listening");
const accepted = once(server, "connection");
const client = connect(join(dir, "s.sock"));
const [socket] = await accepted;
const fd = socket._handle.fd;
const withFds = native.peerCredentials(fd);
const fillers = [];
let starved;
try {
  for (;;) {
    try { fillers.push(openSync("/dev/null", "r")); } catch (e) { if (e.code === "EMFILE") break; throw e; }
  }
  starved = native.peerCredentials(fd);
} finally {
  for (const f of fillers) closeSync(f);
}
client.destroy(); socket.destroy(); server.close(); rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify({ withFds, starved, fillers: fillers.length, pid: process.pid, exe: process.execPath }));
`;

describe.skipIf(!linux)("peer credentials without a pidfd (Linux)", () => {
  it("reads the executable but reports it as not verified when no descriptor is left for a pidfd", () => {
    // ulimit in sh: lowering one's own limit needs no privilege, and sh is everywhere.
    const child = spawnSync("sh", ["-c", `ulimit -n ${NOFILE} && exec "$0" --input-type=module -e "$1"`, process.execPath, SCRIPT], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout) as {
      withFds: Record<string, unknown>;
      starved: Record<string, unknown>;
      fillers: number;
      pid: number;
      exe: string;
    };
    expect(out.fillers).toBeGreaterThan(0);
    expect(out.fillers).toBeLessThan(NOFILE);
    // The control: with descriptors to spare, a pidfd ties the exe to the peer.
    expect(out.withFds).toMatchObject({ pid: out.pid, exe: out.exe, exeVerified: true, exeError: null });
    expect(["so_peerpidfd", "pidfd_open"]).toContain(out.withFds["method"]);
    // Starved: same pid and path, but read by pid only, and said so.
    expect(out.starved).toMatchObject({ pid: out.pid, exe: out.exe, exeVerified: false, method: "so_peercred" });
    expect(out.starved["exeError"]).toMatch(/read by pid only, without a pidfd \(SO_PEERPIDFD: .*; pidfd_open: Too many open files\)/);
  });
});
