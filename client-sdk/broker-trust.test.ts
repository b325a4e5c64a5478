// A client talks only to a broker it trusts (docs/SECURITY.md, "Trusting the
// broker"): the pure checks in process, then real processes: a fake broker of
// another uid (setpriv) in a world-writable directory gets zero bytes from the
// CLI and the SDK, unless its uid is trusted on purpose; a root broker is
// trusted by a non-root client; an unsafe default directory is refused.

import { afterEach, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanup, LineReader, runCli, SDK, startBroker, tempDir } from "../daemon/test-support/harness.js";
import { connect, UntrustedBrokerError, XpcbusError } from "./index.js";
import { directoryProblem, isTrustedBrokerUid, parseBrokerUid } from "./broker-trust.js";
import { openNotifyBackend } from "./notify/notify-backend.js";
import { loadNative } from "../native/index.js";

afterEach(cleanup);

const NOBODY = 65534;

function fakeStat(uid: number, mode: number, kind: "dir" | "link" | "file" = "dir") {
  return { uid, mode, isDirectory: () => kind === "dir", isSymbolicLink: () => kind === "link" };
}

describe("trust rules (pure)", () => {
  it("trusts its own uid, root, and the uid named on purpose, nothing else", () => {
    expect(isTrustedBrokerUid(1000, 1000, undefined)).toBe(true);
    expect(isTrustedBrokerUid(0, 1000, undefined)).toBe(true);
    expect(isTrustedBrokerUid(NOBODY, 1000, undefined)).toBe(false);
    expect(isTrustedBrokerUid(NOBODY, 1000, NOBODY)).toBe(true);
    expect(isTrustedBrokerUid(NOBODY, 0, 999)).toBe(false);
  });

  it("checks the default directory's owner, kind and mode, and says what is wrong", () => {
    expect(directoryProblem("/run/user/1000/xpcbus", fakeStat(1000, 0o40700), 1000)).toBeUndefined();
    expect(directoryProblem("/run/xpcbus", fakeStat(0, 0o40755), 0)).toBeUndefined();
    expect(directoryProblem("/tmp/xpcbus-0", fakeStat(NOBODY, 0o40700), 0)).toBe("/tmp/xpcbus-0 belongs to uid 65534, not 0 (mode 0700)");
    expect(directoryProblem("/tmp/xpcbus-0", fakeStat(0, 0o41777), 0)).toBe("/tmp/xpcbus-0 (owner uid 0) has mode 1777: writable by its group");
    expect(directoryProblem("/tmp/xpcbus-0", fakeStat(0, 0o40702), 0)).toBe("/tmp/xpcbus-0 (owner uid 0) has mode 0702: writable by others");
    expect(directoryProblem("/tmp/xpcbus-0", fakeStat(0, 0o120777, "link"), 0)).toMatch(/symbolic link/);
    expect(directoryProblem("/tmp/xpcbus-0", fakeStat(0, 0o100600, "file"), 0)).toMatch(/not a directory/);
  });

  it("takes a uid only as an integer in range", () => {
    expect(parseBrokerUid("65534", "x")).toBe(NOBODY);
    expect(parseBrokerUid(0, "x")).toBe(0);
    for (const bad of [-1, 1.5, "abc", "", 4_294_967_295, null]) expect(() => parseBrokerUid(bad, "x")).toThrow(/must be a uid/);
  });

  it("rejects a bad brokerUid option before connecting", async () => {
    await expect(connect({ socket: "/nonexistent/x.sock", brokerUid: -1 as number, reconnect: false })).rejects.toMatchObject({ code: "invalid_argument" });
  });
});

describe("brokerRequirement belongs to XPC", () => {
  it("is refused on the Unix socket, by the SDK and the CLI, naming what checks the broker there", async () => {
    await expect(connect({ socket: "/nonexistent/broker.sock", brokerRequirement: "anchor apple", reconnect: false })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/brokerRequirement.*xpc.*brokerUid/),
    });
    const cli = await runCli(["pub", "x.y", "1", "--broker-requirement", "anchor apple"]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/--broker-requirement is for --service/);
  });
});

