// History and resuming (docs/PROTOCOL.md §9.10), in process: the bounds and
// the exact gap counts of core/history.ts, then `sub` with `since` /
// `sinceTime`, `history`, and the store's turn (ok only after the commit; a
// failed commit answers err and is retried) through the broker's transport
// seam. The real store and real processes are in daemon/durable.test.ts.
import { describe, expect, it } from "vitest";
import { XpcbusError, encodeFrame, subjectMatches } from "../protocol/index.js";
import type { DurableStore, StoreBatch, StoreSnapshot } from "./core/durable-store.js";
import { History, type HistoryChanges } from "./core/history.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";

const bytes = (text: string): Uint8Array => Buffer.from(text);
const all = (): boolean => true;

function filled(perSubject: number, publishes: Array<[string, number]>, maxBytes = 1 << 30, maxSubjects = 1000): History {
  const h = new History({ perSubject, maxBytes, maxSubjects }, { seq: 0, time: 0 });
  for (const [subject, seq] of publishes) h.append(subject, seq, seq, bytes(`${subject}#${seq}`), "text");
  return h;
}

describe("history bounds and gaps", () => {
  it("keeps the last N of a subject and counts exactly what a resume missed", () => {
    const h = filled(16, Array.from({ length: 100 }, (_, i): [string, number] => ["a", i + 1]));
    expect(h.size).toBe(16);
    // Away after message 0 (nothing seen): 84 lost, then 85..100.
    const fromStart = h.resume("a", all, { seq: 0 });
    expect(fromStart.gaps).toEqual([{ subject: "a", lost: 84, atLeast: false }]);
    expect(fromStart.messages.map((m) => m.seq)).toEqual(Array.from({ length: 16 }, (_, i) => 85 + i));
    // Away after 80: 81..84 lost.
    expect(h.resume("a", all, { seq: 80 }).gaps).toEqual([{ subject: "a", lost: 4, atLeast: false }]);
    // Away after 84: nothing lost.
    const caughtUp = h.resume("a", all, { seq: 84 });
    expect(caughtUp.gaps).toEqual([]);
    expect(caughtUp.messages).toHaveLength(16);
    expect(h.resume("a", all, { seq: 100 })).toEqual({ gaps: [], messages: [] });
  });

  it("counts per subject when subjects interleave on the one counter, and replays in publish order", () => {
    const publishes: Array<[string, number]> = [];
    for (let seq = 1; seq <= 60; seq++) publishes.push([seq % 3 === 0 ? "b" : "a", seq]);
    const h = filled(4, publishes);
    const { gaps, messages } = h.resume("*", (s) => subjectMatches("*", s), { seq: 30 });
    // a: 31..60 not divisible by 3 = 20 messages, 4 kept; b: 33..60 by 3 = 10, 4 kept.
    expect(gaps).toEqual([
      { subject: "a", lost: 16, atLeast: false },
      { subject: "b", lost: 6, atLeast: false },
    ]);
    // The last 4 of each: a 55, 56, 58, 59; b 51, 54, 57, 60; merged by seq.
    expect(messages.map((m) => m.seq)).toEqual([51, 54, 55, 56, 57, 58, 59, 60]);
    expect(messages.every((m, i) => i === 0 || m.seq > messages[i - 1]!.seq)).toBe(true);
  });

  it("gives a lower bound past the record of drops, and an unknown gap before what it knows", () => {
    const h = new History({ perSubject: 2, maxBytes: 1 << 30, maxSubjects: 100 }, { seq: 1000, time: 5000 });
    // Every other number: each drop is a run of its own, and only the last MAX_DROPPED_RUNS (64) are recorded.
    for (let i = 0; i < 70; i++) h.append("x", 1001 + 2 * i, 10_000 + i, bytes("v"), undefined);
    expect(h.resume("x", all, { seq: 1000 }).gaps).toEqual([{ subject: "x", lost: 64, atLeast: true }]);
    // From inside the record: exact. Dropped: 1001..1135 by 2; after 1131: 1133 and 1135.
    expect(h.resume("x", all, { seq: 1131 }).gaps).toEqual([{ subject: "x", lost: 2, atLeast: false }]);
    // Before the broker's history began: unknown, named by the pattern.
    expect(h.resume("x.>", all, { seq: 10 }).gaps[0]).toEqual({ subject: "x.>", lost: undefined, atLeast: false });
  });

  it("resumes by time: kept messages at or after it, drops counted whole where their run is after it", () => {
    const h = new History({ perSubject: 2, maxBytes: 1 << 30, maxSubjects: 100 }, { seq: 1000, time: 5000 });
    for (let seq = 1001; seq <= 1010; seq++) h.append("x", seq, seq * 10, bytes("v"), undefined);
    const byTime = h.resume("x", all, { time: 10_090 });
    expect(byTime.messages.map((m) => m.seq)).toEqual([1009, 1010]);
    expect(byTime.gaps).toEqual([]);
    // 1001..1008 dropped as one run (10_010..10_080): a point inside it knows at least its last was lost.
    expect(h.resume("x", all, { time: 10_070 }).gaps).toEqual([{ subject: "x", lost: 1, atLeast: true }]);
    expect(h.resume("x", all, { time: 10_005 }).gaps).toEqual([{ subject: "x", lost: 8, atLeast: false }]);
  });

  it("past the byte bound drops the oldest of the least recently published subject; past the subject bound forgets one whole", () => {
    const changes: string[] = [];
    const sink: HistoryChanges = {
      appended: (e) => changes.push(`+${e.subject}${e.seq}`),
      dropped: (e) => changes.push(`-${e.subject}${e.seq}`),
      forgotten: (s, entries) => changes.push(`forget ${s} (${entries.length})`),
    };
    // Each entry: 1 byte + 1 subject byte + 64.
    const h = new History({ perSubject: 10, maxBytes: 66 * 3, maxSubjects: 2 }, { seq: 0, time: 0 }, sink);
    h.append("a", 1, 1, bytes("1"), undefined);
    h.append("b", 2, 2, bytes("2"), undefined);
    h.append("a", 3, 3, bytes("3"), undefined);
    h.append("a", 4, 4, bytes("4"), undefined); // 4 entries > 3: b (least recent) loses its only one
    expect(h.size).toBe(3);
    expect(changes).toContain("-b2");
    h.append("c", 5, 5, bytes("5"), undefined); // a third subject: b, least recently published, is forgotten
    expect(changes).toContain("forget b (0)");
    expect(h.subjectCount).toBe(2);
    // A resume from before b's last message cannot know what b lost.
    expect(h.resume(">", all, { seq: 1 }).gaps[0]).toMatchObject({ subject: ">", lost: undefined });
  });

  it("round-trips a subject's record of drops through the store's bytes", () => {
    const h = filled(2, Array.from({ length: 5 }, (_, i): [string, number] => ["s", 1_795_613_115_069_001 + i]));
    const restored = new History({ perSubject: 2, maxBytes: 1 << 30, maxSubjects: 10 }, { seq: 0, time: 0 });
    const kept = h.latest(all, 10);
    // What the store would hand back: the subject record and its kept messages.
    const records: Array<{ subject: string; n: number; dropped: Uint8Array }> = [];
    const probe = new History({ perSubject: 2, maxBytes: 1 << 30, maxSubjects: 10 }, { seq: 0, time: 0 }, {
      appended: () => undefined,
      dropped: (_e, r) => records.splice(0, records.length, r.toStored()),
      forgotten: () => undefined,
    });
    for (let i = 0; i < 5; i++) probe.append("s", 1_795_613_115_069_001 + i, 1_795_613_115_069_001 + i, bytes(`s#${i}`), "text");
    restored.load(records, kept);
    expect(restored.resume("s", all, { seq: 1_795_613_115_069_001 }).gaps).toEqual([{ subject: "s", lost: 2, atLeast: false }]);
    expect(restored.resume("s", all, { seq: 1_795_613_115_069_001 }).messages.map((m) => m.seq)).toEqual([1_795_613_115_069_004, 1_795_613_115_069_005]);
  });
});

