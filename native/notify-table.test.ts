// The Linux notify center's native half on its own: writer, reader, waiter,
// in both waiting modes, and what happens after close.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadNative, nativeAddonPath } from "./loader.js";

const native = loadNative();
const linux = native.platform === "linux";
const dir = mkdtempSync(join(tmpdir(), "xpcbus-notify-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const tablePath = (): string => join(dir, `t${++n}.notify`);

/** Resolves when `predicate` holds after a wake, or rejects after `ms`. */
function wakeUntil(wakes: { count: number; listeners: Array<() => void> }, predicate: () => boolean, ms = 2000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => reject(new Error("no wake-up")), ms);
    wakes.listeners.push(() => {
      if (!predicate()) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

function counter(): { count: number; listeners: Array<() => void>; onWake: () => void } {
  const c = {
    count: 0,
    listeners: [] as Array<() => void>,
    onWake: () => {
      c.count++;
      for (const l of c.listeners) l();
    },
  };
  return c;
}

describe.skipIf(!linux)("notify table (Linux)", () => {
  const { NotifyTableWriter, NotifyTableReader, NotifyWaiter } = native as Required<typeof native>;

  it("assigns, posts, and reads state, generation and owner hash; check costs a memory read", () => {
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 16);
    const reader = new NotifyTableReader(path);
    expect(reader.slotCount).toBe(16);
    expect(reader.instance).toBe(writer.instance);
    expect(statSync(path).mode & 0o777).toBe(0o600); // its readers only: docs/SECURITY.md, "The notify table"
    writer.assign(3, 0xabc, 41n);
    expect([reader.state(3), reader.generation(3), reader.nameHash(3)]).toEqual([41n, 1, 0xabc]);
    const seen = reader.generation(3);
    writer.post(3, 2n ** 64n - 1n);
    expect(reader.generation(3)).toBe(seen + 1);
    expect(reader.state(3)).toBe(2n ** 64n - 1n);
    expect(writer.state(3)).toBe(2n ** 64n - 1n);
    writer.close();
    reader.close();
  });

  it("cannot be written through a client's mapping, nor opened for writing by another user", () => {
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 4);
    const reader = new NotifyTableReader(path);
    expect(reader.writableErrno()).toBe(13); // EACCES: the file was opened read-only
    writer.close();
    reader.close();
  });

  it("lets the one reader uid it is made for read it, by an ACL, and nobody else open it", () => {
    chmodSync(dir, 0o755); // traversable, so the file's own access is what is tested
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 4, 65534);
    const plain = tablePath();
    const ownerOnly = new NotifyTableWriter(plain, 4);
    // Owned by the writer; 0640 is the ACL's mask (the owning group's own entry is empty).
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(statSync(path).uid).toBe(process.getuid!());
    expect(statSync(plain).mode & 0o777).toBe(0o600);
    const canSetpriv = process.getuid!() === 0 && spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;
    if (canSetpriv) {
      const as = (uid: number, code: string): string =>
        spawnSync("/usr/bin/setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "-e",
          `const fs = require("fs"); const t = (f) => { try { f(); return "ok" } catch (e) { return e.code } }; ${code}`]).stdout.toString().trim();
      const probe = (file: string) =>
        `console.log([t(() => fs.openSync(${JSON.stringify(file)}, "r")), t(() => fs.openSync(${JSON.stringify(file)}, "r+")), t(() => fs.chmodSync(${JSON.stringify(file)}, 0o666)), t(() => fs.truncateSync(${JSON.stringify(file)}, 0))].join(" "))`;
      expect(as(65534, probe(path))).toBe("ok EACCES EPERM EACCES");
      expect(as(65534, probe(plain))).toBe("EACCES EACCES EPERM EACCES");
      expect(as(4242, probe(path))).toBe("EACCES EACCES EPERM EACCES");
    }
    expect(() => new NotifyTableWriter(tablePath(), 4, -1)).toThrow(RangeError);
    expect(() => new NotifyTableWriter(tablePath(), 4, 2 ** 32 - 1)).toThrow(RangeError);
    expect(() => new NotifyTableWriter(tablePath(), 4, "1000" as never)).toThrow(TypeError);
    writer.close();
    ownerOnly.close();
  });

  it("rejects bad arguments, a file that is not a table, and a second writer", () => {
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 4);
    expect(() => writer.post(4, 1n)).toThrow(RangeError);
    expect(() => writer.post(-1, 1n)).toThrow(RangeError);
    expect(() => writer.post(0, 1 as never)).toThrow(/bigint/);
    expect(() => writer.post(0, -1n)).toThrow(/64-bit/);
    expect(() => new NotifyTableWriter(path, 4)).toThrow(/EEXIST|exists/);
    expect(() => new NotifyTableWriter(tablePath(), 0)).toThrow(RangeError);
    const junk = join(dir, "junk");
    writeFileSync(junk, Buffer.alloc(100));
    expect(() => new NotifyTableReader(junk)).toThrow(/not an xpcbus notify table/);
    expect(() => new NotifyTableReader(join(dir, "missing"))).toThrow(/ENOENT|No such file/);
    writer.close();
  });

  it("throws cleanly after close, for every object", () => {
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 4);
    const reader = new NotifyTableReader(path);
    const waiter = new NotifyWaiter(reader, () => {});
    waiter.close();
    waiter.close();
    expect(() => waiter.setSlots([0])).toThrow(/closed/);
    reader.close();
    expect(() => reader.state(0)).toThrow(/closed/);
    expect(() => reader.generation(0)).toThrow(/closed/);
    expect(() => new NotifyWaiter(reader, () => {})).toThrow(/closed/);
    writer.close();
    expect(() => writer.post(0, 1n)).toThrow(/closed/);
    expect(() => new NotifyWaiter({} as never, () => {})).toThrow(/NotifyTableReader/);
  });

  for (const perSlot of [false, true]) {
    describe(perSlot ? "waiter, one thread per slot (FUTEX_WAIT)" : "waiter, futex_waitv", () => {
      it("wakes the JS thread on a post to a watched slot only, coalescing bursts", async () => {
        const path = tablePath();
        const writer = new NotifyTableWriter(path, 300);
        const reader = new NotifyTableReader(path);
        const wakes = counter();
        const waiter = new NotifyWaiter(reader, wakes.onWake, { perSlot });
        expect(waiter.method).toBe(perSlot ? "futex_wait" : "futex_waitv");
        // More than one futex_waitv group (127 slots each).
        waiter.setSlots([1, 200, 299]);
        writer.post(5, 1n); // not watched
        writer.post(299, 7n);
        await wakeUntil(wakes, () => wakes.count >= 1);
        const before = wakes.count;
        for (let i = 0; i < 1000; i++) writer.post(1, BigInt(i));
        await wakeUntil(wakes, () => wakes.count > before);
        expect(wakes.count - before).toBeLessThan(1000);
        expect(reader.state(1)).toBe(999n);
        // After a new set, a formerly watched slot no longer wakes us.
        waiter.setSlots([200]);
        const settled = wakes.count;
        writer.post(1, 1n);
        writer.post(200, 9n);
        await wakeUntil(wakes, () => wakes.count > settled);
        expect(reader.state(200)).toBe(9n);
        waiter.close();
        reader.close();
        writer.close();
      });
    });
  }

  it("keeps watching after its reader is closed (the mapping is shared until the waiter closes)", async () => {
    const path = tablePath();
    const writer = new NotifyTableWriter(path, 4);
    const reader = new NotifyTableReader(path);
    const wakes = counter();
    const waiter = new NotifyWaiter(reader, wakes.onWake);
    waiter.setSlots([2]);
    reader.close();
    writer.post(2, 5n);
    await wakeUntil(wakes, () => wakes.count >= 1);
    waiter.close();
    writer.close();
  });
});