describe.skipIf(process.platform !== "linux")("the notify table is mapped only from a checked broker, and only if it is the broker's", () => {
  function table(): { table: string; close(): void } {
    const path = join(tempDir(), "t.notify");
    const writer = new (loadNative().NotifyTableWriter!)(path, 4);
    return { table: path, close: () => writer.close() };
  }
  const info = (path: string) => ({ mechanism: "table" as const, prefix: "p", table: path, slots: 4, instance: 1n });
  const me = typeof process.geteuid === "function" ? process.geteuid() : 0;

  it("maps a table owned by the checked broker's uid", () => {
    const t = table();
    openNotifyBackend(info(t.table), () => {}, { brokerUid: me }).close();
    t.close();
  });

  it("refuses one owned by another uid, and any when the broker's uid was not checked", () => {
    const t = table();
    expect(() => openNotifyBackend(info(t.table), () => {}, { brokerUid: NOBODY })).toThrow(
      expect.objectContaining({ code: "untrusted_broker", message: expect.stringContaining(`belongs to uid ${me}, not to the broker's uid ${NOBODY}`) }),
    );
    expect(() => openNotifyBackend(info(t.table), () => {}, {})).toThrow(expect.objectContaining({ code: "untrusted_broker" }));
    t.close();
  });
});

const hasSetpriv = spawnSync("setpriv", ["--version"]).status === 0;
const isRoot = typeof process.geteuid === "function" && process.geteuid() === 0;
const canSwitch = hasSetpriv && isRoot && process.platform === "linux";
if (!canSwitch) console.log(`broker-trust: real-process cases skipped: ${!hasSetpriv ? "setpriv is missing" : !isRoot ? "not root" : "not Linux"}`);

const asNobody = ["--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups"];

/** A fake broker run as uid 65534: prints "ready", then "conn", "data <n>" per chunk received, "end" per close. It never answers. */
const FAKE_BROKER = `
const net = require("node:net");
const server = net.createServer((s) => {
  console.log("conn");
  s.on("data", (d) => console.log("data " + d.length));
  s.on("close", () => console.log("end"));
  s.on("error", () => {});
});
server.listen(process.argv[1], () => console.log("ready"));
`;

