// Darwin-style notifications through the real daemon: many watcher
// processes, idle cost, coalescing, notify-then-fetch, the table's
// protection, reserved names, and a broker restart.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { Client } from "../client-sdk/index.js";
import { cleanup, runCli, spawnClient, startBroker, tempDir, type BrokerProcess, type ClientProcess } from "./test-support/harness.js";

const linux = process.platform === "linux";
afterEach(cleanup);

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
async function client(socket: string): Promise<Client> {
  const c = await connect({ socket, name: "notify-test" });
  clients.push(c);
  return c;
}

/** A watcher process: reports {"event":"wake", seq, value?} per wake-up. */
function watcher(socket: string, subject: string, options: { fetch?: boolean; name?: string } = {}): ClientProcess {
  return spawnClient(
    socket,
    `
const client = await connect({ socket, name: ${JSON.stringify(options.name ?? "watcher")} });
client.on("reconnected", () => emit("reconnected"));
const watch = await client.watch(${JSON.stringify(subject)}, { fetch: ${options.fetch === true} });
emit("ready", { name: watch.name, state: String(watch.lastState) });
for await (const e of watch) emit("wake", { seq: e.seq, value: e.value === undefined ? null : e.value, valueSeq: e.valueSeq ?? null });
`,
  );
}

/** Compiles docs/examples/notify-watch.c as its comment says (warnings are errors); returns the binary. */
function compileNotifyWatch(): string {
  const source = join(import.meta.dirname, "..", "docs", "examples", "notify-watch.c");
  const binary = join(tempDir(), "notify-watch");
  const cc = spawnSync("cc", ["-O2", "-Wall", "-Werror", "-o", binary, source]);
  expect(cc.status, cc.stderr.toString()).toBe(0);
  return binary;
}

