// The daemon as a process, and peers that vanish: socket files and modes,
// refusing a second broker, replacing a stale socket, clean shutdown,
// pruning of killed peers, and clients riding out a broker crash.
import { statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { PeerStatus } from "../protocol/index.js";
import { cleanup, eventually, runCli, spawnBroker, spawnClient, startBroker, tempDir } from "./test-support/harness.js";

afterEach(cleanup);

async function statusOf(socket: string) {
  const client = await connect({ socket, reconnect: false, name: "test-status" });
  try {
    return await client.status();
  } finally {
    await client.close();
  }
}

describe("daemon process", () => {
  it("creates an owner-only socket in an owner-only directory and says ready with its path", async () => {
    // The last level only: its parent must exist (daemon/cli-service.test.ts).
    const dir = join(tempDir(), "run");
    const socket = join(dir, "b.sock");
    const broker = spawnBroker({ socket });
    const ready = await broker.ready();
    expect(ready["socket"]).toBe(socket);
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("uses $XDG_RUNTIME_DIR/xpcbus/broker.sock by default, and the CLI finds it there too", async () => {
    const runtime = tempDir();
    // XDG_STATE_HOME: the default store of a broker on its default socket goes there, not to ~/.local/state.
    const env = { XDG_RUNTIME_DIR: runtime, XDG_STATE_HOME: join(runtime, "state"), XPCBUS_SOCKET: "" };
    const { spawn } = await import("node:child_process");
    const { CLI, LineReader } = await import("./test-support/harness.js");
    const child = spawn(process.execPath, [CLI, "daemon"], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    try {
      const ready = await new LineReader(child.stderr).waitForJson((l) => l["msg"] === "ready");
      expect(ready["socket"]).toBe(join(runtime, "xpcbus", "broker.sock"));
      expect(ready["store"]).toMatchObject({ kind: "sqlite", path: join(runtime, "state", "xpcbus", "store.db") });
      expect(statSync(join(runtime, "xpcbus")).mode & 0o777).toBe(0o700);
      const status = await runCli(["status", "--json"], { env });
      expect(status.code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("refuses to start when a live broker answers on the socket, with one line and exit 1", async () => {
    const first = await startBroker();
    const second = await runCli(["daemon", "--socket", first.socket]);
    expect(second.code).toBe(1);
    expect(second.stderr.trim().split("\n")).toHaveLength(1);
    expect(second.stderr).toMatch(/already running/);
    expect((await statusOf(first.socket)).server).toMatch(/^xpcbus\//);
  });

  it("replaces a stale socket file left by a crash, and refuses to replace a non-socket", async () => {
    const crashed = await startBroker();
    await crashed.kill("SIGKILL");
    expect(statSync(crashed.socket).isSocket()).toBe(true);
    const next = await startBroker({ socket: crashed.socket });
    expect((await statusOf(next.socket)).pid).toBe(next.pid);

    const file = join(tempDir(), "not-a-socket");
    writeFileSync(file, "precious");
    const refused = await runCli(["daemon", "--socket", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not a socket/);
  });

  it.each(["SIGTERM", "SIGINT"] as const)("on %s tells connected clients bye, removes its socket and exits 0 within 2 s", async (signal) => {
    const broker = await startBroker();
    const client = spawnClient(
      broker.socket,
      `
const client = await connect({ socket, reconnect: false });
client.on("disconnected", () => emit("disconnected"));
await client.subscribe("x");
emit("ready");
const error = await client.closed();
emit("closed", { code: error?.code });
`,
    );
    // A raw peer sees the bye frame itself.
    const raw = createConnection({ path: broker.socket });
    const frames: Buffer[] = [];
    raw.on("data", (d: Buffer) => frames.push(d));
    const rawClosed = new Promise((r) => raw.once("close", r));
    await new Promise((r) => raw.once("connect", r));
    await client.event("ready");
    const started = Date.now();
    const exit = await broker.kill(signal);
    expect(exit.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
    await client.event("closed");
    await rawClosed;
    const { decodeFrameBody } = await import("../protocol/index.js");
    const bye = decodeFrameBody(Buffer.concat(frames).subarray(4));
    expect(bye).toEqual({ message: { op: "bye", code: "shutdown", reason: expect.any(String) } });
    expect(() => statSync(broker.socket)).toThrow();
  });
});

describe("logging", () => {
  it("takes its level from $XPCBUS_LOG_LEVEL (overridden by --log-level), one JSON line per event", async () => {
    const { spawn } = await import("node:child_process");
    const { CLI, LineReader } = await import("./test-support/harness.js");
    const socket = join(tempDir(), "b.sock");
    const child = spawn(process.execPath, [CLI, "daemon", "--socket", socket], {
      env: { ...process.env, XPCBUS_LOG_LEVEL: "debug" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const stderr = new LineReader(child.stderr);
      await stderr.waitForJson((l) => l["msg"] === "ready");
      await statusOf(socket);
      const connected = await stderr.waitForJson((l) => l["msg"] === "peer connected");
      expect(connected).toMatchObject({ level: 20, peer: expect.any(Number), peerPid: expect.any(Number), peerExe: process.execPath });
      expect(stderr.lines.every((l) => l.startsWith("{"))).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
    const bad = await runCli(["daemon", "--socket", socket, "--log-level", "loud"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/log level "loud"/);
  });
});

describe("peers that vanish", () => {
  it("drops a kill -9'd subscriber and its subscriptions within 1 s, and fails its pending request at once", async () => {
    const broker = await startBroker();
    const victim = spawnClient(
      broker.socket,
      `
const client = await connect({ socket, name: "victim" });
await client.subscribe("victim.topic");
await client.subscribe("victim.rpc", { queue: "svc", callback: () => emit("request-received") });
emit("ready");
`,
    );
    await victim.event("ready");
    const before = await statusOf(broker.socket);
    const entry = before.peers.find((p: PeerStatus) => p.name === "victim");
    expect(entry?.pid).toBe(victim.pid);
    expect(entry?.subscriptions.map((s) => s.subject).sort()).toEqual(["victim.rpc", "victim.topic"]);

    const requester = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
const started = Date.now();
try { await client.request("victim.rpc", "hi", { timeoutMs: 30000 }); emit("reply"); }
catch (error) { emit("failed", { code: error.code, ms: Date.now() - started }); }
await client.close();
`,
    );
    await victim.event("request-received");
    const killedAt = Date.now();
    await victim.kill("SIGKILL");
    const failed = await requester.event("failed");
    expect(failed["code"]).toBe("responder_gone");
    expect(Date.now() - killedAt).toBeLessThan(1000);

    const after = await eventually(async () => {
      const s = await statusOf(broker.socket);
      return s.peers.some((p) => p.name === "victim") ? undefined : s;
    }, 1000, "the victim to leave status");
    expect(after.subjects.map((s) => s.subject)).not.toContain("victim.topic");
    expect(after.pendingRequests).toBe(0);
  });

  it("reconnects a client to a restarted broker, resubscribes, and never sees a sequence number go back", async () => {
    const socket = join(tempDir(), "b.sock");
    const first = await startBroker({ socket });
    const client = spawnClient(
      socket,
      `
const client = await connect({ socket, name: "survivor", reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
client.on("disconnected", () => emit("disconnected"));
client.on("reconnected", () => emit("reconnected"));
const sub = await client.subscribe("crash.>");
emit("ready");
for await (const m of sub) emit("msg", { subject: m.subject, data: m.data, seq: m.seq });
`,
    );
    await client.event("ready");
    const pub1 = await runCli(["pub", "--socket", socket, "crash.a", "before"]);
    expect(pub1.code).toBe(0);
    const before = await client.event("msg", (e) => e["data"] === "before");

    await first.kill("SIGKILL");
    await client.event("disconnected");
    await startBroker({ socket });
    await client.event("reconnected");
    // The subscription is back without the client doing anything.
    await eventually(async () => ((await statusOf(socket)).subjects.some((s) => s.subject === "crash.>") ? true : undefined));
    const pub2 = await runCli(["pub", "--socket", socket, "crash.a", "after"]);
    expect(pub2.code).toBe(0);
    const after = await client.event("msg", (e) => e["data"] === "after");
    expect(after["seq"] as number).toBeGreaterThan(before["seq"] as number);
  });
});
