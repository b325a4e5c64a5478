// The CLI as users drive it: separate processes, stdout checked, exit codes.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, cleanup, runCli, spawnCli, startBroker, tempDir, waitForSubscription, type BrokerProcess } from "./test-support/harness.js";

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(cleanup);

const s = (): string[] => ["--socket", broker.socket];

describe("xpcbus CLI", () => {
  it("sub --count prints what pub sends, then exits 0", async () => {
    const sub = spawnCli(["sub", "cli.>", "--count", "3", ...s()]);
    await waitSubscribed("cli.>");
    expect((await runCli(["pub", "cli.a", "hello world", ...s()])).code).toBe(0);
    expect((await runCli(["pub", "cli.b", '{"n":1}', "--json", ...s()])).code).toBe(0);
    expect((await runCli(["pub", "cli.c.d", "", ...s()])).code).toBe(0);
    const exit = await sub.exited;
    expect(exit.code).toBe(0);
    expect(sub.stdout.lines).toEqual(["cli.a hello world", 'cli.b {"n":1}', "cli.c.d "]);
  });

  it("sub prints one line per message: a text with a line break as a JSON string", async () => {
    const sub = spawnCli(["sub", "nl.*", "--count", "3", ...s()]);
    await waitSubscribed("nl.*");
    expect((await runCli(["pub", "nl.a", "first\nsecond", ...s()])).code).toBe(0);
    expect((await runCli(["pub", "nl.b", "tab\tkept", ...s()])).code).toBe(0);
    expect((await runCli(["pub", "nl.c", "ends\r\n", ...s()])).code).toBe(0);
    expect((await sub.exited).code).toBe(0);
    expect(sub.stdout.lines).toEqual(['nl.a "first\\nsecond"', "nl.b tab\tkept", 'nl.c "ends\\r\\n"']);
    // get prints the value itself, as it is: it is one value, not a stream of lines.
    await runCli(["pub", "nl.kept", "two\nlines", "--retain", ...s()]);
    expect((await runCli(["get", "nl.kept", ...s()])).stdout).toBe("two\nlines\n");
  });

  it("pub with no data is a usage error (exit 2, one line); '' publishes an empty message", async () => {
    const none = await runCli(["pub", "empty.x", ...s()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe("xpcbus: pub needs the data to publish: give it after the subject ('' for an empty message), or use --stdin\n");
    const sub = spawnCli(["sub", "empty.x", "--json", "--count", "1", ...s()]);
    await waitSubscribed("empty.x");
    expect((await runCli(["pub", "empty.x", "", ...s()])).code).toBe(0);
    await sub.exited;
    expect(JSON.parse(sub.stdout.lines[0] as string)).toMatchObject({ subject: "empty.x", encoding: "text", data: "" });
  });

  it("sub --json prints JSON lines with subject, seq, encoding and data", async () => {
    const sub = spawnCli(["sub", "json.*", "--json", "--count", "1", ...s()]);
    await waitSubscribed("json.*");
    await runCli(["pub", "json.x", "[1,2]", "--json", ...s()]);
    await sub.exited;
    const line = JSON.parse(sub.stdout.lines[0] as string) as Record<string, unknown>;
    expect(line).toMatchObject({ subject: "json.x", encoding: "json", data: [1, 2] });
    expect(typeof line["seq"]).toBe("number");
  });

  it("pub --stdin publishes one message per line, in order", async () => {
    const sub = spawnCli(["sub", "lines", "--count", "3", ...s()]);
    await waitSubscribed("lines");
    // "\r\n" ends a line as "\n" does; a last line needs no newline; an empty line is an empty message.
    const pub = await runCli(["pub", "lines", "--stdin", ...s()], { input: "one\r\n\nthree" });
    expect(pub.code).toBe(0);
    await sub.exited;
    expect(sub.stdout.lines).toEqual(["lines one", "lines ", "lines three"]);
  });

  it("get prints a retained value, and exits 1 with a clear line when there is none", async () => {
    await runCli(["pub", "cfg.mode", "dark", "--retain", ...s()]);
    const got = await runCli(["get", "cfg.mode", ...s()]);
    expect(got).toMatchObject({ code: 0, stdout: "dark\n" });
    const json = await runCli(["get", "cfg.mode", "--json", ...s()]);
    expect(JSON.parse(json.stdout)).toMatchObject({ subject: "cfg.mode", data: "dark", encoding: "text" });
    const none = await runCli(["get", "cfg.nothing", ...s()]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe("");
    expect(none.stderr).toBe('xpcbus: no retained value on "cfg.nothing"\n');
  });

  it("sub --replay prints retained values first", async () => {
    await runCli(["pub", "replay.a", "kept", "--retain", ...s()]);
    const sub = spawnCli(["sub", "replay.*", "--replay", "--count", "1", ...s()]);
    await sub.exited;
    expect(sub.stdout.lines).toEqual(["replay.a kept"]);
  });

  it("status --json lists peers with identity and their subscriptions", async () => {
    const sub = spawnCli(["sub", "watched.topic", ...s()]);
    await waitSubscribed("watched.topic");
    const status = await runCli(["status", "--json", ...s()]);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as { peers: Array<Record<string, unknown>>; subjects: unknown[]; pid: number };
    expect(parsed.pid).toBe(broker.pid);
    const peer = parsed.peers.find((p) => p["pid"] === sub.child.pid);
    expect(peer).toMatchObject({ name: "xpcbus-sub", uid: process.getuid!(), exe: process.execPath, identityMethod: expect.stringMatching(/pidfd|peercred/) });
    expect(peer!["subscriptions"]).toEqual([{ sid: 1, subject: "watched.topic" }]);
    expect(parsed.subjects).toContainEqual({ subject: "watched.topic", subscribers: 1 });
    const human = await runCli(["status", ...s()]);
    expect(human.stdout).toMatch(/peers: \d+/);
    sub.child.kill("SIGINT");
    expect((await sub.exited).code).toBe(0);
  });

  it("req prints the reply; no responders exits 1 with one line and no stack trace", async () => {
    const none = await runCli(["req", "nobody.here", "x", ...s()]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('xpcbus: nobody is subscribed to "nobody.here" [no_responders]\n');
    const verbose = await runCli(["--verbose", "req", "nobody.here", "x", ...s()]);
    expect(verbose.stderr).toMatch(/at .*client/);
  });

  it("exits 3 when no broker answers, and 2 on usage errors", async () => {
    const missing = join(tempDir(), "none.sock");
    const unreachable = await runCli(["pub", "a", "b", "--socket", missing]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr.trim().split("\n")).toHaveLength(1);
    expect(unreachable.stderr).toMatch(/cannot connect to the broker/);
    expect((await runCli(["pub", "bad..subject", "x", ...s()])).code).toBe(2);
    expect((await runCli(["pub", "a", "{nope", "--json", ...s()])).code).toBe(2);
    expect((await runCli(["sub", "a", "--count", "zero", ...s()])).code).toBe(2);
    expect((await runCli(["frobnicate"])).code).toBe(2);
    expect((await runCli(["daemon", "--limit", "maxPeer=3", "--socket", missing])).code).toBe(2);
    expect((await runCli(["--version"])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    if (process.platform !== "darwin") {
      const xpc = await runCli(["pub", "a", "b", "--service", "io.xpcbus.broker"]);
      expect(xpc.code).toBe(2);
      expect(xpc.stderr).toMatch(/needs macOS.*unix/);
      const daemon = await runCli(["daemon", "--service", "io.xpcbus.broker", "--socket", missing]);
      expect(daemon.code).toBe(2);
      expect(daemon.stderr).toMatch(/needs macOS/);
    }
  });
});

describe("a reader that stops early", () => {
  it("ends the command quietly: `xpcbus --help | head -1` exits 0 with no trace", () => {
    const run = spawnSync("bash", ["-o", "pipefail", "-c", `"${process.execPath}" "${CLI}" --help | head -1`], { encoding: "utf8" });
    expect(run.stdout).toMatch(/^Usage: xpcbus/);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});

describe("start-up", () => {
  /** The npm packages `xpcbus ...args` loaded, from node's module cache at exit (a preloaded hook prints it). */
  function packagesLoaded(args: string[]): string[] {
    const hook = join(tempDir(), "loaded.mjs");
    writeFileSync(
      hook,
      'import { createRequire } from "node:module";\n' +
        'const cache = createRequire(import.meta.url).cache;\n' +
        'process.on("exit", () => process.stderr.write("LOADED " + JSON.stringify(Object.keys(cache)) + "\\n"));\n',
    );
    const result = spawnSync(process.execPath, ["--import", hook, CLI, ...args], { encoding: "utf8", timeout: 15_000 });
    const line = result.stderr.split("\n").find((l) => l.startsWith("LOADED "));
    const files = JSON.parse(line!.slice("LOADED ".length)) as string[];
    return [...new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1]).filter((p): p is string => p !== undefined))].sort();
  }

  it("loads a command's code only when it runs: --version needs commander alone, pub no logger and no plist library", () => {
    expect(packagesLoaded(["--version"])).toEqual(["commander"]);
    const pub = packagesLoaded(["pub", "a", "x", "--socket", join(tempDir(), "none.sock")]);
    expect(pub).toContain("commander");
    for (const heavy of ["pino", "plist"]) expect(pub).not.toContain(heavy);
  });
});

/** Waits until the broker reports a subscription on `subject` (sub's readiness is only visible there). */
function waitSubscribed(subject: string): Promise<void> {
  return waitForSubscription(broker.socket, subject);
}
