// The Linux notify center's native half where it used to break: environment
// teardown with several waiters, threads that cannot be created, JS re-entering
// setSlots, a stop racing a per-slot FUTEX_WAIT, futex_waitv refused by a
// seccomp filter, and a FIFO in the table's place. Each case runs in a child
// process, because a failure here is an abort, a hang or a spinning thread,
// not an exception; `npm run test:sanitize` runs the same under ASan/UBSan.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const linux = process.platform === "linux";
const dir = mkdtempSync(join(tmpdir(), "xpcbus-native-faults-"));
// Some children run as another uid (setpriv): they write their tables here too.
chmodSync(dir, 0o777);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** The addon the child processes load: the sanitized build when test:sanitize says so. */
const ADDON = process.env["XPCBUS_NATIVE_ADDON"] ?? join(import.meta.dirname, "build", "Release", "xpcbus_native.node");
let n = 0;

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `script` (CommonJS, `native` and `dir` in scope) in a child node, behind `prefix` (e.g. setpriv), killed after `timeoutMs`. */
function runChild(script: string, options: { timeoutMs?: number; prefix?: string[] } = {}): Promise<Outcome> {
  const prelude = `const native = require(${JSON.stringify(ADDON)}); const dir = ${JSON.stringify(dir)}; const id = ${++n};\n`;
  const prefix = options.prefix ?? [];
  const argv = [...prefix, process.execPath, "-e", prelude + script];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 20_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function expectClean(out: Outcome, last: string): void {
  expect(out.timedOut, `hung; stderr: ${out.stderr}`).toBe(false);
  expect({ code: out.code, signal: out.signal }, out.stderr).toEqual({ code: 0, signal: null });
  expect(out.stdout.trim().split("\n").at(-1)).toBe(last);
}

describe.skipIf(!linux)("notify native half under faults", () => {
  it("tears down Workers with several open waiters, terminated or ending, and a main thread exiting with waiters open", async () => {
    const out = await runChild(`
      const { Worker } = require("node:worker_threads");
      const path = dir + "/teardown-" + id + ".notify";
      const writer = new native.NotifyTableWriter(path, 8);
      const body = (keepAlive) => \`
        const native = require(\${JSON.stringify(${JSON.stringify(ADDON)})});
        const { parentPort, workerData } = require("node:worker_threads");
        const waiters = [];
        for (let i = 0; i < 3; i++) {
          const reader = new native.NotifyTableReader(workerData.path);
          const waiter = new native.NotifyWaiter(reader, () => {}, { perSlot: i === 2 });
          waiter.setSlots([0, 1 + i]);
          waiters.push(waiter);
        }
        \${keepAlive ? "setInterval(() => {}, 1000);" : ""}
        parentPort.postMessage("ready");\`;
      (async () => {
        for (let round = 0; round < 12; round++) {
          const terminate = round % 2 === 0;
          const worker = new Worker(body(terminate), { eval: true, workerData: { path } });
          // The exit listener first: a worker that ends at once emits "message" and "exit" in one go.
          let exited = false;
          const done = new Promise((r) => worker.once("exit", (code) => { exited = true; r(code); }));
          await new Promise((r) => worker.once("message", r));
          // Posts keep waking the waiters while the worker goes away.
          const poster = setInterval(() => { for (let s = 0; s < 4; s++) writer.post(s, BigInt(round)); }, 0);
          if (terminate) { await new Promise((r) => setTimeout(r, 5)); await worker.terminate(); }
          await done;
          clearInterval(poster);
        }
        // The main thread exits naturally with two waiters open and posts in flight.
        for (let i = 0; i < 2; i++) {
          const w = new native.NotifyWaiter(new native.NotifyTableReader(path), () => {});
          w.setSlots([0, 5]);
        }
        for (let i = 0; i < 100; i++) writer.post(0, BigInt(i));
        console.log("done");
      })();
    `);
    expectClean(out, "done");
  }, 30_000);

  it("throws a JS error, not std::terminate, when a waiter thread cannot be created", async () => {
    // RLIMIT_NPROC binds a non-root user: uid 65534 with room for node's own threads and a few more.
    if (spawnSync("setpriv", ["--version"]).status !== 0 || spawnSync("prlimit", ["--version"]).status !== 0) return;
    const out = await runChild(
      `
      const path = dir + "/nproc-" + id + ".notify";
      const writer = new native.NotifyTableWriter(path, 4096);
      const waiter = new native.NotifyWaiter(new native.NotifyTableReader(path), () => {}, { perSlot: true });
      try {
        waiter.setSlots(Array.from({ length: 4000 }, (_, i) => i));
        console.log("no limit hit");
      } catch (error) {
        console.log("threw: " + error.message);
        // All or nothing, and still usable.
        waiter.setSlots([1]);
        writer.post(1, 1n);
      }
      waiter.close();
      writer.close();
      console.log("done");
    `,
      { prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "prlimit", "--nproc=64"] },
    );
    expectClean(out, "done");
    expect(out.stdout).toMatch(/threw: cannot start a notify waiter thread \(4000 slots\): Resource temporarily unavailable/);
  });

  it("survives a slot array whose getter closes the waiter, throws, or calls setSlots again", async () => {
    const out = await runChild(`
      const path = dir + "/getter-" + id + ".notify";
      const writer = new native.NotifyTableWriter(path, 8);
      const reader = new native.NotifyTableReader(path);
      const closing = new native.NotifyWaiter(reader, () => {});
      const slots = [1, 2];
      Object.defineProperty(slots, 1, { get() { closing.close(); return 2; } });
      try { closing.setSlots(slots); } catch (e) { console.log(e.message); }
      const throwing = new native.NotifyWaiter(reader, () => {});
      const bad = [1];
      Object.defineProperty(bad, 0, { get() { throw new Error("getter says no"); } });
      try { throwing.setSlots(bad); } catch (e) { console.log(e.message); }
      const again = [3];
      Object.defineProperty(again, 0, { get() { throwing.setSlots([4]); return 3; } });
      throwing.setSlots(again);
      const opts = {};
      Object.defineProperty(opts, "perSlot", { get() { throw new Error("options getter says no"); } });
      try { new native.NotifyWaiter(reader, () => {}, opts); } catch (e) { console.log(e.message); }
      throwing.close();
      reader.close();
      writer.close();
      console.log("done");
    `);
    expectClean(out, "done");
    expect(out.stdout).toMatch(/closed while its slots were read/);
    expect(out.stdout).toMatch(/getter says no/);
    expect(out.stdout).toMatch(/options getter says no/);
  });

  it("never hangs close() in per-slot mode, whatever the timing of the stop (100,000 watch changes)", async () => {
    const out = await runChild(
      `
      const path = dir + "/perslot-" + id + ".notify";
      const writer = new native.NotifyTableWriter(path, 4);
      const reader = new native.NotifyTableReader(path);
      const waiter = new native.NotifyWaiter(reader, () => {}, { perSlot: true });
      for (let i = 0; i < 100000; i++) {
        waiter.setSlots([i % 4]);
        waiter.setSlots([]);
      }
      waiter.close();
      console.log("done");
    `,
      { timeoutMs: 40_000 },
    );
    expectClean(out, "done");
  }, 45_000);

  it("falls back to one thread per slot, without spinning, when a seccomp filter refuses futex_waitv", async () => {
    const cc = spawnSync("cc", ["--version"]);
    if (cc.status !== 0) return;
    const launcher = join(dir, "deny-futex-waitv");
    const built = spawnSync("cc", ["-O2", "-o", launcher, join(import.meta.dirname, "test-support", "deny-futex-waitv.c")], { encoding: "utf8" });
    expect(built.status, built.stderr).toBe(0);
    const out = await runChild(
      `
      const path = dir + "/seccomp-" + id + ".notify";
      const writer = new native.NotifyTableWriter(path, 4);
      const reader = new native.NotifyTableReader(path);
      let woken = 0;
      const waiter = new native.NotifyWaiter(reader, () => { woken++; });
      console.log("method " + waiter.method);
      waiter.setSlots([1, 2]);
      const before = process.cpuUsage();
      setTimeout(() => {
        const used = process.cpuUsage(before);
        console.log("idle cpu ms " + Math.round((used.user + used.system) / 1000));
        writer.post(2, 5n);
        const check = setInterval(() => {
          if (woken === 0) return;
          clearInterval(check);
          waiter.close(); reader.close(); writer.close();
          console.log("done");
        }, 5);
      }, 1000);
    `,
      { prefix: [launcher] },
    );
    expectClean(out, "done");
    expect(out.stdout).toMatch(/method futex_wait\n/);
    const idle = Number(/idle cpu ms (\d+)/.exec(out.stdout)?.[1]);
    expect(idle).toBeLessThan(300);
  });

  it("refuses a FIFO in the table's place at once instead of blocking", async () => {
    const fifo = join(dir, "fifo.notify");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const out = await runChild(
      `
      try { new native.NotifyTableReader(${JSON.stringify(fifo)}); console.log("opened"); }
      catch (e) { console.log(e.message); }
      console.log("done");
    `,
      { timeoutMs: 5_000 },
    );
    expectClean(out, "done");
    expect(out.stdout).toMatch(/is not a regular file/);
  });
});