describe("resuming through the broker", () => {
  it("sends the gaps, then the kept messages after the point, then ok, then live ones", async () => {
    const memory = await startMemoryBroker({ limits: { maxHistoryPerSubject: 16 } });
    const pub = await memory.greeted();
    let first = 0;
    for (let i = 1; i <= 100; i++) {
      pub.send({ op: "pub", subject: "r.a", p: bytes(`m${i}`), id: i });
      const ok = await pub.next((m) => m["id"] === i);
      if (i === 1) first = Number(ok["seq"]);
    }
    const sub = await memory.greeted();
    sub.send({ op: "sub", sid: 7, subject: "r.*", since: first - 1, id: 1 });
    const ok = await sub.next((m) => m["op"] === "ok" && m["id"] === 1);
    expect(sub.received.filter((m) => m["op"] === "gap")).toEqual([{ op: "gap", sid: 7, subject: "r.a", lost: 84 }]);
    const replayed = sub.received.filter((m) => m["op"] === "msg");
    expect(replayed.map((m) => Buffer.from(m["p"] as Uint8Array).toString())).toEqual(Array.from({ length: 16 }, (_, i) => `m${85 + i}`));
    expect(replayed.every((m) => m["sid"] === 7)).toBe(true);
    expect(Number(ok["seq"])).toBe(first + 99);
    pub.send({ op: "pub", subject: "r.a", p: bytes("live"), id: 101 });
    const live = await sub.next((m) => m["op"] === "msg" && Buffer.from(m["p"] as Uint8Array).toString() === "live");
    expect(Number(live["seq"])).toBe(first + 100);
    // Caught up: resuming from the last seen gives nothing more and no gap.
    sub.send({ op: "sub", sid: 8, subject: "r.a", since: first + 100, id: 2 });
    await sub.next((m) => m["op"] === "ok" && m["id"] === 2);
    expect(sub.received.filter((m) => m["sid"] === 8)).toEqual([]);
    await memory.stop();
  });

  it("resumes by time, answers history oldest first, and refuses resume points that make no sense", async () => {
    const memory = await startMemoryBroker();
    const pub = await memory.greeted();
    for (let i = 1; i <= 5; i++) {
      pub.send({ op: "pub", subject: "t.x", p: bytes(`v${i}`), enc: "text", id: i });
      await pub.next((m) => m["id"] === i);
    }
    const reader = await memory.greeted();
    reader.send({ op: "sub", sid: 1, subject: "t.x", sinceTime: Date.now() - 60_000, id: 1 });
    await reader.next((m) => m["op"] === "ok" && m["id"] === 1);
    expect(reader.received.filter((m) => m["op"] === "msg").map((m) => Buffer.from(m["p"] as Uint8Array).toString())).toEqual(["v1", "v2", "v3", "v4", "v5"]);

    reader.send({ op: "history", subject: "t.*", limit: 2, id: 2 });
    const answer = await reader.next((m) => m["id"] === 2);
    const messages = answer["messages"] as Array<Record<string, unknown>>;
    expect(messages.map((m) => [m["subject"], Buffer.from(m["p"] as Uint8Array).toString(), m["enc"]])).toEqual([
      ["t.x", "v4", "text"],
      ["t.x", "v5", "text"],
    ]);
    expect(typeof messages[0]!["time"]).toBe("number");

    for (const [id, op] of [
      [3, { op: "sub", sid: 2, subject: "t.x", since: 1, sinceTime: 1, id: 3 }],
      [4, { op: "sub", sid: 3, subject: "t.x", since: 1, queue: "q", id: 4 }],
      [5, { op: "sub", sid: 4, subject: "t.x", since: 1, replay: true, id: 5 }],
      [6, { op: "history", subject: "t.x", limit: 5000, id: 6 }],
    ] as const) {
      reader.send(op);
      expect(await reader.next((m) => m["id"] === id)).toMatchObject({ op: "err", code: "bad_field" });
    }
    await memory.stop();
  });
});