/** A world-writable directory (as /tmp is) with a fake broker listening in it. */
async function startFake(): Promise<{ socket: string; out: LineReader }> {
  const dir = mkdtempSync(join(tmpdir(), "xpcbus-fake-"));
  chmodSync(dir, 0o777);
  const socket = join(dir, "broker.sock");
  const child = spawn("setpriv", [...asNobody, process.execPath, "-e", FAKE_BROKER, socket], { stdio: ["ignore", "pipe", "inherit"] });
  const out = new LineReader(child.stdout!);
  cleanupLater(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  await out.waitFor((l) => l === "ready", 5_000, "the fake broker's ready line");
  return { socket, out };
}

const later: Array<() => void> = [];
function cleanupLater(fn: () => void): void {
  later.push(fn);
}
afterEach(() => {
  for (const fn of later.splice(0)) fn();
});

/** What the fake received over its connections once the client has gone: the bytes, counted. */
async function bytesReceived(out: LineReader): Promise<number> {
  await out.waitFor((l) => l === "end", 5_000, "the client's close");
  return out.lines.filter((l) => l.startsWith("data ")).reduce((sum, l) => sum + Number(l.slice(5)), 0);
}

describe.skipIf(!canSwitch)("a fake broker of another uid (real processes)", () => {
  for (const command of [
    ["pub", "secret.token", "hunter2"],
    ["sub", "secret.>"],
    ["watch", "secret.token"],
  ]) {
    it(`xpcbus ${command[0]} sends it zero bytes and fails with untrusted_broker`, async () => {
      const { socket, out } = await startFake();
      const result = await runCli([...command, "--socket", socket]);
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`runs as uid ${NOBODY}`);
      expect(lines[0]).toContain(socket);
      expect(lines[0]).toContain("--broker-uid");
      expect(lines[0]).toContain("[untrusted_broker]");
      expect(await bytesReceived(out)).toBe(0);
    });
  }

  it("xpcbus pub --broker-uid <its uid> goes on: it receives the hello", async () => {
    const { socket, out } = await startFake();
    const cli = runCli(["pub", "secret.token", "x", "--socket", socket, "--broker-uid", String(NOBODY)]);
    await out.waitFor((l) => l.startsWith("data "), 5_000, "the hello bytes");
    // Nothing answers: end the fake, so the CLI ends too.
    for (const fn of later.splice(0)) fn();
    expect((await cli).stderr).not.toContain("untrusted_broker");
  });

  it("$XPCBUS_BROKER_UID trusts it as --broker-uid does", async () => {
    const { socket, out } = await startFake();
    const cli = runCli(["sub", "a.b", "--socket", socket], { env: { XPCBUS_BROKER_UID: String(NOBODY) } });
    await out.waitFor((l) => l.startsWith("data "), 5_000, "the hello bytes");
    for (const fn of later.splice(0)) fn();
    await cli;
  });

  it("the SDK sends it zero bytes and rejects with UntrustedBrokerError; brokerUid lets it through", async () => {
    const { socket, out } = await startFake();
    const error = await connect({ socket, reconnect: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UntrustedBrokerError);
    expect(error).toMatchObject({ code: "untrusted_broker", brokerUid: NOBODY, address: socket });
    expect((error as Error).message).toMatch(/brokerUid/);
    expect(await bytesReceived(out)).toBe(0);

    const trusted = connect({ socket, brokerUid: NOBODY, reconnect: false }).catch((e: unknown) => e);
    await out.waitFor((l) => l.startsWith("data "), 5_000, "the hello bytes");
    for (const fn of later.splice(0)) fn();
    const ended = await trusted;
    expect(ended).toBeInstanceOf(XpcbusError);
    expect((ended as XpcbusError).code).toBe("disconnected");
  });
});

describe.skipIf(!canSwitch)("reconnecting to a path an untrusted broker took over (real processes)", () => {
  it("sends it nothing, says so with untrustedBroker, and keeps backing off", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xpcbus-fake-"));
    chmodSync(dir, 0o777);
    cleanupLater(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, "broker.sock");
    const broker = await startBroker({ socket });
    const client = await connect({ socket, reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    const refused: UntrustedBrokerError[] = [];
    const twice = new Promise<void>((resolve) =>
      client.on("untrustedBroker", (error) => {
        if (refused.push(error) === 2) resolve();
      }),
    );
    await broker.kill();
    rmSync(socket, { force: true });
    const child = spawn("setpriv", [...asNobody, process.execPath, "-e", FAKE_BROKER, socket], { stdio: ["ignore", "pipe", "inherit"] });
    cleanupLater(() => child.kill("SIGKILL"));
    const out = new LineReader(child.stdout!);
    await twice;
    expect(refused[0]).toMatchObject({ code: "untrusted_broker", brokerUid: NOBODY });
    expect(client.isConnected).toBe(false);
    expect(client.isClosed).toBe(false); // not a permanent refusal: still backing off
    await client.close();
    child.kill("SIGKILL");
    await out.ended(); // everything it printed has been read
    expect(out.lines.filter((l) => l.startsWith("data "))).toEqual([]);
  });
});

describe.skipIf(!canSwitch)("a root broker and the default path (real processes)", () => {
  it("a non-root client trusts a root broker with no option, and publishes", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const policy = join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify({ version: 1, rules: [{ name: "nobody", match: { uid: [NOBODY] }, connect: "allow", publish: ["trust.>"] }] }));
    const broker = await startBroker({ socket: join(dir, "broker.sock"), args: ["--socket-mode", "0666", "--policy", policy] });
    const script = `
      import { connect } from ${JSON.stringify(SDK)};
      const client = await connect({ socket: ${JSON.stringify(broker.socket)}, reconnect: false });
      const ack = await client.publish("trust.root", "hello");
      console.log("published " + ack.seq);
      await client.close();
    `;
    const child = spawnSync("setpriv", [...asNobody, process.execPath, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 10_000 });
    expect(child.stderr).toBe("");
    expect(child.stdout).toMatch(/^published \d+/);
    expect(child.status).toBe(0);
  });

  it("refuses a default socket directory writable by others, naming it, its owner and its mode", async () => {
    const runtime = tempDir();
    const dir = join(runtime, "xpcbus");
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const result = await runCli(["pub", "a.b", "x"], { env: { XDG_RUNTIME_DIR: runtime, XPCBUS_SOCKET: "" } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain(`${dir} (owner uid 0) has mode 0777: writable by its group`);
    expect(result.stderr).toContain("[untrusted_broker]");
    // A path named on purpose is not the default: only the broker's uid is checked there.
    const named = await runCli(["pub", "a.b", "x", "--socket", join(dir, "broker.sock")], { env: { XDG_RUNTIME_DIR: runtime } });
    expect(named.stderr).not.toContain("untrusted_broker");
  });
});
