// The SQLite store: what it keeps (every field, 1.8e15 sequence numbers),
// how a commit applies (trims, forgets, all or nothing), and every start-up
// fault openStore turns into one code: corrupt, newer schema, unwritable,
// locked, disk full. Faults that need root (a read-only mount, an immutable
// file, a small tmpfs) are skipped with the reason when they cannot be made.

import { execFileSync, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { XpcbusError } from "../../protocol/index.js";
import type { DurableStore, StoreBatch, StoredMessage } from "../core/durable-store.js";
import { openStore } from "./open-store.js";
import { SCHEMA_VERSION } from "./schema.js";

const require = createRequire(import.meta.url);
const SEQ = 1.8e15;
const isRoot = process.getuid?.() === 0;

const EMPTY: StoreBatch = { retainedPut: [], retainedDelete: [], messages: [], deleted: [], subjects: [], forget: [], sequenceReservation: undefined };

function batch(part: Partial<StoreBatch>): StoreBatch {
  return { ...EMPTY, ...part };
}

function message(subject: string, seq: number, n: number, payload = `p${n}`): StoredMessage {
  return { subject, seq, n, time: 1_760_000_000_000 + n, payload: Buffer.from(payload), enc: "text" };
}

/** A pino logger whose lines the test can read. */
function capturedLogger(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "warn" }, sink), lines };
}

const silent = pino({ level: "silent" });
let dirs: string[] = [];
const open: DurableStore[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "xpcbus-store-"));
  dirs.push(dir);
  return dir;
}

function openAt(path: string, extra: Partial<Parameters<typeof openStore>[0]> = {}): DurableStore {
  const store = openStore({ path, durability: "normal", reset: false, log: silent, ...extra });
  open.push(store);
  return store;
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(XpcbusError);
    return (error as XpcbusError).code;
  }
  return undefined;
}

function errorOf(f: () => unknown): XpcbusError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(XpcbusError);
    return error as XpcbusError;
  }
  throw new Error("expected an XpcbusError");
}

afterEach(() => {
  for (const store of open.splice(0)) store.close();
  for (const dir of dirs) {
    try {
      execFileSync("chattr", ["-R", "-i", dir], { stdio: "ignore" });
    } catch {
      // Not root, or no chattr: nothing was made immutable.
    }
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  }
  dirs = [];
});

