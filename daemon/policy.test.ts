// The policy layer: rules and coverage as units; the rights a grant gives, op
// by op, through the SDK over the memory transport (the broker in this
// process, with the policy and a notifier); then the real daemon with a
// policy file, clients of another uid (setpriv), denial reasons as the client
// receives them, and SIGHUP reloads.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { DEFAULT_SERVICE_NAME } from "../protocol/index.js";
import { DarwinNotifier, TableNotifier, type Notifier } from "./index.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";
import { covers, evaluate, ownerOnlyPolicy } from "./core/policy.js";
import { parsePolicy } from "./policy-file.js";
import { CLI, cleanup, LineReader, runCli, SDK, tempDir } from "./test-support/harness.js";

afterEach(cleanup);
const me = process.getuid!();
const id = (uid: number, exe = "/usr/bin/node", gid = uid) => ({ pid: 1, uid, gid, exe, exeVerified: true, method: "test" });

describe("policy rules", () => {
  it.each([
    [">", "a", true],
    [">", "a.b.>", true],
    ["a.>", "a.b", true],
    ["a.>", "a.*.c", true],
    ["a.>", "a", false],
    ["a.>", ">", false],
    ["a.*", "a.b", true],
    ["a.*", "a.*", true],
    ["a.*", "a.>", false],
    ["a.*", "a.b.c", false],
    ["a.b", "a.b", true],
    ["a.b", "a.*", false],
    ["*.b", "x.b", true],
  ])("%s covers %s: %s", (right, requested, expected) => {
    expect(covers(right, requested)).toBe(expected);
  });

  it("lets the first matching rule decide, by uid, gid and exe glob, and names the attribute", () => {
    const policy = parsePolicy(
      JSON.stringify({
        version: 1,
        rules: [
          { name: "no-scripts", match: { exe: ["/tmp/**"] }, connect: "deny" },
          { name: "node-tools", match: { uid: [1000], exe: ["/usr/*/node"] }, connect: "allow", publish: ["tools.>"], subscribe: [">"] },
          { name: "staff", match: { gid: [50] }, connect: "allow", subscribe: ["public.*"] },
        ],
        otherwise: "deny",
      }),
      "test.json",
    );
    expect(evaluate(policy, id(1000, "/tmp/x/evil")).reason).toMatch(/rule "no-scripts" \(matching exe\) denies uid 1000/);
    const tools = evaluate(policy, id(1000));
    expect(tools).toMatchObject({ allowed: true, rule: "node-tools", rights: { publish: ["tools.>"], request: [] } });
    expect(evaluate(policy, id(1000, "/opt/node/bin/node", 50)).rule).toBe("staff");
    expect(evaluate(policy, id(2000))).toMatchObject({ allowed: false, rule: "otherwise", reason: expect.stringMatching(/no rule of test.json matches uid 2000/) });
    expect(evaluate(ownerOnlyPolicy(501), id(0)).allowed).toBe(true);
    expect(evaluate(ownerOnlyPolicy(501), id(502))).toMatchObject({
      allowed: false,
      reason: "only uid 501 and root may use this broker (no --policy given); you are uid 502",
    });
    expect(evaluate(ownerOnlyPolicy(0), id(65534)).reason).toBe("only root may use this broker (no --policy given); you are uid 65534");
  });

  it("matches team id and code-signing requirement only where the transport established them (XPC on macOS)", () => {
    const policy = parsePolicy(
      JSON.stringify({
        version: 1,
        rules: [
          { name: "signed", match: { codeSigning: 'anchor apple generic and certificate leaf[subject.OU] = "TEAM1"' }, connect: "allow", publish: [">"] },
          { name: "team2", match: { teamId: "TEAM2" }, connect: "allow", subscribe: [">"] },
        ],
      }),
      "p.json",
    );
    const token = new Uint8Array(32);
    const check = (auditToken: Uint8Array, requirement: string): boolean => auditToken === token && requirement.includes("TEAM1");
    expect(evaluate(policy, { ...id(501), auditToken: token }, check).rule).toBe("signed");
    expect(evaluate(policy, { ...id(501), auditToken: token, teamId: "TEAM2" }, () => false).rule).toBe("team2");
    // A Unix-socket or Linux peer has neither: no such rule fits it.
    expect(evaluate(policy, id(501), check)).toMatchObject({ allowed: false, rule: "otherwise" });
  });

  it("refuses a bad file whole, naming the place", () => {
    const bad = (p: unknown): string => {
      try {
        parsePolicy(JSON.stringify(p), "f.json");
        return "accepted";
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad({ version: 2, rules: [] })).toMatch(/version: must be 1/);
    expect(bad({ version: 1, rules: [{ name: "a", connect: "maybe" }] })).toMatch(/rules\[0\]\.connect/);
    expect(bad({ version: 1, rules: [{ name: "a", connect: "allow", publish: ["a..b"] }] })).toMatch(/rules\[0\]\.publish\[0\]: .*empty token/);
    expect(bad({ version: 1, rules: [{ name: "a", connect: "allow", match: { user: "x" } }] })).toMatch(/match\.user: unknown key/);
    expect(bad({ version: 1, rules: [{ name: "a", connect: "allow" }, { name: "a", connect: "deny" }] })).toMatch(/used twice/);
    expect(bad({ version: 1, rules: [], extra: 1 })).toMatch(/extra: unknown key/);
  });
});

/** A world-reachable broker (socket 0666 in a 0755 directory) so another uid can try; the policy is the gate. */
async function policyBroker(policy: object) {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const file = join(dir, "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  const socket = join(dir, "b.sock");
  const child = spawn(process.execPath, [CLI, "daemon", "--socket", socket, "--socket-mode", "0666", "--policy", file, "--log-level", "info"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log = new LineReader(child.stderr);
  await log.waitForJson((l) => l["msg"] === "ready");
  return { socket, file, child, log, stop: () => child.kill("SIGKILL") };
}

const canSetpriv = me === 0 && spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;

describe("policy rights (memory transport)", () => {
  it("allows and denies publish, subscribe, request and watch per rule, with the reason at the client", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logged = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n")) if (line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const notifier: Notifier =
      process.platform === "darwin" ? new DarwinNotifier(DEFAULT_SERVICE_NAME, 64) : new TableNotifier({ path: join(tempDir(), "b.notify"), prefix: DEFAULT_SERVICE_NAME, slots: 64, maxStates: 64 });
    const policy = parsePolicy(
      JSON.stringify({
        version: 1,
        rules: [{ name: "node-limited", match: { uid: [me], exe: [process.execPath] }, connect: "allow", publish: ["ok.>"], subscribe: ["ok.>"], request: ["svc.ok"], watch: ["ok.*"] }],
        otherwise: "deny",
      }),
      "policy.json",
    );
    // The memory transport's peer is this process: its uid and executable, as SO_PEERCRED + pidfd would say.
    const memory = await startMemoryBroker({ policy, notifier, logger: pino({ level: "info" }, logged) });
    try {
      const c = await memory.client();
      await c.publish("ok.x", 1);
      await expect(c.publish("secret.x", 1)).rejects.toMatchObject({ code: "permission_denied", message: expect.stringMatching(/rule "node-limited" does not allow publish on "secret\.x" for uid \d+/) });
      await c.subscribe("ok.*");
      await expect(c.subscribe(">")).rejects.toMatchObject({ code: "permission_denied" });
      await expect(c.get("secret.x")).rejects.toMatchObject({ code: "permission_denied" });
      await expect(c.request("svc.other", 1)).rejects.toMatchObject({ code: "permission_denied" });
      await expect(c.request("svc.ok", 1)).rejects.toMatchObject({ code: "no_responders" });
      await c.watch("ok.thing");
      await expect(c.watch("secret.thing")).rejects.toMatchObject({ code: "permission_denied" });
      await expect(c.post("any.name")).rejects.toMatchObject({ code: "permission_denied" });
      // The connection survived every denial.
      await c.flush();
      await c.close();
      expect(lines.some((l) => l["msg"] === "operation denied by policy" && l["right"] === "publish" && l["peerUid"] === me)).toBe(true);
    } finally {
      await memory.stop();
      notifier.close?.();
    }
  });

  it("denies a peer of another uid at connect, with the rule's reason, before closing it", async () => {
    const policy = parsePolicy(JSON.stringify({ version: 1, rules: [{ name: "root-only", match: { uid: [0] }, connect: "allow", publish: [">"] }], otherwise: "deny" }), "policy.json");
    const memory = await startMemoryBroker({ policy });
    try {
      await expect(memory.client({ identity: id(65534) })).rejects.toMatchObject({ code: "connection_denied", message: expect.stringMatching(/no rule of policy\.json matches uid 65534/) });
    } finally {
      await memory.stop();
    }
  });
});

describe("policy on a real daemon", () => {
  it.skipIf(!canSetpriv)("denies another uid's connection with the rule and attribute, before closing it (setpriv as nobody)", async () => {
    const b = await policyBroker({ version: 1, rules: [{ name: "root-only", match: { uid: [0] }, connect: "allow", publish: [">"] }], otherwise: "deny" });
    try {
      const script = `import { connect } from ${JSON.stringify(SDK)};
try { await connect({ socket: ${JSON.stringify(b.socket)}, reconnect: false }); console.log("connected"); }
catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
      const result = spawnSync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "--input-type=module", "-e", script]);
      const out = JSON.parse(result.stdout.toString().trim()) as { code: string; message: string };
      expect(out.code).toBe("connection_denied");
      expect(out.message).toMatch(/no rule of .*policy\.json matches uid 65534/);
      await b.log.waitForJson((l) => l["msg"] === "connection denied by policy" && l["peerUid"] === 65534);
    } finally {
      b.stop();
    }
  });

  it("reloads the policy on SIGHUP: new rights apply at once, a bad file keeps the old policy", async () => {
    const b = await policyBroker({ version: 1, rules: [{ name: "v1", match: { uid: [me] }, connect: "allow", publish: ["v1.>"] }] });
    try {
      const c = await connect({ socket: b.socket, reconnect: false });
      await expect(c.publish("v2.x", 1)).rejects.toMatchObject({ code: "permission_denied" });
      writeFileSync(b.file, JSON.stringify({ version: 1, rules: [{ name: "v2", match: { uid: [me] }, connect: "allow", publish: ["v2.>"] }] }));
      b.child.kill("SIGHUP");
      await b.log.waitForJson((l) => l["msg"] === "SIGHUP: policy reloaded");
      await c.publish("v2.x", 1);
      await expect(c.publish("v1.x", 1)).rejects.toMatchObject({ message: expect.stringMatching(/rule "v2"/) });
      writeFileSync(b.file, "{ broken");
      b.child.kill("SIGHUP");
      await b.log.waitForJson((l) => l["msg"] === "SIGHUP: policy refused; the previous one stays");
      await c.publish("v2.y", 1);
      // A reload that no longer admits a connected peer tells it why and closes it; the client closes with that reason.
      writeFileSync(b.file, JSON.stringify({ version: 1, rules: [], otherwise: "deny" }));
      b.child.kill("SIGHUP");
      expect(await c.closed()).toMatchObject({ code: "connection_denied", name: "ConnectionRefusedError" });
    } finally {
      b.stop();
    }
  });

  it("policy check and explain from the CLI", async () => {
    const dir = tempDir();
    const file = join(dir, "p.json");
    writeFileSync(file, JSON.stringify({ version: 1, rules: [{ name: "me", match: { uid: [me], exe: [process.execPath] }, connect: "allow", subscribe: ["a.>"] }] }));
    expect(await runCli(["policy", "check", file])).toMatchObject({ code: 0, stdout: "ok: 1 rule(s), otherwise deny\n" });
    const explained = await runCli(["policy", "explain", file, "--pid", String(process.pid)]);
    expect(explained.stdout).toMatch(/admitted: rule "me" \(matching uid and exe\)/);
    expect(explained.stdout).toMatch(/subscribe: a\.>/);
    expect((await runCli(["policy", "explain", file, "--uid", "4242"])).stdout).toMatch(/DENIED: no rule/);
    writeFileSync(file, "{}");
    const bad = await runCli(["policy", "check", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/version: must be 1/);
  });
});

