// An executable the broker could not verify (read by pid only, because no
// pidfd could be had) never admits a peer through a rule on exe: first the
// rules in process, then a real daemon whose descriptor limit is lowered
// (prlimit --pid) so that it can accept a connection but get no pidfd for it.
import { spawnSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { Client } from "../client-sdk/index.js";
import { evaluate } from "./core/policy.js";
import type { PeerIdentity } from "./core/peer-link.js";
import { parsePolicy } from "./policy-file.js";
import { cleanup, eventually, runCli, startBroker, tempDir } from "./test-support/harness.js";

afterEach(cleanup);
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

const NODE = "/usr/bin/node";
const verified: PeerIdentity = { pid: 4242, uid: 1000, gid: 1000, exe: NODE, exeVerified: true, method: "so_peerpidfd" };
const unverified: PeerIdentity = { ...verified, exeVerified: false, method: "so_peercred" };

describe("policy and an unverified executable", () => {
  const policy = parsePolicy(
    JSON.stringify({
      version: 1,
      rules: [
        { name: "no-tmp", match: { exe: ["/tmp/**"] }, connect: "deny" },
        { name: "node-tools", match: { uid: [1000], exe: ["/usr/*/node"] }, connect: "allow", publish: [">"] },
        { name: "staff", match: { gid: [1000] }, connect: "allow", subscribe: ["public.>"] },
      ],
      otherwise: "deny",
    }),
    "p.json",
  );

  it("an exe rule admits a verified exe only; a uid/gid-only rule still fits, and the reason says why", () => {
    expect(evaluate(policy, verified)).toMatchObject({ allowed: true, rule: "node-tools" });
    const grant = evaluate(policy, unverified);
    expect(grant).toMatchObject({ allowed: true, rule: "staff", rights: { publish: [], subscribe: ["public.>"] } });
    expect(grant.reason).toMatch(/exe \/usr\/bin\/node \(not verified\)/);
    expect(grant.reason).toMatch(/rule "node-tools" was not applied: it matches on exe, and the executable could not be verified/);
  });

  it("with no other rule, an unverified exe is denied, and told it could not be verified", () => {
    const onlyExe = parsePolicy(
      JSON.stringify({ version: 1, rules: [{ name: "node-tools", match: { exe: [NODE] }, connect: "allow", publish: [">"] }], otherwise: "deny" }),
      "p.json",
    );
    const grant = evaluate(onlyExe, unverified);
    expect(grant).toMatchObject({ allowed: false, rule: "otherwise" });
    expect(grant.reason).toMatch(/^no rule of p\.json matches uid 1000, gid 1000, exe \/usr\/bin\/node \(not verified\); the default is deny; rule "node-tools" was not applied/);
    // An identity without the flag (a transport that did not say) is not trusted either.
    const { exeVerified: _, ...unsaid } = verified;
    expect(evaluate(onlyExe, unsaid as PeerIdentity).allowed).toBe(false);
  });

  it("a denying exe rule still fits an unverified exe: refusing is safe whatever the peer runs", () => {
    expect(evaluate(policy, { ...unverified, exe: "/tmp/x/evil" })).toMatchObject({ allowed: false, rule: "no-tmp" });
  });

  it("policy explain --exe-unverified shows what such a peer gets", async () => {
    const file = join(tempDir(), "p.json");
    writeFileSync(file, JSON.stringify({ version: 1, rules: [{ name: "node-tools", match: { uid: [1000], exe: [NODE] }, connect: "allow", publish: [">"] }] }));
    const trusted = await runCli(["policy", "explain", file, "--uid", "1000", "--exe", NODE]);
    expect(trusted).toMatchObject({ code: 0, stdout: expect.stringMatching(/^identity: uid 1000, gid \?, exe \/usr\/bin\/node\nadmitted: rule "node-tools"/) });
    const doubted = await runCli(["policy", "explain", file, "--uid", "1000", "--exe", NODE, "--exe-unverified"]);
    expect(doubted.code).toBe(1);
    expect(doubted.stdout).toMatch(/^identity: uid 1000, gid \?, exe \/usr\/bin\/node \(not verified\)\nDENIED: no rule .*; rule "node-tools" was not applied: it matches on exe, and the executable could not be verified/);
    expect(await runCli(["policy", "explain", file, "--uid", "1000", "--exe-unverified"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--exe-unverified needs --exe/) });
    expect((await runCli(["policy", "explain", file, "--pid", String(process.pid), "--exe-unverified"])).code).toBe(2);
  });
});

const canPrlimit = process.platform === "linux" && spawnSync("sh", ["-c", "command -v prlimit"]).status === 0;

/** The descriptor numbers open in process `pid`. */
function openFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

function prlimitNofile(pid: number, limit: string): void {
  const r = spawnSync("prlimit", ["--pid", String(pid), `--nofile=${limit}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`prlimit failed: ${r.stderr}`);
}

/**
 * Lowers the daemon's RLIMIT_NOFILE so that exactly one more descriptor can
 * be opened: the accepted socket gets the lowest free number, and the pidfd
 * would need the next one, which the limit forbids. Returns a restorer.
 */
function leaveOneFd(pid: number): () => void {
  const before = spawnSync("prlimit", ["--pid", String(pid), "--nofile", "--raw", "--noheadings", "--output=SOFT,HARD"], { encoding: "utf8" });
  const [soft, hard] = before.stdout.trim().split(/\s+/);
  const open = new Set(openFds(pid));
  let free = 0;
  while (open.has(free)) free++;
  let next = free + 1;
  while (open.has(next)) next++;
  prlimitNofile(pid, `${next}:${hard}`);
  return () => prlimitNofile(pid, `${soft}:${hard}`);
}

describe.skipIf(!canPrlimit)("a daemon that can get no pidfd for a peer", () => {
  it("denies through the exe rule, says the exe could not be verified, and a uid-only rule still admits after a reload", async () => {
    const dir = tempDir();
    const file = join(dir, "policy.json");
    const me = process.getuid!();
    // monitor: the observer reads the other connections in status.
    const exeRule = { name: "node", match: { uid: [me], exe: [process.execPath] }, connect: "allow", publish: [">"], subscribe: [">"], monitor: true };
    writeFileSync(file, JSON.stringify({ version: 1, rules: [exeRule], otherwise: "deny" }));
    const broker = await startBroker({ args: ["--policy", file] });
    const observer = await connect({ socket: broker.socket, name: "observer", reconnect: false });
    clients.push(observer);
    expect((await observer.status()).peers.find((p) => p.name === "observer")).toMatchObject({ exe: process.execPath, exeVerified: true });

    // Denied: the only rule is on exe, and this connection's exe is read by pid only.
    const fdsBefore = openFds(broker.pid).length;
    let restore = leaveOneFd(broker.pid);
    const refused = await connect({ socket: broker.socket, name: "starved", reconnect: false }).then(
      () => undefined,
      (error: unknown) => error,
    );
    restore();
    expect(refused).toMatchObject({ code: "connection_denied" });
    expect((refused as Error).message).toMatch(
      /no rule of .*policy\.json matches uid \d+, gid \d+, exe .* \(not verified\); the default is deny; rule "node" was not applied: it matches on exe, and the executable could not be verified/,
    );
    await broker.stderr.waitForJson((l) => l["msg"] === "peer executable not verified" && l["peerExe"] === process.execPath);
    await broker.stderr.waitForJson((l) => l["msg"] === "connection denied by policy" && l["peerExeVerified"] === false);

    // A uid-only rule after it: the same kind of peer is admitted by that rule, with its rights only.
    writeFileSync(file, JSON.stringify({ version: 1, rules: [exeRule, { name: "uid-only", match: { uid: [me] }, connect: "allow", subscribe: ["public.>"] }], otherwise: "deny" }));
    broker.child.kill("SIGHUP");
    await broker.stderr.waitForJson((l) => l["msg"] === "SIGHUP: policy reloaded");
    // The refused connection's descriptor must be closed first, or the next accept would reuse it and leave room for a pidfd.
    await eventually(async () => (openFds(broker.pid).length <= fdsBefore ? true : undefined), 5_000, "the refused connection's fd to close");
    restore = leaveOneFd(broker.pid);
    let admitted: Client;
    try {
      admitted = await connect({ socket: broker.socket, name: "starved", reconnect: false });
    } finally {
      restore();
    }
    clients.push(admitted);
    await expect(admitted.publish("x", 1)).rejects.toMatchObject({
      code: "permission_denied",
      message: expect.stringMatching(/rule "uid-only" does not allow publish on "x" for uid \d+ \(exe .* \(not verified\)\)/),
    });
    const starved = (await observer.status()).peers.find((p) => p.name === "starved");
    expect(starved).toMatchObject({ exe: process.execPath, exeVerified: false, identityMethod: "so_peercred" });
  });
});
