// The broker core's parts on their own: trie matching against the reference
// matcher, sequence numbers across restarts, retained bounds, options.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { encodeFrame, subjectMatches } from "../protocol/index.js";
import { parseLimits, DEFAULT_BROKER_LIMITS } from "./core/options.js";
import { RetainedStore } from "./core/retained-store.js";
import { Sequences, SEQUENCE_RESERVATION_BLOCK, volatileSequenceFloor } from "./core/sequences.js";
import { SubjectIndex, type IndexedSubscription } from "./core/subject-index.js";
import { PACKAGE_VERSION } from "./core/version.js";
import { fileSequenceFloor } from "./sequence-file.js";
import { resolveSocketPath } from "./daemon-process.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";

interface Sub extends IndexedSubscription<string> {
  id: number;
}

describe("subject index (trie)", () => {
  // Small alphabets so wildcards and overlaps are frequent.
  const tokens = ["a", "b", "c"];
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const concrete = (): string => Array.from({ length: 1 + rand(4) }, () => tokens[rand(3)]).join(".");
  const pattern = (): string => {
    const parts = Array.from({ length: 1 + rand(4) }, () => ["a", "b", "c", "*"][rand(4)] as string);
    if (rand(3) === 0) parts[parts.length - 1] = ">";
    return parts.join(".");
  };

  it("matches exactly what the reference matcher matches, through adds and removes", () => {
    const index = new SubjectIndex<string, Sub>();
    const live: Sub[] = [];
    for (let round = 0; round < 2000; round++) {
      if (live.length > 0 && rand(3) === 0) {
        const victim = live.splice(rand(live.length), 1)[0] as Sub;
        index.remove(victim);
      } else {
        const sub: Sub = { id: round, owner: `peer${rand(5)}`, subject: pattern(), queue: rand(4) === 0 ? "q" : undefined };
        live.push(sub);
        index.add(sub);
      }
      const subject = concrete();
      const set = index.match(subject);
      const expected = live.filter((s) => subjectMatches(s.subject, subject));
      const expectedOwners = [...new Set(expected.filter((s) => s.queue === undefined).map((s) => s.owner))].sort();
      expect([...set.plainOwners].sort()).toEqual(expectedOwners);
      const grouped = set.groups.flatMap((g) => g.members.map((m) => m.id)).sort();
      expect(grouped).toEqual(expected.filter((s) => s.queue !== undefined).map((s) => s.id).sort());
      expect(index.size).toBe(live.length);
    }
  });

  it("gives each peer one delivery however many of its subscriptions match", () => {
    const index = new SubjectIndex<string, Sub>();
    index.add({ id: 1, owner: "p", subject: "a.b", queue: undefined });
    index.add({ id: 2, owner: "p", subject: "a.*", queue: undefined });
    index.add({ id: 3, owner: "p", subject: ">", queue: undefined });
    index.add({ id: 4, owner: "q", subject: "a.>", queue: undefined });
    expect(index.match("a.b").plainOwners).toEqual(["p", "q"]);
  });

  it("rotates queue group members round-robin, also across subscription churn", () => {
    const index = new SubjectIndex<string, Sub>();
    const members = [1, 2, 3].map((id) => ({ id, owner: `p${id}`, subject: "job", queue: "workers" }));
    for (const m of members) index.add(m);
    const picks = (n: number): number[] => Array.from({ length: n }, () => index.pickMember("job", index.match("job").groups[0]!).id);
    expect(picks(6)).toEqual([1, 2, 3, 1, 2, 3]);
    const extra = { id: 9, owner: "x", subject: "other", queue: undefined };
    index.add(extra);
    index.remove(extra);
    expect(picks(3)).toEqual([1, 2, 3]);
  });

  it("rotates each subject's members on their own, when one group name spans subjects", () => {
    const index = new SubjectIndex<string, Sub>();
    for (const [id, subject] of [[1, "x"], [2, "x"], [3, "y"], [4, "y"]] as const) {
      index.add({ id, owner: `p${id}`, subject, queue: "responders" });
    }
    const pick = (subject: string): number => index.pickMember(subject, index.match(subject).groups[0]!).id;
    const got = [pick("x"), pick("y"), pick("x"), pick("y")];
    expect(got).toEqual([1, 3, 2, 4]);
  });

  it("prunes empty branches and reports patterns", () => {
    const index = new SubjectIndex<string, Sub>();
    const s = { id: 1, owner: "p", subject: "a.b.c", queue: undefined };
    index.add(s);
    index.add({ id: 2, owner: "p", subject: "a.>", queue: undefined });
    expect(index.patterns()).toEqual([
      { subject: "a.>", subscribers: 1 },
      { subject: "a.b.c", subscribers: 1 },
    ]);
    index.remove(s);
    index.remove(s);
    expect(index.size).toBe(1);
    expect(index.match("a.b.c").plainOwners).toEqual(["p"]);
  });
});