/** A store in memory that can be told to fail: the broker's side of the contract, not SQLite's (that is daemon/store/). */
class ScriptedStore implements DurableStore {
  readonly description = { kind: "sqlite" as const, path: "(test)", durability: "normal" as const };
  readonly batches: StoreBatch[] = [];
  failWith: XpcbusError | undefined;
  constructor(private readonly snapshot: StoreSnapshot) {}
  load(): StoreSnapshot {
    return this.snapshot;
  }
  commit(batch: StoreBatch): void {
    if (this.failWith !== undefined) throw this.failWith;
    // Copies, as a store's would be: the broker lets go of the payloads it committed.
    this.batches.push({ ...batch, messages: batch.messages.map((m) => ({ ...m, payload: new Uint8Array(m.payload) })) });
  }
  readPayload(seq: number): Uint8Array | undefined {
    return [...this.snapshot.messages, ...this.batches.flatMap((b) => b.messages)].find((m) => m.seq === seq)?.payload;
  }
  close(): void {}
}

describe("the store's turn", () => {
  const empty: StoreSnapshot = { sequenceReservation: 0, createdAt: undefined, retained: [], messages: [], subjects: [] };

  it("commits a turn's publishes as one batch before their oks, and starts from what the store kept", async () => {
    const store = new ScriptedStore({
      ...empty,
      sequenceReservation: 5_000,
      createdAt: { time: 0, seq: 0 },
      retained: [{ subject: "k.v", seq: 4_000, payload: bytes("kept"), enc: "text", owner: null }],
      messages: [{ subject: "k.v", seq: 4_000, n: 1, time: 1, payload: bytes("kept"), enc: "text" }],
      subjects: [],
    });
    const memory = await startMemoryBroker({ store });
    const peer = await memory.greeted();
    peer.send({ op: "get", subject: "k.v", id: 1 });
    expect(await peer.next((m) => m["id"] === 1)).toMatchObject({ found: true, seq: 4_000 });
    const before = store.batches.length;
    // Three publishes in one read: one commit, then three oks numbered above the reservation.
    peer.sendBytes(Buffer.concat([1, 2, 3].map((i) => encodeFrame({ op: "pub", subject: "k.v", p: bytes(`n${i}`), retain: i === 3, id: 10 + i }))));
    const oks = await Promise.all([11, 12, 13].map((id) => peer.next((m) => m["id"] === id)));
    expect(oks.map((ok) => ok["op"])).toEqual(["ok", "ok", "ok"]);
    expect(Number(oks[0]!["seq"])).toBeGreaterThan(5_000);
    const batch = store.batches.slice(before).find((b) => b.messages.length > 0)!;
    expect(batch.messages.map((m) => Buffer.from(m.payload).toString())).toEqual(["n1", "n2", "n3"]);
    expect(batch.retainedPut.map((r) => [r.subject, Buffer.from(r.payload).toString()])).toEqual([["k.v", "n3"]]);
    // The kept message is history too.
    peer.send({ op: "sub", sid: 1, subject: "k.v", since: 3_999, id: 20 });
    await peer.next((m) => m["id"] === 20);
    expect(peer.received.filter((m) => m["sid"] === 1 && m["op"] === "msg").map((m) => Buffer.from(m["p"] as Uint8Array).toString())).toEqual(["kept", "n1", "n2", "n3"]);
    await memory.stop();
  });

  it("deletes from the store what leaves the history, and never writes what leaves it before its commit", async () => {
    const store = new ScriptedStore({
      ...empty,
      createdAt: { time: 0, seq: 0 },
      messages: [{ subject: "d.x", seq: 4_000, n: 1, time: 1, payload: bytes("old"), enc: undefined }],
    });
    const memory = await startMemoryBroker({ store, limits: { maxHistoryPerSubject: 2 } });
    const peer = await memory.greeted();
    // Four in one read: the loaded one and the first two new ones leave the history; only the last two are written.
    peer.sendBytes(Buffer.concat([1, 2, 3, 4].map((i) => encodeFrame({ op: "pub", subject: "d.x", p: bytes(`n${i}`), id: i }))));
    const oks = await Promise.all([1, 2, 3, 4].map((id) => peer.next((m) => m["id"] === id)));
    const written = store.batches.flatMap((b) => b.messages.map((m) => m.seq));
    expect(written).toEqual([Number(oks[2]!["seq"]), Number(oks[3]!["seq"])]);
    expect(store.batches.flatMap((b) => b.deleted)).toEqual([4_000]);
    await memory.stop();
  });

  it("answers err store_full when the commit fails, keeps serving, and writes the carried changes once it can", async () => {
    const store = new ScriptedStore(empty);
    const memory = await startMemoryBroker({ store });
    const pub = await memory.greeted();
    const sub = await memory.greeted();
    sub.send({ op: "sub", sid: 1, subject: "f.>", id: 1 });
    await sub.next((m) => m["id"] === 1);
    store.failWith = new XpcbusError("store_full", "database or disk is full");
    pub.send({ op: "pub", subject: "f.a", p: bytes("x"), retain: true, id: 2 });
    expect(await pub.next((m) => m["id"] === 2)).toMatchObject({ op: "err", code: "store_full", subject: "f.a" });
    // Delivered, and kept in memory.
    await sub.next((m) => m["op"] === "msg");
    pub.send({ op: "get", subject: "f.a", id: 3 });
    expect(await pub.next((m) => m["id"] === 3)).toMatchObject({ found: true });
    store.failWith = undefined;
    pub.send({ op: "pub", subject: "f.b", p: bytes("y"), id: 4 });
    expect(await pub.next((m) => m["id"] === 4)).toMatchObject({ op: "ok" });
    const written = store.batches.flatMap((b) => b.messages.map((m) => m.subject));
    expect(written).toEqual(["f.a", "f.b"]);
    expect(store.batches.flatMap((b) => b.retainedPut.map((r) => r.subject))).toEqual(["f.a"]);
    expect(memory.broker.status().store).toMatchObject({ kind: "sqlite", failedCommits: 1, failing: false });
    await memory.stop();
  });
});
