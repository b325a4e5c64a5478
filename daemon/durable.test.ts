// Durable state with real processes (issue 15's proofs; docs/PROTOCOL.md
// §9.10): the broker is killed with SIGKILL in the middle of a storm of
// acknowledged publishes and started again on the same socket and store;
// every acknowledged retained value and message is still there, and a
// subscriber process that was connected before the crash receives each
// acknowledged message exactly once, in order, once its SDK has reconnected.
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanup, runCli, spawnBroker, spawnClient, startBroker, tempDir, eventually } from "./test-support/harness.js";

afterEach(cleanup);

interface Seen {
  subject: string;
  seq: number;
  data: string;
}

describe("durable state across a crash of the broker (real processes)", () => {
  it("keeps every acknowledged message and retained value through kill -9, and the subscriber gets each exactly once, in order", async () => {
    const socket = join(tempDir(), "broker.sock");
    // A history long enough for the whole storm: the proof is about what was acknowledged, not the bound.
    const args = ["--limit", "maxHistoryPerSubject=5000"];
    let broker = await startBroker({ socket, args });

    const subscriber = spawnClient(
      socket,
      `
const c = await connect({ socket, name: "durable-subscriber", reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
c.on("reconnected", () => emit("reconnected"));
const sub = await c.subscribe("storm.>");
emit("ready");
for await (const m of sub) emit("msg", { subject: m.subject, seq: m.seq, data: String(m.data) });
`,
    );
    await subscriber.event("ready");
    // Stopped: what the broker sends it piles up past the socket's buffer in
    // the broker's queue, and is lost with the broker; only the store has it.
    subscriber.child.kill("SIGSTOP");

    // The publisher acknowledges each publish before printing it; it dies with the broker (no reconnect).
    const publisher = spawnClient(
      socket,
      `
const c = await connect({ socket, name: "durable-publisher", reconnect: false });
const pad = " ".repeat(4096);
emit("ready");
for (let i = 1; ; i++) {
  const subject = i % 3 === 0 ? "storm.b" : "storm.a";
  const ack = await c.publish(subject, "m" + i + pad, { retain: i % 5 === 0 });
  emit("ack", { subject, seq: ack.seq, data: "m" + i, retained: i % 5 === 0 });
}
`,
    );
    await publisher.event("ready");
    await publisher.event("ack", (e) => Number(String(e["data"]).slice(1)) >= 300, 20_000);
    await broker.kill("SIGKILL");
    await publisher.exited;
    const acked = publisher.events("ack").map((e) => ({ subject: String(e["subject"]), seq: Number(e["seq"]), data: String(e["data"]), retained: e["retained"] === true }));
    expect(acked.length).toBeGreaterThanOrEqual(300);

    subscriber.child.kill("SIGCONT");
    broker = await startBroker({ socket, args });
    // After the restart: live messages follow the replayed ones.
    const after = await connect({ socket, name: "durable-after", reconnect: false });
    await subscriber.event("reconnected", () => true, 15_000);
    await eventually(async () => ((await after.status()).subjects.some((s) => s.subject === "storm.>") ? true : undefined), 15_000, "the subscriber's resubscription");
    const late = await after.publish("storm.a", "late");

    const seen = (): Seen[] => subscriber.events("msg").map((e) => ({ subject: String(e["subject"]), seq: Number(e["seq"]), data: String(e["data"]).trimEnd() }));
    await eventually(async () => (seen().some((m) => m.data === "late") ? true : undefined), 15_000, "the live message after the restart");
    const got = seen();
    // Exactly once and in order: no seq twice, increasing.
    expect(new Set(got.map((m) => m.seq)).size).toBe(got.length);
    expect(got.every((m, i) => i === 0 || m.seq > got[i - 1]!.seq)).toBe(true);
    // Every acknowledged message, with its subject and payload.
    const bySeq = new Map(got.map((m) => [m.seq, m]));
    const missing = acked.filter((a) => bySeq.get(a.seq)?.data !== a.data);
    expect(missing).toEqual([]);
    expect(got.at(-1)).toMatchObject({ data: "late", seq: late.seq });
    // The resume did the work: acknowledged messages from before the crash arrived after the reconnect.
    const events = subscriber.out.json();
    const reconnectedAt = events.findIndex((e) => e["event"] === "reconnected");
    expect(reconnectedAt).toBeGreaterThan(0);
    const lastAcked = acked.at(-1)!.seq;
    expect(events.slice(reconnectedAt).filter((e) => e["event"] === "msg" && Number(e["seq"]) <= lastAcked).length).toBeGreaterThan(0);

    // The store kept them: a new subscription resuming from before the first has every acknowledged message.
    const replayed: number[] = [];
    const fresh = await after.subscribe("storm.>", { since: acked[0]!.seq - 1, callback: (m) => void replayed.push(m.seq) });
    await after.flush();
    const kept = new Set(replayed);
    expect(acked.filter((a) => !kept.has(a.seq))).toEqual([]);
    await fresh.unsubscribe();
    for (const subject of ["storm.a", "storm.b"]) {
      const lastRetained = acked.filter((a) => a.retained && a.subject === subject).at(-1);
      if (lastRetained === undefined) continue;
      const value = await after.get(subject);
      expect(value).toMatchObject({ seq: expect.any(Number) });
      // A later unretained publish does not change the retained value.
      expect(value?.seq).toBe(lastRetained.seq);
    }
    await after.close();
    await subscriber.kill();
  }, 60_000);

  it("a subscriber away while 100 messages are published gets all 100, then live ones; beyond the bound, a gap with the count", async () => {
    const socket = join(tempDir(), "broker.sock");
    await startBroker({ socket, args: ["--limit", "maxHistoryPerSubject=64"] });
    const c = await connect({ socket, name: "away", reconnect: false });
    const start = { seq: (await c.publish("away.x", "m0")).seq! };
    for (let i = 1; i <= 100; i++) await c.publish("away.x", `m${i}`, { ack: i === 100 });
    // Within the bound: resume from message 36 of 100: 64 kept after it, nothing lost.
    const within = await runCli(["sub", "away.x", "--since", String(start.seq + 36), "--count", "64", "--socket", socket]);
    expect(within.code).toBe(0);
    expect(within.stdout.trim().split("\n")).toHaveLength(64);
    expect(within.stderr).not.toMatch(/gap/);
    // Beyond it: from message 0, 36 are gone, then the 64 kept.
    const beyond = await runCli(["sub", "away.x", "--since", String(start.seq), "--count", "64", "--socket", socket]);
    expect(beyond.code).toBe(0);
    expect(beyond.stderr).toMatch(/gap on away\.x: 36 messages/);
    expect(beyond.stdout.trim().split("\n")).toHaveLength(64);
    await c.close();
  }, 30_000);
});