describe.skipIf(!linux)("in worker threads", () => {
  it("loads in two workers at once, each watching and woken on its own, and cleans up when they end", async () => {
    const { Worker } = await import("node:worker_threads");
    const path = tablePath();
    const writer = new (native.NotifyTableWriter!)(path, 4);
    const addon = nativeAddonPath(); // the build under test ($XPCBUS_NATIVE_ADDON under test:sanitize)
    const source = `
      const { parentPort, workerData } = require("node:worker_threads");
      const native = require(workerData.addon);
      const reader = new native.NotifyTableReader(workerData.path);
      // A waiter does not keep its thread alive by itself (as in the SDK, the
      // broker connection does): this timer stands in for it.
      const alive = setTimeout(() => {}, 10000);
      const waiter = new native.NotifyWaiter(reader, () => {
        parentPort.postMessage({ state: String(reader.state(workerData.slot)) });
        waiter.close();
        reader.close();
        clearTimeout(alive);
      });
      waiter.setSlots([workerData.slot]);
      parentPort.postMessage("ready");
    `;
    const run = (slot: number): { ready: Promise<void>; woken: Promise<string>; exited: Promise<number> } => {
      const worker = new Worker(source, { eval: true, workerData: { addon, path, slot } });
      const ready = new Promise<void>((r) => worker.on("message", (m) => m === "ready" && r()));
      const woken = new Promise<string>((r) => worker.on("message", (m: unknown) => typeof m === "object" && r((m as { state: string }).state)));
      const exited = new Promise<number>((r) => worker.on("exit", r));
      return { ready, woken, exited };
    };
    const a = run(1);
    const b = run(2);
    await Promise.all([a.ready, b.ready]);
    writer.post(1, 11n);
    writer.post(2, 22n);
    expect(await a.woken).toBe("11");
    expect(await b.woken).toBe("22");
    // Each worker ends on its own once its waiter and reader are closed.
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    writer.close();
  });

  it("survives wake-ups that arrive while a worker is exiting", async () => {
    const { Worker } = await import("node:worker_threads");
    const path = tablePath();
    const writer = new (native.NotifyTableWriter!)(path, 2);
    const addon = nativeAddonPath(); // the build under test ($XPCBUS_NATIVE_ADDON under test:sanitize)
    for (let round = 0; round < 5; round++) {
      // Nothing keeps this worker alive: it exits while posts keep arriving.
      const worker = new Worker(
        `const { parentPort, workerData } = require("node:worker_threads");
         const native = require(workerData.addon);
         const reader = new native.NotifyTableReader(workerData.path);
         const waiter = new native.NotifyWaiter(reader, () => {});
         waiter.setSlots([0]);
         parentPort.postMessage("ready");`,
        { eval: true, workerData: { addon, path } },
      );
      // Listen for the exit before awaiting "ready": a worker that ends at
      // once has its "message" and "exit" emitted in one go.
      const exited = new Promise<number>((r) => worker.once("exit", r));
      let done = false;
      void exited.then(() => (done = true));
      await new Promise((r) => worker.once("message", r));
      while (!done) {
        writer.post(0, BigInt(round));
        await new Promise((r) => setImmediate(r));
      }
      expect(await exited).toBe(0);
    }
    writer.close();
  });
});
