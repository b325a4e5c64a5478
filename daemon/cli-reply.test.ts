// `xpcbus reply` as users drive it: real replier processes answering real
// `xpcbus req` processes, with fixed data, with --exec, with a failing
// command, and two repliers sharing a queue group.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../protocol/index.js";
import { MAX_EXEC_OUTPUT_BYTES } from "./cli/cli-limits.js";
import { ExecFailure, ExecRunner } from "./cli/exec-runner.js";
import { cleanup, runCli, spawnCli, startBroker, type BrokerProcess } from "./test-support/harness.js";

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(cleanup);

const s = (): string[] => ["--socket", broker.socket];

/** Starts `xpcbus reply ...args` and waits until it says it is replying (its subscription is in place). */
async function replier(args: string[]): Promise<ReturnType<typeof spawnCli>> {
  const cli = spawnCli(["reply", ...args, ...s()]);
  await Promise.race([
    cli.stderr.waitFor((l) => l.startsWith("xpcbus: replying on"), 10_000, "the replier's ready line"),
    cli.exited.then((e) => {
      throw new Error(`reply exited early (${JSON.stringify(e)}): ${cli.stderr.lines.join("\n")}`);
    }),
  ]);
  return cli;
}

describe("xpcbus reply", () => {
  it("answers with its data (parsed as pub's: JSON with --json), prints one line per request, and exits 0 after --count", async () => {
    const r = await replier(["svc.config", '{"mode":"dark"}', "--json", "--count", "2"]);
    const first = await runCli(["req", "svc.config", "which?", ...s()]);
    expect(first).toMatchObject({ code: 0, stdout: '{"mode":"dark"}\n', stderr: "" });
    const second = await runCli(["req", "svc.config", "--json", '{"n":1}', ...s()]);
    expect(JSON.parse(second.stdout)).toMatchObject({ encoding: "json", data: { mode: "dark" } });
    expect((await r.exited).code).toBe(0);
    expect(r.stdout.lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { subject: "svc.config", encoding: "text", data: "which?", reply: { mode: "dark" } },
      { subject: "svc.config", encoding: "json", data: { n: 1 }, reply: { mode: "dark" } },
    ]);
  });

  it("--exec runs the command per request: the payload on its stdin, its stdout the reply", async () => {
    const r = await replier(["svc.upper", "--exec", "tr a-z A-Z", "--count", "2"]);
    expect(await runCli(["req", "svc.upper", "hello", ...s()])).toMatchObject({ code: 0, stdout: "HELLO\n" });
    // Two lines in, two lines out (one trailing newline is trimmed from the output); the replier's line stays one line.
    expect(await runCli(["req", "svc.upper", "a\nb\n", ...s()])).toMatchObject({ code: 0, stdout: "A\nB\n" });
    expect((await r.exited).code).toBe(0);
    expect(r.stdout.lines).toEqual(["svc.upper hello -> HELLO", 'svc.upper "a\\nb\\n" -> "A\\nB"']);
  });

  it("a command that exits non-zero answers with an error: req exits 1 with its message, the replier goes on", async () => {
    const r = await replier(["svc.fail", "--exec", 'read x; echo "cannot do $x" >&2; exit 3', "--count", "1"]);
    const failed = await runCli(["req", "svc.fail", "this", ...s()]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe("");
    expect(failed.stderr).toBe("xpcbus: --exec command exited with status 3: cannot do this [responder_error]\n");
    expect((await r.exited).code).toBe(0);
    expect(r.stdout.lines).toEqual(["svc.fail this -> error: --exec command exited with status 3: cannot do this"]);
  });

  it("--queue: two repliers in one group share the requests, each answered once", async () => {
    const a = await replier(["svc.pool", "A", "--queue", "workers"]);
    const b = await replier(["svc.pool", "B", "--queue", "workers"]);
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const result = await runCli(["req", "svc.pool", `job${i}`, ...s()]);
      expect(result.code).toBe(0);
      answers.push(result.stdout.trim());
    }
    // The broker takes a group's members in turn.
    expect([...answers].sort()).toEqual(["A", "A", "B", "B"]);
    a.child.kill("SIGTERM");
    b.child.kill("SIGTERM");
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
    const handled = [...a.stdout.lines, ...b.stdout.lines].map((l) => l.split(" ")[1]).sort();
    expect(handled).toEqual(["job0", "job1", "job2", "job3"]);
  });

  it("refuses a missing reply, or data with --exec, as usage errors (exit 2, one line)", async () => {
    const none = await runCli(["reply", "svc.x", ...s()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe("xpcbus: reply needs what to answer: the data after the subject ('' for an empty reply), or --exec <command>\n");
    const both = await runCli(["reply", "svc.x", "data", "--exec", "cat", ...s()]);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe("xpcbus: give the reply data or --exec <command>, not both\n");
    expect((await runCli(["reply", "svc.x", "data", "--count", "0", ...s()])).code).toBe(2);
  });

  it("bounds --exec output at the default broker's payload limit", () => {
    expect(MAX_EXEC_OUTPUT_BYTES).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
  });
});

describe("--exec bounds (the runner, in process)", () => {
  const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

  it("kills a command that runs too long, with what the shell started", async () => {
    const runner = new ExecRunner("sleep 30 & wait", { timeoutMs: 100, stderr: quiet });
    await expect(runner.run(Buffer.from(""))).rejects.toThrow(new ExecFailure("--exec command ran longer than 100 ms and was killed"));
  });

  it("kills a command that writes too much, rather than cutting its reply", async () => {
    const runner = new ExecRunner("yes", { maxOutputBytes: 1000, stderr: quiet });
    await expect(runner.run(Buffer.from(""))).rejects.toThrow("--exec command wrote more than 1000 bytes and was killed");
  });

  it("gives a command that ignores its stdin its output, and says how a killed one ended", async () => {
    const runner = new ExecRunner('echo "$XPCBUS_SUBJECT"', { stderr: quiet });
    await expect(runner.run(Buffer.alloc(1 << 20), { XPCBUS_SUBJECT: "a.b" })).resolves.toBe("a.b");
    await expect(new ExecRunner("kill -9 $$", { stderr: quiet }).run(Buffer.from(""))).rejects.toThrow("--exec command was killed by SIGKILL");
  });
});
