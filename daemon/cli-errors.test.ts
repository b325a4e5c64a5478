// The CLI when things go wrong: every failure is one line on stderr (never a
// stack trace) with the documented exit code, and says what to do. Real CLI
// processes against real daemons; another uid through setpriv (as root).
// Also: the daemon's JSON log lines never carry a key twice.
import { spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { STDIN_CHECKPOINT_LINES } from "./cli/pub-stdin.js";
import { CLI, cleanup, runCli, spawnBroker, spawnCli, startBroker, tempDir, waitForSubscription, type BrokerProcess, type CliResult } from "./test-support/harness.js";

const me = process.getuid!();
const canSetpriv = me === 0 && spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;

/** Runs `xpcbus ...args` as uid/gid 65534 (nobody), as policy.test.ts does. */
function runCliAsNobody(args: string[]): CliResult {
  const result = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, CLI, ...args], { timeout: 15_000 });
  return { code: result.status, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

/** Exactly one line on stderr, with the CLI's prefix and no stack frame. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^xpcbus: /);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0] as string;
}

describe("pub --stdin with lines that cannot be sent", () => {
  let broker: BrokerProcess;
  beforeAll(async () => {
    // A small payload limit, so "too large" needs no megabyte of input.
    broker = await startBroker({ args: ["--limit", "maxPayloadBytes=64"] });
  });
  afterAll(cleanup);
  const s = (): string[] => ["--socket", broker.socket];

  const waitSubscribed = (subject: string): Promise<void> => waitForSubscription(broker.socket, subject);

  it("refuses a bad subject before reading stdin: exit 2, one line", async () => {
    const result = await runCli(["pub", "bad..subject", "--stdin", ...s()], { input: "one\ntwo\n" });
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/^xpcbus: subject "bad\.\.subject" has an empty token.*\[invalid_subject\]$/);
  });

  it("reports a line over the payload limit by its number, sends the others, exits 1", async () => {
    const sub = spawnCli(["sub", "big", "--count", "2", ...s()]);
    await waitSubscribed("big");
    const result = await runCli(["pub", "big", "--stdin", ...s()], { input: `small\n${"x".repeat(100)}\nlast\n` });
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toBe("xpcbus: line 2: payload of 100 bytes is over the broker's limit of 64 [payload_too_large]");
    expect((await sub.exited).code).toBe(0);
    expect(sub.stdout.lines).toEqual(["big small", "big last"]);
  });

  it("reports a bad JSON line by its number with --json, sends the others, exits 1", async () => {
    const sub = spawnCli(["sub", "js", "--count", "2", ...s()]);
    await waitSubscribed("js");
    const result = await runCli(["pub", "js", "--stdin", "--json", ...s()], { input: '{"n":1}\n{nope\n[3]\n' });
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/^xpcbus: line 2: not valid JSON: /);
    expect((await sub.exited).code).toBe(0);
    expect(sub.stdout.lines).toEqual(['js {"n":1}', "js [3]"]);
  });
});

describe("pub --stdin refused by the broker", () => {
  afterAll(cleanup);

  it("stops at the first checkpoint after the refusal: exit 1, one line naming it", async () => {
    const dir = tempDir();
    const policy = join(dir, "p.json");
    writeFileSync(policy, JSON.stringify({ version: 1, rules: [{ name: "me", match: { uid: [me] }, connect: "allow", subscribe: [">"], publish: ["open.>"] }] }));
    const broker = await startBroker({ args: ["--policy", policy] });
    const lines = 3 * STDIN_CHECKPOINT_LINES;
    const input = Array.from({ length: lines }, (_, i) => `line ${i}`).join("\n");
    const result = await runCli(["pub", "closed.x", "--stdin", "--socket", broker.socket], { input });
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(new RegExp(`^xpcbus: by line ${STDIN_CHECKPOINT_LINES}: rule "me" does not allow publish on "closed\\.x".*\\[permission_denied\\]$`));
  });
});

describe("numbers on the command line", () => {
  afterEach(cleanup);

  function policyFile(): string {
    const file = join(tempDir(), "p.json");
    writeFileSync(file, JSON.stringify({ version: 1, rules: [{ name: "me", match: { uid: [me] }, connect: "allow", publish: [">"] }] }));
    return file;
  }

  it("policy explain refuses what is not a non-negative integer, and --pid with --uid: exit 2, one line", async () => {
    const file = policyFile();
    for (const args of [["--uid", "abc"], ["--uid", "-1"], ["--uid", "1.5"], ["--uid", "0x10"], ["--uid", "1", "--gid", "g"], ["--pid", "abc"]]) {
      const result = await runCli(["policy", "explain", file, ...args]);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(result.stderr).toMatch(/must be a non-negative integer/);
      expect(result.stderr).not.toMatch(/NaN/);
    }
    const both = await runCli(["policy", "explain", file, "--pid", String(process.pid), "--uid", "0"]);
    expect(both.code).toBe(2);
    expect(both.stdout).toBe("");
    expect(both.stderr).toMatch(/--pid.*cannot be used with.*--uid/);
  });

  it("policy explain exits 0 when admitted and 1 when DENIED", async () => {
    const file = policyFile();
    const admitted = await runCli(["policy", "explain", file, "--uid", String(me)]);
    expect(admitted).toMatchObject({ code: 0, stderr: "" });
    expect(admitted.stdout).toMatch(/^admitted: rule "me"/m);
    const denied = await runCli(["policy", "explain", file, "--uid", "4242"]);
    expect(denied).toMatchObject({ code: 1, stderr: "" });
    expect(denied.stdout).toMatch(/^DENIED: no rule of .*p\.json matches uid 4242/m);
  });

  it("--timeout, --count and --limit take decimal integers only, through one parser", async () => {
    const missing = join(tempDir(), "none.sock");
    for (const args of [
      ["req", "a", "--timeout", "1e3", "--socket", missing],
      ["notify", "wait", "a", "--timeout", "0x10", "--socket", missing],
      // setTimeout cannot wait that long: it would fire at once.
      ["notify", "wait", "a", "--timeout", "3000000000", "--socket", missing],
      ["sub", "a", "--count", "1e3", "--socket", missing],
      ["daemon", "--limit", "maxPeers=1e3", "--socket", missing],
      ["daemon", "--limit", "maxPeers=99999999999999999999", "--socket", missing],
    ]) {
      const result = await runCli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
      expect(result.stderr, args.join(" ")).toMatch(/(--timeout|--count|--limit).*(must be a positive integer|must be at most)/);
    }
  });
});

describe("who may connect, told plainly", () => {
  afterEach(cleanup);

  /** A broker another uid can reach: its directory 0755, its socket `mode`. */
  async function reachableBroker(socketMode?: string): Promise<BrokerProcess> {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    return startBroker({ socket: join(dir, "b.sock"), args: socketMode === undefined ? [] : ["--socket-mode", socketMode] });
  }

  it.skipIf(!canSetpriv)("the built-in policy's refusal names who may use the broker and who you are", async () => {
    const broker = await reachableBroker("0666");
    const result = runCliAsNobody(["pub", "a", "b", "--socket", broker.socket]);
    expect(result.code).toBe(1);
    const who = me === 0 ? "root" : `uid ${me} and root`;
    expect(oneLine(result.stderr)).toContain(`only ${who} may use this broker (no --policy given); you are uid 65534`);
    expect(result.stderr).not.toMatch(/built-in:|no rule of/);
  });

  it.skipIf(!canSetpriv)("EACCES: the socket is there but not this user's, with its owner and mode and what to change", async () => {
    const broker = await reachableBroker(); // socket 0600, the default
    const result = runCliAsNobody(["pub", "a", "b", "--socket", broker.socket]);
    expect(result.code).toBe(3);
    const line = oneLine(result.stderr);
    expect(line).toMatch(/the socket exists but uid 65534 may not connect to it: it belongs to uid \d+ with mode 0600/);
    expect(line).toMatch(/--socket-mode/);
    expect(line).toMatch(/--policy/);
    expect(line).not.toMatch(/is "xpcbus daemon" running/);
    // A directory on the way that nobody may enter is named instead.
    chmodSync(join(broker.socket, ".."), 0o700);
    const closed = runCliAsNobody(["status", "--socket", broker.socket]);
    expect(closed.code).toBe(3);
    expect(oneLine(closed.stderr)).toMatch(/uid 65534 may not enter \/.* \(it belongs to uid \d+ with mode 0700\)/);
  });

  it("ECONNREFUSED is a stale socket nobody listens on; ENOENT keeps the running hint", async () => {
    const broker = spawnBroker();
    await broker.ready();
    await broker.kill("SIGKILL"); // leaves its socket file behind
    const stale = await runCli(["pub", "a", "b", "--socket", broker.socket]);
    expect(stale.code).toBe(3);
    const line = oneLine(stale.stderr);
    expect(line).toMatch(/ECONNREFUSED.*the socket file is there but no broker listens on it/);
    expect(line).not.toMatch(/is "xpcbus daemon" running/);
    const missing = await runCli(["pub", "a", "b", "--socket", join(tempDir(), "none.sock")]);
    expect(missing.code).toBe(3);
    expect(oneLine(missing.stderr)).toMatch(/ENOENT.*\(is "xpcbus daemon" running on that socket\?\)/);
  });

  it.skipIf(!canSetpriv)("daemon --system as another user than root says it needs root, in one line", () => {
    const result = runCliAsNobody(["daemon", "--system", "--log-level", "silent"]);
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/^xpcbus: the system broker \(--system\) needs root: .*\/run\/xpcbus.*--socket/);
    expect(result.stderr).not.toMatch(/EACCES: permission denied, mkdir/);
  });
});

