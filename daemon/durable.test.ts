// Durable state with real processes (issue 15's proofs; docs/PROTOCOL.md
// §9.10): the broker is killed with SIGKILL in the middle of a storm of
// acknowledged publishes and started again on the same socket and store;
// every acknowledged retained value and message is still there, and a
// subscriber process that was connected before the crash receives each
// acknowledged message exactly once, in order, once its SDK has reconnected.
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { cleanup, runCli, spawnClient, startBroker, tempDir, eventually } from "./test-support/harness.js";
import { join } from "node:path";

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