describe("what the store keeps", () => {
  it("round-trips every field, with 1.8e15 sequence numbers as exact JS numbers", () => {
    const path = join(tempDir(), "store.db");
    const store = openAt(path, { createdAtSeq: SEQ });
    store.commit(
      batch({
        retainedPut: [
          { subject: "a.json", seq: SEQ + 1, payload: Buffer.from('{"x":1}'), enc: "json", owner: 1000 },
          { subject: "a.none", seq: SEQ + 2, payload: new Uint8Array([0, 255, 1]), enc: undefined, owner: null },
          { subject: "a.empty", seq: SEQ + 3, payload: new Uint8Array(0), enc: "bytes", owner: 0 },
        ],
        messages: [
          message("m.1", SEQ + 10, 1),
          { subject: "m.2", seq: SEQ + 11, n: 1, time: 1_760_000_000_123, payload: new Uint8Array(0), enc: undefined },
          message("m.1", Number.MAX_SAFE_INTEGER - 1, 2),
        ],
        subjects: [
          { subject: "m.1", n: 2, dropped: new Uint8Array([9, 8, 7]) },
          { subject: "m.2", n: 1, dropped: new Uint8Array(0) },
        ],
        sequenceReservation: SEQ + (1 << 20),
      }),
    );
    store.close();

    const snapshot = openAt(path).load();
    expect(snapshot.sequenceReservation).toBe(SEQ + (1 << 20));
    expect(snapshot.createdAt?.seq).toBe(SEQ);
    expect(Math.abs((snapshot.createdAt?.time ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(snapshot.retained.map((r) => [r.subject, r.seq, [...r.payload], r.enc, r.owner])).toEqual([
      ["a.json", SEQ + 1, [...Buffer.from('{"x":1}')], "json", 1000],
      ["a.none", SEQ + 2, [0, 255, 1], undefined, null],
      ["a.empty", SEQ + 3, [], "bytes", 0],
    ]);
    expect(snapshot.messages.map((m) => [m.subject, m.seq, m.n, m.time, Buffer.from(m.payload).toString(), m.enc])).toEqual([
      ["m.1", SEQ + 10, 1, 1_760_000_000_001, "p1", "text"],
      ["m.2", SEQ + 11, 1, 1_760_000_000_123, "", undefined],
      ["m.1", Number.MAX_SAFE_INTEGER - 1, 2, 1_760_000_000_002, "p2", "text"],
    ]);
    for (const m of snapshot.messages) expect(typeof m.seq).toBe("number");
    expect(snapshot.subjects.map((s) => [s.subject, s.n, [...s.dropped]]).sort()).toEqual([
      ["m.1", 2, [9, 8, 7]],
      ["m.2", 1, []],
    ]);
  });

  it("a new store is empty, with its creation point; retained come back in seq order", () => {
    const path = join(tempDir(), "store.db");
    const store = openAt(path);
    const first = store.load();
    expect(first).toMatchObject({ sequenceReservation: 0, retained: [], messages: [], subjects: [] });
    // Without createdAtSeq: the clock in µs, the same floor as the sequence file.
    expect(Math.abs((first.createdAt?.seq ?? 0) - Date.now() * 1000)).toBeLessThan(60_000_000);
    store.commit(batch({ retainedPut: [{ subject: "z", seq: SEQ + 1, payload: Buffer.from("1"), enc: undefined, owner: null }] }));
    store.commit(batch({ retainedPut: [{ subject: "a", seq: SEQ + 2, payload: Buffer.from("2"), enc: undefined, owner: null }] }));
    store.commit(batch({ retainedPut: [{ subject: "z", seq: SEQ + 3, payload: Buffer.from("3"), enc: undefined, owner: null }] }));
    expect(store.load().retained.map((r) => `${r.subject}=${Buffer.from(r.payload).toString()}`)).toEqual(["a=2", "z=3"]);
    store.commit(batch({ retainedDelete: ["z"] }));
    expect(store.load().retained.map((r) => r.subject)).toEqual(["a"]);
  });

  it("deletes messages by seq, and forgets a subject's record", () => {
    const store = openAt(join(tempDir(), "store.db"));
    store.commit(
      batch({
        messages: [message("a", SEQ + 1, 1), message("b", SEQ + 2, 1), message("a", SEQ + 3, 2), message("a", SEQ + 4, 3), message("b", SEQ + 5, 2)],
        subjects: [
          { subject: "a", n: 3, dropped: new Uint8Array(0) },
          { subject: "b", n: 2, dropped: new Uint8Array(0) },
        ],
      }),
    );
    store.commit(batch({ deleted: [SEQ + 1, SEQ + 3], subjects: [{ subject: "a", n: 3, dropped: new Uint8Array([2]) }] }));
    let snapshot = store.load();
    expect(snapshot.messages.map((m) => `${m.subject}${m.n}`)).toEqual(["b1", "a3", "b2"]);
    expect(snapshot.subjects.find((s) => s.subject === "a")?.dropped).toEqual(Buffer.from([2]));
    store.commit(batch({ deleted: [SEQ + 2, SEQ + 5], forget: ["b"] }));
    snapshot = store.load();
    expect(snapshot.messages.map((m) => `${m.subject}${m.n}`)).toEqual(["a3"]);
    expect(snapshot.subjects.map((s) => s.subject)).toEqual(["a"]);
  });

  it("in one batch: a message the same batch deletes is not kept; the others are", () => {
    const store = openAt(join(tempDir(), "store.db"));
    store.commit(
      batch({
        messages: [message("a", SEQ + 1, 1), message("a", SEQ + 2, 2), message("a", SEQ + 3, 3), message("gone", SEQ + 4, 1), message("c", SEQ + 5, 1)],
        deleted: [SEQ + 1, SEQ + 2, SEQ + 4],
        subjects: [{ subject: "gone", n: 1, dropped: new Uint8Array(0) }],
        forget: ["gone"],
      }),
    );
    const snapshot = store.load();
    expect(snapshot.messages.map((m) => m.seq)).toEqual([SEQ + 3, SEQ + 5]);
    expect(snapshot.subjects).toEqual([]);
  });

  it("a failed commit keeps nothing of its batch, and the next commit works", () => {
    const path = join(tempDir(), "store.db");
    const store = openAt(path);
    store.commit(batch({ messages: [message("a", SEQ + 1, 1)] }));
    // The same seq twice: the messages primary key refuses it after the retained put ran.
    const error = errorOf(() =>
      store.commit(
        batch({
          retainedPut: [{ subject: "r", seq: SEQ + 2, payload: Buffer.from("x"), enc: undefined, owner: null }],
          messages: [message("a", SEQ + 1, 2)],
          sequenceReservation: SEQ + 99,
        }),
      ),
    );
    expect(error.code).toBe("store_failed");
    expect(error.message).toContain(path);
    expect(error.message).toContain("UNIQUE constraint failed");
    const after = store.load();
    expect(after.retained).toEqual([]);
    expect(after.sequenceReservation).toBe(0);
    expect(after.messages.map((m) => m.n)).toEqual([1]);
    store.commit(batch({ messages: [message("a", SEQ + 3, 2)] }));
    expect(store.load().messages.map((m) => m.n)).toEqual([1, 2]);
  });

  it("throws `closed` after close(); close() twice is fine", () => {
    const store = openStore({ path: join(tempDir(), "store.db"), durability: "full", reset: false, log: silent });
    expect(store.description).toMatchObject({ kind: "sqlite", durability: "full" });
    store.close();
    store.close();
    expect(codeOf(() => store.load())).toBe("closed");
    expect(codeOf(() => store.commit(batch({ messages: [message("a", SEQ, 1)] })))).toBe("closed");
  });

  it("uses WAL with no -shm file, and leaves only the database after close", () => {
    const dir = tempDir();
    const store = openAt(join(dir, "store.db"));
    store.commit(batch({ messages: [message("a", SEQ + 1, 1)] }));
    expect(readdirSync(dir).sort()).toEqual(["store.db", "store.db-wal"]);
    store.close();
    expect(readdirSync(dir)).toEqual(["store.db"]);
  });

  it("creates a missing parent directory 0700", () => {
    const dir = join(tempDir(), "state", "xpcbus");
    openAt(join(dir, "store.db"));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });
});

describe("start-up faults", () => {
  it("a file of random bytes is store_corrupt; with reset it is moved aside and a new store starts", () => {
    const dir = tempDir();
    const path = join(dir, "store.db");
    writeFileSync(path, Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) & 0xff)));
    writeFileSync(`${path}-wal`, "not a wal");
    const error = errorOf(() => openAt(path));
    expect(error.code).toBe("store_corrupt");
    expect(error.message).toContain(path);

    const { log, lines } = capturedLogger();
    const store = openAt(path, { reset: true, log });
    expect(store.load().messages).toEqual([]);
    // SQLite itself deletes a -wal beside a file that is not a database when
    // it closes it (the WAL's frames are of no use without their database).
    const aside = readdirSync(dir).filter((f) => f.startsWith("store.db.corrupt-"));
    expect(aside).toHaveLength(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, store: path, movedTo: join(dir, aside[0] as string) });
  });

  it("a truncated real store is store_corrupt", () => {
    const dir = tempDir();
    const path = join(dir, "store.db");
    const store = openAt(path);
    const messages = Array.from({ length: 2000 }, (_, i) => message(`s.${i % 7}`, SEQ + i, i, "x".repeat(200)));
    store.commit(batch({ messages }));
    store.close();
    const cut = join(dir, "cut.db");
    copyFileSync(path, cut);
    truncateSync(cut, Math.floor(statSync(path).size / 2));
    expect(codeOf(() => openAt(cut))).toBe("store_corrupt");
  });

  it("a store of a newer schema is store_newer_schema, naming both versions; reset moves it aside", () => {
    const dir = tempDir();
    const path = join(dir, "store.db");
    openAt(path).close();
    const Database = require("better-sqlite3") as new (path: string) => { pragma(s: string): unknown; close(): void };
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const error = errorOf(() => openAt(path));
    expect(error.code).toBe("store_newer_schema");
    expect(error.message).toContain(`version ${SCHEMA_VERSION + 1}`);
    expect(error.message).toContain(`this build's ${SCHEMA_VERSION}`);
    openAt(path, { reset: true });
    expect(readdirSync(dir).filter((f) => f.startsWith("store.db.newer-schema-"))).toHaveLength(1);
  });

  it("a second open in this process is store_locked, and the first keeps working", () => {
    const path = join(tempDir(), "store.db");
    const first = openAt(path);
    const error = errorOf(() => openAt(path, { reset: true }));
    expect(error.code).toBe("store_locked");
    expect(error.message).toContain("in use by another broker");
    first.commit(batch({ messages: [message("a", SEQ + 1, 1)] }));
    expect(first.load().messages).toHaveLength(1);
    first.close();
    expect(openAt(path).load().messages).toHaveLength(1);
  });

  it("a store another process holds is store_locked; a store this process holds cannot be read by another", async () => {
    const path = join(tempDir(), "store.db");
    openAt(path).close();
    const modulePath = require.resolve("better-sqlite3");
    // The child opens the file the way the store does (exclusive lock, a write transaction) and waits.
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const D = require(${JSON.stringify(modulePath)}); const db = new D(${JSON.stringify(path)});
         db.pragma("locking_mode = EXCLUSIVE"); db.pragma("journal_mode = WAL"); db.exec("BEGIN IMMEDIATE; COMMIT");
         process.stdout.write("held\\n"); process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`the child exited (${code})`)));
    });
    try {
      expect(codeOf(() => openAt(path))).toBe("store_locked");
    } finally {
      child.stdin.end();
      await new Promise((resolve) => child.once("exit", resolve));
    }
    // And the other way round: this process holds it, a child cannot read it.
    openAt(path);
    const out = execFileSync(process.execPath, [
      "-e",
      `const D = require(${JSON.stringify(modulePath)});
       try { new D(${JSON.stringify(path)}, { timeout: 0 }).prepare("SELECT count(*) FROM meta").get(); console.log("read"); }
       catch (e) { console.log(e.code); }`,
    ]).toString();
    expect(out.trim()).toBe("SQLITE_BUSY");
  });

  it("a read-only store file is store_unwritable, and reset does not touch it", (ctx) => {
    const dir = tempDir();
    const path = join(dir, "store.db");
    openAt(path).close();
    if (isRoot) {
      // Root ignores file modes: an immutable file is what root cannot write.
      try {
        execFileSync("chattr", ["+i", path], { stdio: "pipe" });
      } catch (error) {
        ctx.skip(`root, and chattr +i failed: ${(error as Error).message.split("\n")[0]}`);
      }
    } else {
      chmodSync(path, 0o400);
    }
    const error = errorOf(() => openAt(path, { reset: true }));
    expect(error.code).toBe("store_unwritable");
    expect(error.message).toContain(path);
    expect(readdirSync(dir)).toEqual(["store.db"]);
  });

  describe("a read-only directory", () => {
    let mounted: string | undefined;
    let reason: string | undefined;
    beforeAll(() => {
      if (!isRoot) return; // chmod 0500 is enough for a user
      const dir = mkdtempSync(join(tmpdir(), "xpcbus-store-ro-"));
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", dir], { stdio: "pipe" });
        execFileSync("mount", ["-o", "remount,ro", dir], { stdio: "pipe" });
        mounted = dir;
      } catch (error) {
        reason = `root, and a read-only tmpfs could not be mounted: ${(error as Error).message.split("\n")[0]}`;
        try {
          execFileSync("umount", [dir], { stdio: "ignore" });
        } catch {
          // It was not mounted.
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
    afterAll(() => {
      if (mounted === undefined) return;
      execFileSync("umount", [mounted]);
      rmSync(mounted, { recursive: true, force: true });
    });

    it("is store_unwritable (a new store in it, and a missing directory under it)", (ctx) => {
      let dir: string;
      if (isRoot) {
        if (mounted === undefined) return ctx.skip(reason ?? "no read-only mount");
        dir = mounted;
      } else {
        dir = tempDir();
        chmodSync(dir, 0o500);
      }
      const error = errorOf(() => openAt(join(dir, "store.db"), { reset: true }));
      expect(error.code).toBe("store_unwritable");
      expect(error.message).toContain(dir);
      expect(codeOf(() => openAt(join(dir, "sub", "store.db")))).toBe("store_unwritable");
      expect(existsSync(join(dir, "store.db"))).toBe(false);
    });
  });
});

describe("a full disk", () => {
  let dir: string | undefined;
  let reason: string | undefined;
  beforeAll(() => {
    if (!isRoot) {
      reason = "not root: cannot mount a small tmpfs";
      return;
    }
    const target = mkdtempSync(join(tmpdir(), "xpcbus-store-full-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", target], { stdio: "pipe" });
      dir = target;
    } catch (error) {
      reason = `mount -t tmpfs failed: ${(error as Error).message.split("\n")[0]}`;
      rmSync(target, { recursive: true, force: true });
    }
  });
  afterAll(() => {
    if (dir === undefined) return;
    execFileSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses with store_full, keeps what it had, and works again once space is freed", (ctx) => {
    if (dir === undefined) return ctx.skip(reason ?? "no tmpfs");
    const path = join(dir, "store.db");
    const filler = join(dir, "filler");
    writeFileSync(filler, Buffer.alloc(64 * 1024));
    let store = openAt(path);
    let seq = SEQ;
    let kept = 0;
    let full: XpcbusError | undefined;
    for (let i = 1; i <= 1000 && full === undefined; i++) {
      try {
        store.commit(batch({ messages: [message("a", ++seq, i, "x".repeat(1000))], subjects: [{ subject: "a", n: i, dropped: new Uint8Array(0) }] }));
        kept = i;
      } catch (error) {
        full = error as XpcbusError;
      }
    }
    expect(full?.code).toBe("store_full");
    expect(full?.message).toContain(path);
    expect(kept).toBeGreaterThan(10);
    // Nothing of the refused batch, everything before it; the store still reads.
    expect(store.load().messages).toHaveLength(kept);
    expect(codeOf(() => store.commit(batch({ messages: [message("a", ++seq, kept + 1, "x".repeat(1000))] })))).toBe("store_full");

    // Closed on a full disk (its checkpoint cannot grow the file) and reopened: the data is all there.
    store.close();
    store = openAt(path);
    const reopened = store.load();
    expect(reopened.messages).toHaveLength(kept);
    expect(reopened.subjects).toEqual([{ subject: "a", n: kept, dropped: Buffer.alloc(0) }]);

    // Space freed: the next commit goes in, and a trim then leaves only the newest.
    rmSync(filler);
    store.commit(batch({ messages: [message("a", ++seq, kept + 1, "x".repeat(1000))] }));
    store.commit(batch({ deleted: reopened.messages.map((m) => m.seq) }));
    expect(store.load().messages.map((m) => m.n)).toEqual([kept + 1]);
  });
});