/** The keys of a JSON object's top level, in order, duplicates kept (JSON.parse keeps only the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let end = i + 1;
      while (line[end] !== '"') end += line[end] === "\\" ? 2 : 1;
      if (depth === 1 && /^\s*:/.test(line.slice(end + 1, end + 3))) keys.push(JSON.parse(line.slice(i, end + 1)) as string);
      i = end;
    } else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
  }
  return keys;
}

describe("daemon log lines", () => {
  afterEach(cleanup);

  it("never carry a key twice: the peer's fields are peer* beside the daemon's pid and name", async () => {
    const broker = await startBroker(); // --log-level debug
    const pub = await runCli(["pub", "log.x", "1", "--socket", broker.socket]);
    expect(pub.code).toBe(0);
    const hello = await broker.stderr.waitForJson((l) => l["msg"] === "peer said hello", 10_000, "peer said hello");
    await broker.stderr.waitForJson((l) => l["msg"] === "peer disconnected", 10_000, "peer disconnected");
    const lines = broker.stderr.lines.filter((l) => l.startsWith("{"));
    expect(lines.length).toBeGreaterThanOrEqual(4); // ready, connected, hello, disconnected
    for (const line of lines) {
      const keys = topLevelKeys(line);
      expect(keys.filter((k, i) => keys.indexOf(k) !== i), line).toEqual([]);
    }
    expect(hello).toMatchObject({
      pid: broker.pid,
      name: "xpcbus",
      peer: expect.any(Number),
      peerPid: expect.any(Number),
      peerUid: me,
      peerGid: process.getgid!(),
      peerExe: process.execPath,
      peerName: "xpcbus-pub",
    });
    expect(hello["peerPid"]).not.toBe(broker.pid);
  });
});