describe("store faults, as the daemon meets them (real processes)", () => {
  it("refuses a corrupt store in one line, starts empty with --store-reset (moving it aside), and refuses a second broker on the same store", async () => {
    const dir = tempDir();
    const store = join(dir, "state.db");
    writeFileSync(store, randomBytes(8192));
    const refused = spawnBroker({ socket: join(dir, "a.sock"), args: ["--store", store] });
    const exit = await refused.exited;
    expect(exit.code).toBe(1);
    const said = refused.stderr.lines.filter((l) => !l.startsWith("{"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/store_corrupt|corrupt|not a database/);
    expect(said[0]).toContain(store);

    const reset = await startBroker({ socket: join(dir, "a.sock"), args: ["--store", store, "--store-reset"] });
    const movedAside = readdirSync(dir).filter((f) => f.startsWith("state.db.corrupt-"));
    expect(movedAside).toHaveLength(1);
    const c = await connect({ socket: reset.socket, reconnect: false });
    await c.publish("kept.x", "v", { retain: true });
    await c.close();

    const second = spawnBroker({ socket: join(dir, "b.sock"), args: ["--store", store] });
    expect((await second.exited).code).toBe(1);
    expect(second.stderr.lines.filter((l) => !l.startsWith("{")).join("\n")).toMatch(/in use by another broker/);
    await reset.kill();
  }, 30_000);

  it.skipIf(!canMountTmpfs())("disk full: the publish gets err store_full, the broker keeps serving from memory (tmpfs of 1 MiB)", async () => {
    const dir = tempDir();
    const small = join(dir, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]);
    try {
      const broker = await startBroker({ socket: join(dir, "b.sock"), args: ["--store", join(small, "store.db"), "--limit", "maxHistoryPerSubject=1000"] });
      const c = await connect({ socket: broker.socket, reconnect: false });
      const big = "x".repeat(32 * 1024);
      let refusal: { code?: string } | undefined;
      for (let i = 0; i < 100 && refusal === undefined; i++) {
        await c.publish(`fill.${i}`, big, { retain: true }).catch((error: { code?: string }) => (refusal = error));
      }
      expect(refusal).toMatchObject({ code: "store_full" });
      // Still serving: a get from memory, a ping, and status says the store is failing.
      expect((await c.get("fill.0")).found).toBe(true);
      await c.flush();
      expect((await c.status()).store).toMatchObject({ kind: "sqlite", failing: true });
      await c.close();
      await broker.kill();
    } finally {
      execFileSync("umount", ["-l", small]);
    }
  }, 30_000);
});

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(join(tmpdir(), "xpcbus-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { stdio: "ignore" });
    execFileSync("umount", [probe], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