/** utime + stime of a process, in clock ticks, from /proc/<pid>/stat. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

describe.skipIf(!linux)("notifications on Linux (shared table + futex)", () => {
  it("one publish wakes 20 separate watcher processes, and each sees the new seq", async () => {
    const broker = await startBroker();
    const watchers = Array.from({ length: 20 }, () => watcher(broker.socket, "fan.out"));
    await Promise.all(watchers.map((w) => w.event("ready")));
    const publisher = await client(broker.socket);
    const { seq } = await publisher.publish("fan.out", "x");
    const wakes = await Promise.all(watchers.map((w) => w.event("wake", (e) => e["seq"] === seq)));
    expect(wakes).toHaveLength(20);
  });

  it("costs an idle watcher no frames and no CPU", async () => {
    const broker = await startBroker();
    const w = watcher(broker.socket, "idle.subject", { name: "idle-watcher" });
    await w.event("ready");
    const observer = await client(broker.socket);
    const framesOf = async (): Promise<number> => (await observer.status()).peers.find((p) => p.name === "idle-watcher")!.msgsIn;
    // Let the process finish starting up (JIT, GC of start-up garbage) before measuring.
    const publisher = await client(broker.socket);
    const { seq } = await publisher.publish("idle.subject", 1);
    await w.event("wake", (e) => e["seq"] === seq);
    const framesBefore = await framesOf();
    const ticksBefore = cpuTicks(w.pid);
    await new Promise((r) => setTimeout(r, 5000)); // the idle window under test, not a wait for an event
    const ticksAfter = cpuTicks(w.pid);
    expect(await framesOf()).toBe(framesBefore);
    // One tick (10 ms) allowed: a V8 or libuv housekeeping timer may land in the window.
    expect(ticksAfter - ticksBefore).toBeLessThanOrEqual(1);
  }, 20_000);

  it("coalesces 1000 publishes made while the watcher's JS thread is busy, and the last seq is observed", async () => {
    const broker = await startBroker();
    const w = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
const watch = await client.watch("burst", { callback: (e) => emit("wake", { seq: e.seq }) });
emit("ready");
for await (const line of commands) {
  if (line !== "block") continue;
  emit("blocking");
  const until = Date.now() + 1500;
  while (Date.now() < until) {} // the JS thread is busy; the waiter thread is not
  emit("unblocked");
}
`,
    );
    await w.event("ready");
    w.send("block");
    await w.event("blocking");
    const publisher = await client(broker.socket);
    let last = 0;
    for (let i = 0; i < 1000; i++) last = (await publisher.publish("burst", i)).seq!;
    await w.event("unblocked");
    await w.event("wake", (e) => e["seq"] === last);
    const count = w.events("wake").length;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThan(10);
  });

  it("a watch with fetch gets publishes as events, with the value when it was retained, and nothing for the past", async () => {
    const broker = await startBroker();
    const publisher = await client(broker.socket);
    const past = (await publisher.publish("cfg.theme", "before", { retain: true })).seq!;
    const w = watcher(broker.socket, "cfg.theme", { fetch: true });
    await w.event("ready");
    const themes = ["dark", "light", "solarized", "dark"];
    const seqs: number[] = [];
    for (const theme of themes) seqs.push((await publisher.publish("cfg.theme", theme, { retain: true })).seq!);
    const plain = (await publisher.publish("cfg.theme", "not kept")).seq!;
    await w.event("wake", (e) => e["seq"] === plain);
    // The watcher iterates, so events it was too busy to take coalesce into
    // the newest (as every watch's do); each one it gets is right.
    const wakes = w.events("wake");
    const order = wakes.map((e) => e["seq"] as number);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order).size).toBe(order.length);
    expect(order[0]).toBeGreaterThan(past);
    for (const wake of wakes) {
      const index = seqs.indexOf(wake["seq"] as number);
      if (index >= 0) expect([wake["value"], wake["valueSeq"]]).toEqual([themes[index], seqs[index]]);
      // A publish without retain changed no retained value: an event without one.
      else expect(wake).toMatchObject({ seq: plain, value: null, valueSeq: null });
    }
  });

  it("a watch with fetch and a callback gets every publish", async () => {
    const broker = await startBroker();
    const publisher = await client(broker.socket);
    const watching = await client(broker.socket);
    const seen: Array<[number, unknown]> = [];
    await watching.watch("cfg.count", { fetch: true, callback: (e) => seen.push([e.seq, e.value ?? null]) });
    const sent: Array<[number, unknown]> = [];
    for (let i = 0; i < 50; i++) sent.push([(await publisher.publish("cfg.count", `v${i}`, { retain: i % 2 === 0 })).seq!, i % 2 === 0 ? `v${i}` : null]);
    await watching.flush();
    await publisher.flush();
    while (seen.length < sent.length) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toEqual(sent);
  });

  it("a watch with fetch catches up after a broker restart with one event for the value retained meanwhile", async () => {
    const socket = join(tempDir(), "b.sock");
    let broker: BrokerProcess = await startBroker({ socket });
    const w = watcher(broker.socket, "cfg.mode", { fetch: true });
    await w.event("ready");
    const first = await client(broker.socket);
    const before = (await first.publish("cfg.mode", "one", { retain: true })).seq!;
    await w.event("wake", (e) => e["seq"] === before);
    await broker.kill("SIGKILL");
    broker = await startBroker({ socket });
    // Published on the new broker before or after the watcher is back: one event either way (live, or the catch-up get).
    const second = await client(broker.socket);
    const after = (await second.publish("cfg.mode", "two", { retain: true })).seq!;
    await w.event("wake", (e) => e["seq"] === after);
    await second.flush();
    await w.event("reconnected");
    const ping = await second.publish("cfg.mode", "three", { retain: true });
    await w.event("wake", (e) => e["seq"] === ping.seq);
    expect(w.events("wake").map((e) => e["value"])).toEqual(["one", "two", "three"]);
  });

  it("maps the table read-only for clients; its file refuses readers and writers of other uids", async () => {
    // A traversable directory, so the file's own mode is what is tested.
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const broker = await startBroker({ socket: join(dir, "b.sock") });
    const c = await client(broker.socket);
    const table = `${broker.socket}.notify`;
    // The broker's own uid's table: nobody else may even read it (docs/SECURITY.md, "The notify table").
    expect(statSync(table).mode & 0o777).toBe(0o600);
    expect(statSync(table).uid).toBe(process.getuid!());
    const { loadNative } = await import("../native/index.js");
    const reader = new (loadNative().NotifyTableReader!)(table);
    expect(reader.writableErrno()).toBe(13);
    reader.close();
    await c.watch("some.subject");
    const canDropPrivileges = process.getuid!() === 0 && existsSync("/usr/bin/setpriv");
    if (canDropPrivileges) {
      const asNobody = (flags: string): string =>
        spawnSync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e",
          `try { require("fs").openSync(${JSON.stringify(table)}, "${flags}"); console.log("opened") } catch (e) { console.log(e.code) }`])
          .stdout.toString()
          .trim();
      expect(asNobody("r")).toBe("EACCES");
      expect(asNobody("r+")).toBe("EACCES");
    }
  });

  it("refuses to post reserved names, with a clear error, and posts others", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket);
    for (const name of ["com.apple.system.config", "self.thing", "user.uid.4242.x", "io.xpcbus.broker.any.subject"]) {
      await expect(c.post(name)).rejects.toMatchObject({ code: "reserved_name", message: expect.stringMatching(/.+/) });
    }
    await c.post(`user.uid.${process.getuid!()}.mine`, 3n);
    expect(await c.notifyState(`user.uid.${process.getuid!()}.mine`)).toBe(3n);
    await expect(c.post("has space")).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(c.watch("a.*")).rejects.toThrow(/concrete subject/);
    const cli = await runCli(["notify", "post", "com.apple.x", "--socket", broker.socket]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/reserved_name/);
  });

  it("after a broker restart, watchers re-register by themselves, the next post wakes them, and seq never goes back", async () => {
    const socket = join(tempDir(), "b.sock");
    let broker: BrokerProcess = await startBroker({ socket });
    const w = watcher(socket, "restart.me");
    await w.event("ready");
    const p1 = await runCli(["pub", "restart.me", "one", "--socket", socket]);
    expect(p1.code).toBe(0);
    const first = await w.event("wake");
    await broker.kill("SIGKILL");
    broker = await startBroker({ socket });
    await w.event("reconnected");
    // Re-registration is visible in the new broker's status as a peer with a watch; wait for its table slot by posting until woken.
    let second: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && second === undefined; i++) {
      await runCli(["pub", "restart.me", `two-${i}`, "--socket", socket]);
      second = await w.event("wake", (e) => (e["seq"] as number) > (first["seq"] as number), 300).catch(() => undefined);
    }
    expect(second).toBeDefined();
    expect(second!["seq"] as number).toBeGreaterThan(first["seq"] as number);
  });

  it("notify wait / post / state / check from the CLI", async () => {
    const broker = await startBroker();
    const s = ["--socket", broker.socket];
    const { spawnCli } = await import("./test-support/harness.js");
    const wait = spawnCli(["notify", "wait", "app.reload", "--timeout", "10000", ...s]);
    await wait.stderr.waitFor((l) => l.includes("waiting for"));
    expect((await runCli(["notify", "post", "app.reload", "--state", "18446744073709551615", ...s])).code).toBe(0);
    expect((await wait.exited).code).toBe(0);
    expect(wait.stdout.lines).toEqual(["18446744073709551615"]);
    expect((await runCli(["notify", "state", "app.reload", ...s])).stdout).toBe("18446744073709551615\n");
    expect((await runCli(["notify", "check", "app.reload", ...s])).stdout).toBe("1 18446744073709551615\n");
    const timeout = await runCli(["notify", "wait", "never.posted", "--timeout", "200", ...s]);
    expect(timeout.code).toBe(1);
    expect(timeout.stderr).toMatch(/not posted within 200 ms/);
    expect((await runCli(["notify", "post", "x", "--state", "-1", ...s])).code).toBe(2);
  });

  it("a C program watches a subject through the documented table layout, without the SDK", async () => {
    const binary = compileNotifyWatch();
    const broker = await startBroker();
    // The C program needs a slot: a client registers the subject's name (as the SDK would) and stays connected.
    const c = await client(broker.socket);
    await c.watch("c.watched");
    const { spawn } = await import("node:child_process");
    const { LineReader } = await import("./test-support/harness.js");
    const child = spawn(binary, [`${broker.socket}.notify`, `${c.notifyPrefix}.c.watched`], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const out = new LineReader(child.stdout);
      await out.waitFor((l) => l.startsWith("watching"));
      const { seq } = await c.publish("c.watched", "hi");
      const line = await out.waitFor((l) => l.startsWith("state "));
      expect(line).toBe(`state ${seq}`);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("the C program refuses a truncated or corrupt table, a FIFO and a directory with an error, not a crash or a hang", () => {
    const binary = compileNotifyWatch();
    const dir = tempDir();
    const table = (name: string, fields: { slotCount: number; headerBytes?: number }, fileBytes: number): string => {
      const bytes = Buffer.alloc(fileBytes);
      const header = Buffer.alloc(64);
      header.write("XPCBNTF1", 0, "latin1");
      // Native byte order (docs/PROTOCOL.md 9.9.4).
      const u32 = (value: number, offset: number): number =>
        endianness() === "LE" ? header.writeUInt32LE(value, offset) : header.writeUInt32BE(value, offset);
      u32(1, 8); // version
      u32(fields.slotCount, 12);
      u32(16, 16); // slot_bytes
      u32(fields.headerBytes ?? 64, 20);
      header.copy(bytes, 0, 0, Math.min(64, fileBytes));
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    };
    const fifo = join(dir, "fifo");
    const mkfifo = spawnSync("mkfifo", [fifo]);
    expect(mkfifo.status, mkfifo.stderr.toString()).toBe(0);
    const cases: Array<[string, RegExp]> = [
      // The header claims 1,000,000 slots; the file holds 4: scanning them used to read past the mapping.
      [table("few-slots", { slotCount: 1_000_000 }, 64 + 16 * 4), /is truncated: its header says 1000000 slots \(16000064 bytes\), the file has 128 bytes/],
      // Slots said to start 4 GiB into a 80-byte file.
      [table("far-header", { slotCount: 1, headerBytes: 0xffff_fff8 }, 64 + 16), /is truncated/],
      [table("misaligned-header", { slotCount: 1, headerBytes: 65 }, 65 + 16), /is not an xpcbus notify table v1/],
      [table("short", { slotCount: 0 }, 10), /is not an xpcbus notify table v1/],
      [table("empty", { slotCount: 0 }, 0), /is not an xpcbus notify table v1/],
      // Opening a FIFO for reading used to wait for a writer forever.
      [fifo, /is not a regular file/],
      [dir, /is not a regular file/],
    ];
    for (const [path, message] of cases) {
      // The timeout only turns a hang into a failure (signal SIGTERM); a clean refusal takes milliseconds.
      const run = spawnSync(binary, [path, "some.name"], { timeout: 10_000 });
      expect({ path, signal: run.signal, status: run.status }).toEqual({ path, signal: null, status: 1 });
      expect(run.stderr.toString()).toMatch(message);
    }
  });
});

describe.skipIf(!linux)("table notifier (broker side, in process)", () => {
  it("keeps a released slot for its name, reuses the least recently released one, and reports a full table", async () => {
    const { TableNotifier } = await import("./notify/table-notifier.js");
    const { loadNative } = await import("../native/index.js");
    const path = join(tempDir(), "t.notify");
    const notifier = new TableNotifier({ path, prefix: "p", slots: 2, maxStates: 10 });
    const reader = new (loadNative().NotifyTableReader!)(path);
    const a = notifier.watch("a", 5n);
    const b = notifier.watch("b", 0n);
    expect("slot" in a && "slot" in b && a.slot !== b.slot).toBe(true);
    expect(notifier.watch("c", 0n)).toMatchObject({ code: "notify_table_full" });
    notifier.post("a", 9n);
    notifier.unwatch("a");
    // Released but kept: watching again finds the same slot and state.
    expect(notifier.watch("a", 0n)).toMatchObject({ slot: (a as { slot: number }).slot, state: 9n });
    notifier.unwatch("a");
    notifier.unwatch("b");
    const c = notifier.watch("c", 1n) as { slot: number; hash: number };
    expect(c.slot).toBe((a as { slot: number }).slot); // "a" was released first
    expect(reader.nameHash(c.slot)).toBe(c.hash);
    // The evicted name's state is remembered for its next watcher.
    expect(notifier.state("a")).toBe(9n);
    notifier.post("z", 4n); // nobody watches z: only its state is kept
    expect(notifier.state("z")).toBe(4n);
    // A publish to a subject nobody watches touches no slot.
    const before = [0, 1].map((s) => reader.generation(s));
    notifier.published("nobody.watches", 77);
    expect([0, 1].map((s) => reader.generation(s))).toEqual(before);
    reader.close();
    notifier.close();
    expect(existsSync(path)).toBe(false);
  });
});