describe("sequence numbers", () => {
  const dir = mkdtempSync(join(tmpdir(), "xpcbus-seq-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const log = pino({ level: "silent" });

  it("grow by one per publish over every subject, and remember each subject's last", () => {
    const seq = new Sequences(volatileSequenceFloor(100), 10);
    expect(seq.next("a")).toBe(101);
    expect(seq.next("a")).toBe(102);
    expect(seq.next("b")).toBe(103);
    expect(seq.next("a")).toBe(104);
    expect(seq.current("a")).toBe(104);
    expect(seq.current("b")).toBe(103);
    expect(seq.highest).toBe(104);
    expect(seq.current("zzz")).toBe(0);
  });

  it("stay increasing for a subject evicted from the bounded table", () => {
    const seq = new Sequences(volatileSequenceFloor(0), 2);
    const first = seq.next("a");
    for (let i = 0; i < 10; i++) seq.next(`s${i}`);
    expect(seq.next("a")).toBeGreaterThan(first);
  });

  it("never go back across a restart, even with a clock that went back", () => {
    const file = join(dir, "broker.seq");
    let clock = 1_000;
    const floor1 = fileSequenceFloor(file, log, () => clock);
    const s1 = new Sequences(floor1, 100);
    let last = 0;
    for (let i = 0; i < 5; i++) last = s1.next("x");
    expect(Number(readFileSync(file, "utf8"))).toBeGreaterThanOrEqual(last);
    clock = 0; // the clock went back: only the file protects us now
    const s2 = new Sequences(fileSequenceFloor(file, log, () => clock), 100);
    expect(s2.next("x")).toBeGreaterThan(last);
  });

  it("reserve ahead in blocks, not on every publish", () => {
    const reservations: number[] = [];
    const seq = new Sequences({ floor: 0, reserve: (upTo) => reservations.push(upTo) }, 10);
    for (let i = 0; i < 1000; i++) seq.next("a");
    expect(reservations).toEqual([SEQUENCE_RESERVATION_BLOCK]);
  });
});

const bounds = (maxEntries: number, maxBytes: number, maxEntriesPerUid = maxEntries, maxBytesPerUid = maxBytes) => ({ maxEntries, maxBytes, maxEntriesPerUid, maxBytesPerUid });

describe("retained store", () => {
  const value = (subject: string, bytes: number, seq = 1) => ({ subject, payload: new Uint8Array(bytes).fill(1), enc: undefined, seq });
  const ME = 1000;

  it("refuses what does not fit, by entries and by bytes, and keeps every value it has", () => {
    const byCount = new RetainedStore(bounds(2, 1 << 20));
    expect(byCount.put(value("a", 1), ME)).toBe(true);
    expect(byCount.put(value("b", 1), ME)).toBe(true);
    expect(byCount.refusal("c", new Uint8Array(1), ME)).toMatch(/the retained space is full \(2 of 2 values/);
    expect(byCount.put(value("c", 1), ME)).toBe(false);
    expect([byCount.get("a"), byCount.get("b"), byCount.get("c")].map((v) => v !== undefined)).toEqual([true, true, false]);
    // Replacing a kept value needs no new room; clearing one makes room.
    expect(byCount.put(value("a", 5, 2), ME)).toBe(true);
    expect(byCount.put(value("b", 0), ME)).toBe(true);
    expect(byCount.put(value("c", 1), ME)).toBe(true);

    const byBytes = new RetainedStore(bounds(100, 1000));
    let kept = 0;
    for (let i = 0; i < 10; i++) if (byBytes.put(value(`s${i}`, 200), ME)) kept++;
    expect(kept).toBe(3); // 3 × (200 + 2 + 64) ≤ 1000 < 4 × 266
    expect(byBytes.bytes).toBeLessThanOrEqual(1000);
    expect(byBytes.get("s0")).toBeDefined();
    expect(byBytes.refusal("big", new Uint8Array(2000), ME)).toMatch(/larger than the whole retained space/);
  });

  it("bounds each uid, so one at its quota does not stop another, and credits what is cleared or taken over", () => {
    const store = new RetainedStore(bounds(10, 1 << 20, 3, 1 << 20));
    for (const s of ["a", "b", "c"]) expect(store.put(value(s, 1), ME)).toBe(true);
    expect(store.refusal("d", new Uint8Array(1), ME)).toMatch(/uid 1000 is at its retained quota \(3 of 3 values/);
    expect(store.put(value("d", 1), 2000)).toBe(true);
    expect(store.put(value("x", 1), null)).toBe(true);
    expect(store.use()).toEqual(expect.arrayContaining([
      { uid: ME, count: 3, bytes: 3 * 66 },
      { uid: 2000, count: 1, bytes: 66 },
      { uid: null, count: 1, bytes: 66 },
    ]));
    // Another uid retaining "a" takes it over: ME is credited, and has room again.
    expect(store.put(value("a", 1, 2), 2000)).toBe(true);
    expect(store.put(value("e", 1), ME)).toBe(true);
    expect(store.put(value("e", 0), ME)).toBe(true);
    expect(store.use().find((u) => u.uid === ME)).toEqual({ uid: ME, count: 2, bytes: 2 * 66 });
  });

  it("clears a subject on an empty payload and copies what it keeps", () => {
    const store = new RetainedStore(bounds(10, 1 << 20));
    const buffer = Buffer.from("xxhelloxx");
    store.put({ subject: "a", payload: buffer.subarray(2, 7), enc: "text", seq: 5 }, ME);
    buffer.fill(0);
    expect(Buffer.from(store.get("a")!.payload).toString()).toBe("hello");
    store.put(value("a", 0), ME);
    expect(store.get("a")).toBeUndefined();
    expect(store.use()).toEqual([]);
    expect(store.bytes).toBe(0);
  });
});

describe("retained store replay order", () => {
  const value = (subject: string, seq: number, bytes = 1) => ({ subject, payload: new Uint8Array(bytes).fill(1), enc: undefined, seq });
  const order = (store: RetainedStore, pattern = ">") => store.matching((s) => subjectMatches(pattern, s)).map((v) => v.subject);

  it("replays in the order the values were last retained, across subjects, not by seq", () => {
    const store = new RetainedStore(bounds(100, 1 << 20));
    // seq is per subject (PROTOCOL.md §9.6): a.x's 5 says nothing against b.y's 1.
    for (let seq = 1; seq <= 5; seq++) store.put(value("a.x", seq), 1);
    store.put(value("b.y", 1), 1);
    store.put(value("c.z", 2), 1);
    expect(order(store)).toEqual(["a.x", "b.y", "c.z"]);
    expect(store.matching(() => true).map((v) => v.seq)).toEqual([5, 1, 2]);
    // Retained again: it moves to the end.
    store.put(value("a.x", 6), 1);
    expect(order(store)).toEqual(["b.y", "c.z", "a.x"]);
    // A get changes nothing.
    expect(store.get("b.y")?.seq).toBe(1);
    expect(order(store)).toEqual(["b.y", "c.z", "a.x"]);
    // Cleared, then retained again: at the end.
    store.put(value("c.z", 3, 0), 1);
    expect(order(store)).toEqual(["b.y", "a.x"]);
    store.put(value("c.z", 4), 1);
    expect(order(store)).toEqual(["b.y", "a.x", "c.z"]);
    expect(order(store, "*.x")).toEqual(["a.x"]);
  });

  it("agrees with a plain model through a long random run, refusals included", () => {
    const max = 600;
    const quota = 250;
    const store = new RetainedStore(bounds(max, 1 << 30, quota, 1 << 30));
    // The model: retain order as an array, owners in a map (slow, obviously right).
    const retained: string[] = [];
    const owners = new Map<string, number>();
    const held = (uid: number) => [...owners.values()].filter((o) => o === uid).length;
    const drop = (s: string) => {
      const i = retained.indexOf(s);
      if (i >= 0) retained.splice(i, 1);
      owners.delete(s);
    };
    const seqs = new Map<string, number>();
    let seed = 7;
    // An LCG in 32-bit integer arithmetic (a double product would lose bits and cycle), high bits used.
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let refused = 0;
    for (let step = 1; step <= 20_000; step++) {
      const subject = `s.${rand(1300)}`;
      const uid = rand(3);
      const roll = rand(10);
      seqs.set(subject, (seqs.get(subject) ?? 0) + 1);
      if (roll < 6) {
        const replacing = owners.has(subject);
        const fits = (replacing || retained.length < max) && held(uid) - (owners.get(subject) === uid ? 1 : 0) < quota;
        expect(store.put(value(subject, seqs.get(subject) as number), uid)).toBe(fits);
        if (fits) {
          drop(subject);
          retained.push(subject);
          owners.set(subject, uid);
        } else {
          refused++;
        }
      } else if (roll < 9) {
        expect(store.get(subject) !== undefined).toBe(retained.includes(subject));
      } else {
        store.put(value(subject, seqs.get(subject) as number, 0), uid);
        drop(subject);
      }
    }
    expect(refused).toBeGreaterThan(0);
    expect(store.count).toBe(retained.length);
    expect(order(store)).toEqual(retained);
    for (const uid of [0, 1, 2]) expect(store.use().find((u) => u.uid === uid)?.count ?? 0).toBe(held(uid));
  });
});

describe("socket path", () => {
  it("treats only the paths xpcbus picks itself as defaults it may chmod", () => {
    expect(resolveSocketPath({}, { XDG_RUNTIME_DIR: "/run/user/5" })).toEqual({ path: "/run/user/5/xpcbus/broker.sock", isDefault: true });
    expect(resolveSocketPath({ system: true }, {})).toEqual({ path: "/run/xpcbus/broker.sock", isDefault: true });
    expect(resolveSocketPath({}, { XPCBUS_SOCKET: "/tmp/b.sock" })).toEqual({ path: "/tmp/b.sock", isDefault: false });
    expect(resolveSocketPath({ socket: "/x/y.sock" }, {})).toEqual({ path: "/x/y.sock", isDefault: false });
    expect(resolveSocketPath({}, {}).path).toMatch(/^\/tmp\/xpcbus-\d+\/broker\.sock$/);
  });
});

describe("options", () => {
  it("reject unknown and ill-typed limits by name", () => {
    expect(() => parseLimits({ maxPeer: 3 } as never)).toThrow(/unknown broker limit "maxPeer"/);
    expect(() => parseLimits({ maxPeers: 0 })).toThrow(/maxPeers/);
    expect(() => parseLimits({ maxPeers: 1.5 })).toThrow(/maxPeers/);
    expect(() => parseLimits({ maxPayloadBytes: 10, maxFrameBytes: 5 })).toThrow(/maxPayloadBytes/);
    expect(parseLimits({ maxPeers: 7 }).maxPeers).toBe(7);
    expect(parseLimits(undefined)).toEqual(DEFAULT_BROKER_LIMITS);
  });

  it("report the package's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(PACKAGE_VERSION).toBe(pkg.version);
  });
});

describe("broker core through its transport seam (the memory transport)", () => {
  it("encodes a publish once and hands it to every subscriber, one delivery per peer", async () => {
    let msgEncodings = 0;
    const encoder = {
      encode: (m: { op: string }) => {
        if (m.op === "msg") msgEncodings++;
        return encodeFrame(m);
      },
      sizeOf: (b: Buffer) => b.length,
    };
    const memory = await startMemoryBroker({ transport: { encoder } });
    const peers = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const peer = await memory.greeted();
        peer.send({ op: "sub", sid: 1, subject: "fan.*" });
        peer.send({ op: "sub", sid: 2, subject: "fan.>", id: 2 });
        await peer.next((m) => m["op"] === "ok" && m["id"] === 2);
        return peer;
      }),
    );
    peers[0]!.send({ op: "pub", subject: "fan.out", p: Buffer.from("x") });
    await Promise.all(peers.map((p) => p.next((m) => m["op"] === "msg")));
    expect(msgEncodings).toBe(1);
    // Both subscriptions match, yet each peer gets one frame (the client dispatches it to both).
    await peers[0]!.alive(3);
    for (const p of peers) expect(p.received.filter((m) => m["op"] === "msg")).toEqual([{ op: "msg", subject: "fan.out", p: Buffer.from("x"), seq: 1 }]);
    for (const p of peers) p.destroy();
    await memory.transport.drained();
    expect(memory.broker.peerCount).toBe(0);
    expect(memory.broker.status().subjects).toEqual([]);
    await memory.stop();
  });

  it("replays retained values in the order they were retained across subjects, which is their seq order", async () => {
    const memory = await startMemoryBroker();
    const pub = await memory.greeted();
    let id = 0;
    const retain = async (subject: string, text: string): Promise<number> => {
      const mine = ++id;
      pub.send({ op: "pub", subject, p: Buffer.from(text), retain: true, id: mine });
      const ok = await pub.next((m) => m["op"] === "ok" && m["id"] === mine);
      return Number(ok["seq"]);
    };
    // One counter for every subject: a.x retained again after b.y numbers above it.
    await retain("a.x", "a1");
    let by = 0;
    for (let i = 1; i <= 5; i++) by = await retain("b.y", `b${i}`);
    const ax = await retain("a.x", "a2");
    const cz = await retain("c.z", "c1");
    expect(ax).toBeGreaterThan(by);
    expect(cz).toBe(ax + 1);
    pub.send({ op: "get", subject: "b.y", id: ++id });
    await pub.next((m) => m["id"] === id);

    const sub = await memory.greeted();
    sub.send({ op: "sub", sid: 1, subject: ">", replay: true, id: 1 });
    await sub.next((m) => m["op"] === "ok" && m["id"] === 1);
    const replayed = sub.received.filter((m) => m["op"] === "msg");
    expect(replayed.map((m) => [m["subject"], Buffer.from(m["p"] as Uint8Array).toString(), Number(m["seq"])])).toEqual([
      ["b.y", "b5", by],
      ["a.x", "a2", ax],
      ["c.z", "c1", cz],
    ]);
    expect(sub.received.at(-1)).toEqual({ op: "ok", id: 1, seq: cz });
    await memory.stop();
  });
});
