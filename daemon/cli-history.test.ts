// `xpcbus history` and `xpcbus sub --since`: the broker's kept messages from
// the command line, against a real daemon, and resume points that are not
// one: one line on stderr, exit 2.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError } from "./cli/cli-error.js";
import { parseSincePoint } from "./cli/client-commands.js";
import { cleanup, runCli, startBroker, type BrokerProcess } from "./test-support/harness.js";

let broker: BrokerProcess;
beforeAll(async () => {
  // A short history, so a gap needs few publishes.
  broker = await startBroker({ args: ["--limit", "maxHistoryPerSubject=4"] });
});
afterAll(cleanup);

const s = (): string[] => ["--socket", broker.socket];

async function pub(subject: string, data: string, ...flags: string[]): Promise<void> {
  const result = await runCli(["pub", subject, data, ...flags, ...s()]);
  expect(result.code, result.stderr).toBe(0);
}

/** The kept messages of `subject` as `history --json` prints them. */
async function kept(subject: string): Promise<Array<{ subject: string; seq: number; time: string; encoding: string; data: unknown }>> {
  const result = await runCli(["history", subject, "--json", ...s()]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { subject: string; seq: number; time: string; encoding: string; data: unknown });
}

/** Exactly one line on stderr, with the CLI's prefix and no stack frame. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^xpcbus: /);
  return lines[0] as string;
}

describe("xpcbus history", () => {
  it("prints the latest kept messages oldest first: <seq> <subject> <payload>, or JSON lines with the time", async () => {
    const before = Date.now();
    await pub("hist.a", "one");
    await pub("hist.b", '{"n":2}', "--json");
    await pub("hist.a", "three\nlines");
    const json = await kept("hist.*");
    expect(json.map((m) => [m.subject, m.encoding, m.data])).toEqual([
      ["hist.a", "text", "one"],
      ["hist.b", "json", { n: 2 }],
      ["hist.a", "text", "three\nlines"],
    ]);
    expect(json[0]!.seq).toBeLessThan(json[1]!.seq);
    expect(json[1]!.seq).toBeLessThan(json[2]!.seq);
    for (const m of json) {
      expect(m.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(m.time)).toBeGreaterThanOrEqual(before - 1000);
    }
    const textOut = await runCli(["history", "hist.*", ...s()]);
    expect(textOut.code).toBe(0);
    expect(textOut.stdout).toBe(`${json[0]!.seq} hist.a one\n${json[1]!.seq} hist.b {"n":2}\n${json[2]!.seq} hist.a "three\\nlines"\n`);
    const limited = await runCli(["history", "hist.*", "--limit", "1", ...s()]);
    expect(limited.stdout).toBe(`${json[2]!.seq} hist.a "three\\nlines"\n`);
  });

  it("prints nothing and exits 0 when nothing is kept; a bad --limit is a usage error", async () => {
    const none = await runCli(["history", "nothing.here", ...s()]);
    expect(none).toMatchObject({ code: 0, stdout: "", stderr: "" });
    for (const limit of ["0", "abc", "1001"]) {
      const bad = await runCli(["history", "hist.a", "--limit", limit, ...s()]);
      expect(bad.code, limit).toBe(2);
      expect(bad.stderr.trimEnd().split("\n"), limit).toHaveLength(1);
    }
  });
});

describe("xpcbus sub --since", () => {
  it("takes a sequence number: the kept messages after it", async () => {
    await pub("since.seq", "a");
    await pub("since.seq", "b");
    await pub("since.seq", "c");
    const [first] = await kept("since.seq");
    const sub = await runCli(["sub", "since.seq", "--since", String(first!.seq), "--count", "2", ...s()]);
    expect(sub).toMatchObject({ code: 0, stdout: "since.seq b\nsince.seq c\n", stderr: "" });
  });

  it("takes a duration back from now or an ISO time", async () => {
    const start = new Date(Date.now() - 1).toISOString();
    await pub("since.time", "x");
    await pub("since.time", "y");
    const iso = await runCli(["sub", "since.time", "--since", start, "--count", "2", ...s()]);
    expect(iso).toMatchObject({ code: 0, stdout: "since.time x\nsince.time y\n", stderr: "" });
    // A point possibly before the broker started: it cannot tell what it missed then, and says so.
    for (const point of ["30s", "1h"]) {
      const sub = await runCli(["sub", "since.time", "--since", point, "--count", "2", ...s()]);
      expect(sub.code).toBe(0);
      expect(sub.stdout).toBe("since.time x\nsince.time y\n");
      expect(["", "xpcbus: gap on since.time: an unknown number of messages may be missing\n"]).toContain(sub.stderr);
    }
  });

  it("reads a point as a sequence number, a duration back from now or an ISO time", () => {
    const now = Date.parse("2024-05-01T12:00:00Z");
    expect(parseSincePoint("1200", now)).toEqual({ since: 1200 });
    expect(parseSincePoint("0", now)).toEqual({ since: 0 });
    expect(parseSincePoint("30s", now)).toEqual({ sinceTime: now - 30_000 });
    expect(parseSincePoint("5m", now)).toEqual({ sinceTime: now - 300_000 });
    expect(parseSincePoint("2h", now)).toEqual({ sinceTime: now - 7_200_000 });
    expect(parseSincePoint("1d", now)).toEqual({ sinceTime: now - 86_400_000 });
    expect(parseSincePoint("250ms", now)).toEqual({ sinceTime: now - 250 });
    expect(parseSincePoint("2024-05-01T11:00:00Z", now)).toEqual({ sinceTime: now - 3_600_000 });
    expect(parseSincePoint("2024-05-01T13:00:00.500+02:00", now)).toEqual({ sinceTime: now - 3_600_000 + 500 });
    expect(parseSincePoint("2024-05-01", now)).toEqual({ sinceTime: now - 12 * 3_600_000 });
    for (const bad of ["9007199254740993", "1w", "-5m", "2024-5-1", "2024-05-01T25:00:00Z", "now"]) {
      expect(() => parseSincePoint(bad, now), bad).toThrow(CliError);
    }
  });

  it("says on stderr how many messages the broker no longer keeps", async () => {
    for (const d of ["1", "2", "3", "4", "5", "6"]) await pub("since.gap", d);
    const [oldest] = await kept("since.gap");
    // The 4 kept ones are 3..6: from before 1, two are gone.
    const sub = await runCli(["sub", "since.gap", "--since", String(oldest!.seq - 3), "--count", "4", ...s()]);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toBe("since.gap 3\nsince.gap 4\nsince.gap 5\nsince.gap 6\n");
    expect(sub.stderr).toBe("xpcbus: gap on since.gap: 2 messages no longer kept\n");
  });

  it("refuses what is not a resume point, and --since with --queue or --replay: exit 2, one line", async () => {
    for (const bad of ["abc", "5x", "-3", "1.5", "2024-13-45", "yesterday", ""]) {
      const result = await runCli(["sub", "x.y", "--since", bad, ...s()]);
      expect(result.code, bad).toBe(2);
      expect(oneLine(result.stderr), bad).toContain("--since takes a sequence number");
    }
    const queue = await runCli(["sub", "x.y", "--since", "5", "--queue", "g", ...s()]);
    expect(queue.code).toBe(2);
    expect(oneLine(queue.stderr)).toContain("--queue");
    const replay = await runCli(["sub", "x.y", "--since", "5m", "--replay", ...s()]);
    expect(replay.code).toBe(2);
    expect(oneLine(replay.stderr)).toContain("--replay");
  });
});
