// Stress of the Linux notify path as applications use it: the SDK in real
// client processes, a real daemon, and the native waiter under them. Worker
// threads with several clients each are terminated while wakes are in flight
// (some with their JS thread busy, so a wake is queued and never runs);
// watchers are created and closed in several threads at once; the broker is
// killed with SIGKILL and restarted under watching clients; client processes
// exit while their waiters sleep. Every live watcher must see the final seq,
// and the long-lived client process must end with the fds, threads and
// mappings it started with, then exit 0.
//
// Over 400 lines on purpose: the client programs each scenario runs in its
// own processes and workers are written out inline, next to the checks that
// read their output, so each scenario reads as one story.
//
// Both waiter modes: futex_waitv, and one thread per slot (FUTEX_WAIT), forced
// through $XPCBUS_NOTIFY_PER_SLOT. `npm test` runs this file with the normal
// build; `npm run test:sanitize` (native/test-sanitize.sh) with the addon
// built with ASan and UBSan, where a sanitizer report or a leak at exit makes
// the process fail. A crash is reported with the process's stderr; a hang
// (a wait that never ends) with the threads of the stuck process.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { Client } from "../client-sdk/index.js";
import { cleanup, SDK, startBroker, tempDir, type BrokerProcess, type Exit } from "../daemon/test-support/harness.js";

const linux = process.platform === "linux";
/** Under test:sanitize every process runs 2-5x slower: the same work gets more time, never less work. */
const sanitized = /libasan/.test(process.env["LD_PRELOAD"] ?? "");
const SLOW = sanitized ? 5 : 1;
/** How long one step (an event awaited from a process) may take before it counts as a hang. */
const STEP_MS = 15_000 * SLOW;

const SUBJECTS = ["stress.a", "stress.b", "stress.c", "stress.d"];
/** What the issue asks for: enough posts that terminations land mid-wake many times over. */
const UPDATES = 10_000;

afterEach(cleanup);

// ---------------------------------------------------------------------------
// The scripts the client processes and their worker threads run (ES modules,
// written to a temporary directory; they import the built SDK).

/** Watchers and the wait for "every watcher saw the final seq", shared by all scripts. */
const WATCHERS = `
const watchers = new Set();
const targets = new Set();
/** Back quickly after a broker restart: the test waits for it. */
const RECONNECT = { initialDelayMs: 10, maxDelayMs: 100 };
/** A watch on subject through client, recording the last seq it was woken with. */
async function addWatcher(client, subject, label) {
  const w = { label, subject, client, last: 0, wakes: 0, watch: undefined };
  w.watch = await client.watch(subject, { callback: (e) => { w.last = e.seq; w.wakes++; checkTarget(); } });
  if (w.wakes === 0) w.last = Number(w.watch.lastState);
  watchers.add(w);
  checkTarget();
  return w;
}
async function dropWatcher(w) {
  watchers.delete(w);
  await w.watch.close();
}
/** The watchers whose last seq is older than the final one of their subject. */
function behind(finals) {
  return [...watchers]
    .filter((w) => finals[w.subject] !== undefined && w.last < finals[w.subject])
    .map((w) => ({ label: w.label, subject: w.subject, last: w.last, final: finals[w.subject], wakes: w.wakes }));
}
function checkTarget() {
  for (const t of targets) {
    if (behind(t.finals).length > 0) continue;
    targets.delete(t);
    t.resolve();
  }
}
/** Resolves once every watcher has seen its subject's final seq (checked on each wake, not by polling). */
function caughtUp(finals) {
  return new Promise((resolve) => {
    targets.add({ finals, resolve });
    checkTarget();
  });
}
const pick = (list) => list[Math.floor(Math.random() * list.length)];
`;

/**
 * A worker thread: `clients` connections, each watching two subjects; with
 * `churn`, a loop that keeps creating and closing watchers (each one moves the
 * native waiter's slot set). Answers the parent's messages.
 */
const WORKER = `
import { parentPort, workerData, threadId } from "node:worker_threads";
import { connect } from ${JSON.stringify(SDK)};
${WATCHERS}
const { socket, clients: count, subjects } = workerData;
const clients = [];
let churning = false;
let churned = Promise.resolve();
let cycles = 0;
const cycleWaiters = [];
const fail = (error) => parentPort.postMessage({ type: "error", message: String(error && error.stack || error) });

function startChurn() {
  if (churning) return;
  churning = true;
  churned = (async () => {
    let n = 0;
    while (churning) {
      // Three at once on one client: their replies arrive together, so the
      // waiter's slot set changes several times within microseconds, while
      // the threads of the previous set are still starting.
      const client = pick(clients);
      const label = "w" + threadId + ".churn" + n++;
      await Promise.all([0, 1, 2].map(() => addWatcher(client, pick(subjects), label)));
      const mine = [...watchers].filter((w) => w.client === client);
      await Promise.all(mine.sort(() => Math.random() - 0.5).slice(0, 3).map(dropWatcher));
      cycles++;
      for (const w of cycleWaiters.filter((x) => cycles >= x.until)) {
        cycleWaiters.splice(cycleWaiters.indexOf(w), 1);
        w.resolve();
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  })().catch(fail);
}

async function stopChurn() {
  churning = false;
  await churned;
}

parentPort.on("message", async (m) => {
  try {
    if (m.type === "stop-churn") {
      await stopChurn();
      parentPort.postMessage({ type: "stopped" });
    } else if (m.type === "churn") {
      startChurn();
    } else if (m.type === "cycles") {
      await new Promise((resolve) => cycleWaiters.push({ until: cycles + m.n, resolve }));
      parentPort.postMessage({ type: "cycled" });
    } else if (m.type === "expect") {
      await caughtUp(m.finals);
      parentPort.postMessage({ type: "caught-up", id: m.id });
    } else if (m.type === "report") {
      parentPort.postMessage({ type: "report", behind: behind(m.finals), watchers: watchers.size });
    } else if (m.type === "spin") {
      // The JS thread is busy: the waiters' wakes queue up behind it. The
      // parent terminates the worker meanwhile.
      parentPort.postMessage({ type: "spinning" });
      const until = Date.now() + m.ms;
      while (Date.now() < until) {}
    } else if (m.type === "close") {
      await stopChurn();
      for (const client of clients) await client.close();
      parentPort.postMessage({ type: "closed" });
      // Nothing else may keep this thread alive now: it must end by itself.
      parentPort.close();
    }
  } catch (error) {
    fail(error);
  }
});

try {
  for (let i = 0; i < count; i++) {
    const client = await connect({ socket, name: "w" + threadId + "." + i, reconnect: RECONNECT });
    clients.push(client);
    for (let k = 0; k < 2; k++) await addWatcher(client, subjects[(i + k + threadId) % subjects.length], "w" + threadId + ".c" + i);
  }
  parentPort.postMessage({ type: "ready" });
  if (workerData.churn) startChurn();
} catch (error) {
  fail(error);
}
`;

/** The main thread's half of the scripts: workers, JSON events, resources of this process. */
const PROCESS_COMMON = `
import { Worker } from "node:worker_threads";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect } from ${JSON.stringify(SDK)};
${WATCHERS}
const config = JSON.parse(process.argv[2]);
const { socket, subjects, slow } = config;
const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\\n");
/**
 * A driver-side check failed: say what, and stop. The process stays a while
 * (exit status 1 later), so that the test can look at its threads when the
 * failure was a hang; the test kills it first.
 */
class FailedCheck extends Error {}
let failing = false;
function report(message, details) {
  if (failing) return;
  failing = true;
  emit("failed", { message, details });
  setTimeout(() => process.exit(1), 60000 * slow);
}
function fail(message, details = {}) {
  report(message, details);
  throw new FailedCheck(message);
}
// A rejection at the top level of this module arrives here too (origin "unhandledRejection").
process.on("uncaughtException", (error, origin) => {
  if (!(error instanceof FailedCheck)) report(origin + ": " + (error && error.stack || error), {});
});

/** Rejects with "<what> did not happen within <ms> ms" (a hang) unless promise settles first. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(what + " did not happen within " + ms + " ms (hang)")), ms); }),
  ]).finally(() => clearTimeout(timer));
}
const STEP_MS = 10000 * slow;

/** A worker thread running worker.mjs; its messages, its exit, and requests to it. */
class WorkerThread {
  static count = 0;
  constructor(data) {
    this.id = ++WorkerThread.count;
    this.worker = new Worker(config.workerPath, { workerData: { socket, subjects, ...data } });
    this.messages = [];
    this.listeners = new Set();
    this.errors = [];
    this.worker.on("message", (m) => {
      if (m.type === "error") this.errors.push(m.message);
      this.messages.push(m);
      for (const l of [...this.listeners]) l(m);
    });
    this.worker.on("error", (e) => this.errors.push(String(e && e.stack || e)));
    this.exited = new Promise((resolve) => this.worker.on("exit", resolve));
    this.ready = this.next("ready");
  }
  /** The next message of type (or one already received, for "ready"); rejects if the worker ends first. */
  next(type, test = () => true) {
    const seen = type === "ready" ? this.messages.find((m) => m.type === type && test(m)) : undefined;
    if (seen) return Promise.resolve(seen);
    return within(new Promise((resolve, reject) => {
      const listener = (m) => {
        if (m.type === "error") { this.listeners.delete(listener); reject(new Error("worker " + this.id + " failed: " + m.message)); }
        if (m.type !== type || !test(m)) return;
        this.listeners.delete(listener);
        resolve(m);
      };
      this.listeners.add(listener);
      this.exited.then((code) => { this.listeners.delete(listener); reject(new Error("worker " + this.id + " exited (" + code + ") before " + type + ": " + this.errors.join("; "))); });
    }), STEP_MS, "worker " + this.id + "'s " + type);
  }
  request(message, reply, test) {
    const answer = this.next(reply, test);
    this.worker.postMessage(message);
    return answer;
  }
  /** worker.terminate(), which must end the thread (exit code 1) in time. */
  async terminate() {
    const code = await within(this.worker.terminate(), STEP_MS, "worker " + this.id + " ending after terminate()");
    if (this.errors.length > 0) fail("worker " + this.id + " reported errors", { errors: this.errors });
    return code;
  }
  /** Closes its clients; it must then end by itself with code 0. */
  async close() {
    await this.request({ type: "close" }, "closed");
    const code = await within(this.exited, STEP_MS, "worker " + this.id + " ending by itself after closing its clients");
    if (code !== 0 || this.errors.length > 0) fail("worker " + this.id + " ended with code " + code + " after closing its clients", { errors: this.errors });
  }
}

function resources() {
  return {
    fds: readdirSync("/proc/self/fd").length,
    threads: readdirSync("/proc/self/task").length,
    tables: readFileSync("/proc/self/maps", "utf8").split("\\n").filter((l) => l.endsWith(".notify")).length,
  };
}
function describeResources() {
  const read = (f) => { try { return f(); } catch (e) { return String(e.code); } };
  return {
    fds: readdirSync("/proc/self/fd").map((fd) => fd + " -> " + read(() => readlinkSync("/proc/self/fd/" + fd))),
    threads: readdirSync("/proc/self/task").map((t) => t + " " + read(() => readFileSync("/proc/self/task/" + t + "/comm", "utf8").trim())),
    tables: readFileSync("/proc/self/maps", "utf8").split("\\n").filter((l) => l.endsWith(".notify")),
  };
}
const same = (a, b) => a.fds === b.fds && a.threads === b.threads && a.tables === b.tables;
/**
 * After everything is closed: threads are joined and fds closed synchronously
 * by close() and terminate(), so this holds at once; the short re-check only
 * absorbs a thread the kernel has not finished reaping.
 */
async function backToBaseline(baseline) {
  const until = Date.now() + 2000 * slow;
  let now = resources();
  while (!same(now, baseline) && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    now = resources();
  }
  if (!same(now, baseline)) fail("fds, threads or table mappings not back to the baseline", { baseline, now, ...describeResources() });
  return now;
}

/**
 * Brings up everything that starts once per process (the SDK's modules, the
 * addon in the main thread and in a worker, libuv's threads), so that the
 * baseline taken after it is what a process that closed everything returns to.
 */
async function warmUp() {
  const client = await connect({ socket, name: "warm-up", reconnect: RECONNECT });
  await addWatcher(client, subjects[0], "warm-up");
  const { seq } = await client.publish(subjects[0], "warm-up");
  await within(caughtUp({ [subjects[0]]: seq }), STEP_MS, "the warm-up wake");
  for (const w of [...watchers]) await dropWatcher(w);
  await client.close();
  const worker = new WorkerThread({ clients: 1, churn: false });
  await worker.ready;
  await worker.close();
}

/** Every watcher, here and in the workers, sees finals (subject -> seq) within ms; else fail with who is behind. */
let expectId = 0;
async function everyoneSees(finals, ms, what, workers) {
  const id = ++expectId;
  try {
    await within(Promise.all([caughtUp(finals), ...workers.map((w) => w.request({ type: "expect", finals, id }, "caught-up", (m) => m.id === id))]), ms, what);
    return true;
  } catch (error) {
    const reports = [];
    for (const w of workers) {
      reports.push(await w.request({ type: "report", finals }, "report").then((r) => ({ worker: w.id, ...r }), (e) => ({ worker: w.id, error: String(e) })));
    }
    return { error: String(error), main: behind(finals), workers: reports };
  }
}
`;

/**
 * The long-lived client process of the "workers" and "restart" scenarios.
 * workers: 10,000 publishes while worker threads are retired one after
 * another (terminate(), terminate() while its JS thread is busy, or close),
 * then every live watcher must see the final seq. restart: watches across
 * broker restarts driven by the test through stdin (churn between restarts).
 */
const DRIVER = `
${PROCESS_COMMON}
import { createInterface } from "node:readline";

await warmUp();
const baseline = resources();
emit("baseline", baseline);

const mains = [];
for (let i = 0; i < 2; i++) {
  const client = await connect({ socket, name: "main." + i, reconnect: RECONNECT });
  mains.push(client);
  for (const subject of subjects) await addWatcher(client, subject, "main." + i);
}
// Only the waiters started since the baseline: one per client, or one per watched slot.
emit("waiters", { threads: resources().threads - baseline.threads, clients: mains.length, slots: mains.length * subjects.length });
const publisher = await connect({ socket, name: "publisher", reconnect: RECONNECT });
let live = [];
const startWorker = () => {
  const w = new WorkerThread({ clients: config.clientsPerWorker, churn: true });
  live.push(w);
  return w;
};
for (let i = 0; i < config.workers; i++) startWorker();
await within(Promise.all(live.map((w) => w.ready)), STEP_MS, "the first workers' readiness");
emit("ready", { workers: live.length });

const finals = {};
const record = (subject, seq) => { if (!(finals[subject] >= seq)) finals[subject] = seq; };
const retiredBy = { terminate: 0, "busy-terminate": 0, close: 0 };

/** Takes the oldest ready worker out of the live set and ends it one of three ways. */
async function retire(kind) {
  const w = live.find((x) => x.messages.some((m) => m.type === "ready")) ?? live[0];
  live = live.filter((x) => x !== w);
  await w.ready;
  if (kind === "close") {
    await w.close();
  } else {
    if (kind === "busy-terminate") {
      await w.request({ type: "spin", ms: 60000 }, "spinning");
      // A post it watches, seen by this thread's own watcher: the worker's
      // waiters woke at the same time and queued a call its JS thread cannot run.
      const subject = subjects[w.id % subjects.length];
      const { seq } = await publisher.publish(subject, "while busy");
      record(subject, seq);
      await within(caughtUp({ [subject]: seq }), STEP_MS, "the wake for the post made while worker " + w.id + " is busy");
    }
    await w.terminate();
  }
  retiredBy[kind]++;
}

async function workersScenario() {
  const kinds = ["terminate", "busy-terminate", "close"];
  const every = Math.ceil(config.updates / (config.retirements + 1));
  const retiring = [];
  let retired = 0;
  for (let sent = 0; sent < config.updates; ) {
    const batch = [];
    for (let k = 0; k < 50 && sent < config.updates; k++, sent++) {
      const subject = subjects[sent % subjects.length];
      batch.push(publisher.publish(subject, sent).then(({ seq }) => record(subject, seq)));
    }
    await Promise.all(batch);
    if (retired < config.retirements && sent >= every * (retired + 1)) {
      // Not awaited: the publishing goes on while the worker ends.
      retiring.push(retire(kinds[retired % kinds.length]));
      retired++;
      startWorker();
    }
  }
  emit("posted", { updates: config.updates });
  await within(Promise.all(retiring), STEP_MS, "the retirement of " + retired + " workers");
  await within(Promise.all(live.map((w) => w.ready)), STEP_MS, "the replacement workers' readiness");
  emit("retired", { ...retiredBy });
  // Nothing is posted now: a waiter thread that missed its stop would sleep
  // for good, and the close() joining it with it.
  await within(Promise.all(live.map((w) => w.request({ type: "cycles", n: config.quietCycles }, "cycled"))), STEP_MS, config.quietCycles + " watcher create/close cycles in every worker with nothing posted");
  emit("quiet-churned", { cycles: config.quietCycles });
  await finalCheck("after " + config.updates + " updates");
}

/** Stops the churn, posts one final update per subject, and every live watcher must see it. */
async function finalCheck(when) {
  await within(Promise.all(live.map((w) => w.request({ type: "stop-churn" }, "stopped"))), STEP_MS, "the workers stopping their churn");
  for (const subject of subjects) record(subject, (await publisher.publish(subject, "final")).seq);
  const result = await everyoneSees({ ...finals }, STEP_MS, "every live watcher seeing the final seq " + when, live);
  if (result !== true) fail("live watchers did not see the final seq " + when, result);
  emit("caught-up", { when, finals, watchers: watchers.size });
}

/** Publishes in the background (through restarts) until the returned stop() is called. */
function pump() {
  let stopping = false;
  let n = 0;
  const done = (async () => {
    while (!stopping) {
      const results = await Promise.allSettled(subjects.map((s) => publisher.publish(s, n++).then(({ seq }) => record(s, seq))));
      // Refused while the broker is down: pace the retries (an unpaced loop
      // of rejections would starve the event loop the reconnect needs).
      if (results.some((r) => r.status === "rejected")) await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return async () => {
    stopping = true;
    await done;
  };
}

/**
 * After a restart, re-registration is asynchronous: publish until every
 * watcher is registered again (it then sees each post), before the strict check.
 */
async function converge(round) {
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const subject of subjects) record(subject, (await publisher.publish(subject, "converge")).seq);
    if ((await everyoneSees({ ...finals }, 300 * slow, "convergence", live)) === true) return;
  }
  const result = await everyoneSees({ ...finals }, STEP_MS, "convergence", live);
  if (result !== true) fail("watchers never caught up after restart " + round, result);
}

async function teardown() {
  // Half the workers are terminated, half close and end by themselves.
  await within(Promise.all(live.map((w, i) => (i % 2 === 0 ? w.terminate() : w.close()))), STEP_MS, "the last workers ending");
  live = [];
  for (const client of mains) await client.close();
  await publisher.close();
  watchers.clear();
  const now = await backToBaseline(baseline);
  emit("done", { baseline, now });
}

if (config.scenario === "workers") {
  await workersScenario();
  await teardown();
} else {
  const commands = createInterface({ input: process.stdin });
  let stopPump;
  let round = 0;
  for await (const line of commands) {
    if (line === "pump") {
      stopPump = pump();
      emit("pumping");
    } else if (line === "hold") {
      // No watch is created or closed across the restart itself: closing one
      // whose name the SDK has not re-registered yet is refused by the broker
      // (not_watching), an SDK matter this test is not about.
      await within(Promise.all(live.map((w) => w.request({ type: "stop-churn" }, "stopped"))), STEP_MS, "the workers stopping their churn");
      emit("held");
    } else if (line === "settle") {
      round++;
      await stopPump();
      await converge(round);
      await finalCheck("after restart " + round);
      for (const w of live) w.worker.postMessage({ type: "churn" });
      emit("settled", { round });
    } else if (line === "finish") {
      commands.close();
      process.stdin.destroy();
      await teardown();
    }
  }
}
`;

/**
 * A short-lived client process: two clients watching every subject (and,
 * with a worker, two more in a worker thread), one wake, then an exit while
 * the waiters sleep: process.exit(0) with everything open, or closing
 * everything and ending by itself.
 */
const EXITER = `
${PROCESS_COMMON}
const clients = [];
for (let i = 0; i < 2; i++) {
  const client = await connect({ socket, name: "exiter." + i, reconnect: RECONNECT });
  clients.push(client);
  for (const subject of subjects) await addWatcher(client, subject, "exiter." + i);
}
const worker = config.worker ? new WorkerThread({ clients: 2, churn: false }) : undefined;
if (worker) await worker.ready;
emit("watching");
process.stdin.setEncoding("utf8");
process.stdin.on("data", async (chunk) => {
  for (const line of chunk.split("\\n")) {
    if (line.startsWith("expect ")) {
      const finals = JSON.parse(line.slice(7));
      const result = await everyoneSees(finals, STEP_MS, "every watcher seeing the post", worker ? [worker] : []);
      if (result !== true) fail("watchers did not see the post", result);
      emit("woken");
    } else if (line === "exit") {
      if (config.exit === "exit") process.exit(0);
      // The graceful way: close everything; nothing may keep the process alive then.
      process.stdin.destroy();
      if (worker) await worker.close();
      for (const client of clients) await client.close();
      emit("closed");
    }
  }
});
`;

// ---------------------------------------------------------------------------
// Test side: the processes, and failures that say what happened.

const SYSCALLS: Record<string, string> = { "0": "read", "7": "poll", "202": "futex", "232": "epoll_wait", "281": "epoll_pwait", "449": "futex_waitv", "230": "clock_nanosleep", "35": "nanosleep" };

/** For a process that stopped making progress: each thread's name and the syscall it sits in, and gdb's stacks when gdb is here. */
function threadsOf(pid: number): string {
  const read = (path: string): string => {
    try {
      return readFileSync(path, "utf8").trim();
    } catch {
      return "?";
    }
  };
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return `(process ${pid} is gone)`;
  }
  const lines = tasks.map((tid) => {
    const syscall = read(`/proc/${pid}/task/${tid}/syscall`).split(" ")[0] ?? "?";
    const where = syscall === "running" ? "running" : (SYSCALLS[syscall] ?? `syscall ${syscall}`);
    return `  ${tid} ${read(`/proc/${pid}/task/${tid}/comm`)}: ${where} (${read(`/proc/${pid}/task/${tid}/wchan`)})`;
  });
  let stacks = "";
  if (["/usr/bin/gdb", "/bin/gdb"].some((p) => existsSync(p))) {
    // Without the ASan runtime: gdb is not what is under test.
    const env = { ...process.env };
    delete env["LD_PRELOAD"];
    const gdb = spawnSync("gdb", ["-p", String(pid), "-batch", "-nx", "-ex", "thread apply all bt 25"], { env, encoding: "utf8", timeout: 60_000 });
    // Only the threads in our addon or N-API, and the main thread.
    const blocks = (gdb.stdout ?? "").split(/\n(?=Thread \d+ )/).filter((b) => /^Thread /.test(b) && /xpcbus|Napi::|napi_|Thread 1 /.test(b));
    stacks = blocks.length > 0 ? `\nstacks (gdb):\n${blocks.join("\n")}` : "";
  }
  return `threads of ${pid}:\n${lines.join("\n")}${stacks}`;
}

/** What a signal that ended a process tells, beyond its name. */
function signalHint(exit: Exit, stderr: string[]): string {
  if (exit.signal !== "SIGABRT" || sanitizerLines(stderr).length > 0) return "";
  return sanitized
    ? " (abort() in native code; ASan's handle_abort should have printed the stack below)"
    : " (abort() in native code, silent: npm run test:sanitize prints the aborting thread's stack)";
}

/** The lines of sanitizer reports in a child's stderr. */
function sanitizerLines(lines: string[]): string[] {
  return lines.filter((l) => /Sanitizer|runtime error:|==\d+==/.test(l));
}

/**
 * LeakSanitizer's own tracer thread crashing at exit ("Tracer caught signal
 * 11 … LeakSanitizer has encountered a fatal error") is the checker failing,
 * not a finding: the leak check did not run. Seen once in CI after a run
 * whose checks had all passed. Anything that reports a finding still fails.
 */
function onlyLeakCheckerCrashed(lines: string[]): boolean {
  const text = lines.join("\n");
  return (
    /LeakSanitizer has encountered a fatal error/.test(text) &&
    /Tracer caught signal/.test(text) &&
    !/ERROR: AddressSanitizer|detected memory leaks|runtime error:|SUMMARY:/.test(text)
  );
}

// Our processes, killed after each test if still running (the harness's list is its own).
const ours: Array<() => void> = [];
afterEach(() => {
  for (const fn of ours.splice(0)) fn();
});

/** A client process running one of the scripts above, speaking JSON lines. */
class ScriptProcess {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly events: Array<Record<string, unknown>> = [];
  /** Settles once the process exited and its stdout and stderr were read to the end. */
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    script: string,
    config: Record<string, unknown>,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
    createInterface({ input: this.child.stdout!, crlfDelay: Infinity }).on("line", (line) => {
      this.out.push(line);
      if (line.startsWith("{")) {
        try {
          this.events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not one of ours
        }
      }
      this.#changed();
    });
    createInterface({ input: this.child.stderr!, crlfDelay: Infinity }).on("line", (line) => this.err.push(line));
    this.exited = new Promise<Exit>((resolve) =>
      this.child.once("close", (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
        this.#changed();
      }),
    );
    // An ignored EPIPE when the process died: its exit is the failure reported.
    this.child.stdin!.on("error", () => {});
    const child = this.child;
    ours.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
  }

  #changed(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** What the process said, for a failure message: a sanitizer report from its first line, else the end. */
  transcript(): string {
    const tail = (lines: string[], n: number): string => (lines.length > n ? [`… ${lines.length - n} lines before`, ...lines.slice(-n)] : lines).join("\n");
    const first = this.err.findIndex((l) => /==\d+==ERROR|runtime error:/.test(l));
    const err = first < 0 ? tail(this.err, 200) : [...(first > 0 ? [`… ${first} lines before`] : []), ...this.err.slice(first, first + 400)].join("\n");
    return `--- stdout of ${this.label} ---\n${tail(this.out, 40)}\n--- stderr of ${this.label} ---\n${err}`;
  }

  /** Kills a process that stopped making progress, after taking its threads' picture. */
  #hang(what: string, timeoutMs: number): Error {
    const threads = this.#exit === undefined ? threadsOf(this.child.pid!) : "";
    this.child.kill("SIGKILL");
    return new Error(`${this.label}: ${what} within ${timeoutMs} ms — a hang\n${threads}\n${this.transcript()}`);
  }

  /**
   * Waits for `{"event": name}` (one already received counts); fails with the
   * reason when the process reports a failed check, crashes (ends first: its
   * stderr), or hangs (no event in time: its threads, then it is killed).
   */
  event(name: string, test: (e: Record<string, unknown>) => boolean = () => true, timeoutMs = STEP_MS): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const done = (settle: () => void): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        settle();
      };
      const check = (): void => {
        const failed = this.events.find((e) => e["event"] === "failed");
        const hit = this.events.find((e) => e["event"] === name && test(e));
        if (hit !== undefined) done(() => resolve(hit));
        else if (failed !== undefined) {
          const details = JSON.stringify(failed["details"], null, 1);
          // A step that never ended: where its threads are is the answer.
          const threads = /\(hang\)/.test(String(failed["message"])) && this.#exit === undefined ? `\n${threadsOf(this.child.pid!)}` : "";
          done(() => reject(new Error(`${this.label} reported a failed check before "${name}": ${failed["message"]}\n${details}${threads}\n${this.transcript()}`)));
        } else if (this.#exit !== undefined) {
          const { code, signal } = this.#exit;
          const hint = signalHint(this.#exit, this.err);
          done(() => reject(new Error(`${this.label} ended (code ${code}, signal ${signal}) before "${name}" — a crash${hint}\n${this.transcript()}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(this.#hang(`no "${name}"`, timeoutMs))), timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /** Waits for the process to end by itself with status 0 and no sanitizer report. */
  async exitsCleanly(timeoutMs = STEP_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#hang("no exit", timeoutMs)), timeoutMs);
    });
    try {
      const exit = await Promise.race([this.exited, hung]);
      const reports = sanitizerLines(this.err);
      if (exit.code === 1 && exit.signal === null && onlyLeakCheckerCrashed(this.err)) {
        process.stderr.write(`${this.label}: LeakSanitizer's tracer crashed at exit, so its leak check did not run (not a finding)\n`);
        return;
      }
      if (exit.code !== 0 || reports.length > 0) {
        const what = reports.length > 0 ? ", with a sanitizer report" : signalHint(exit, this.err);
        throw new Error(`${this.label} ended with code ${exit.code}, signal ${exit.signal}${what}\n${this.transcript()}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

function writeScripts(): { dir: string; driver: string; exiter: string; worker: string } {
  const dir = tempDir();
  const paths = { dir, driver: join(dir, "driver.mjs"), exiter: join(dir, "exiter.mjs"), worker: join(dir, "worker.mjs") };
  writeFileSync(paths.driver, DRIVER);
  writeFileSync(paths.exiter, EXITER);
  writeFileSync(paths.worker, WORKER);
  return paths;
}

/** The broker's own end: SIGTERM, status 0, no sanitizer report (the writer side of the table is native too). */
async function stopBroker(broker: BrokerProcess): Promise<void> {
  const exit = await broker.kill("SIGTERM");
  const reports = sanitizerLines(broker.stderr.lines);
  expect(
    { code: exit.code, signal: exit.signal, reports },
    `the broker did not end cleanly:\n${broker.stderr.lines.slice(-100).join("\n")}`,
  ).toEqual({ code: 0, signal: null, reports: [] });
}

/** A dead broker explains everything after it: say so first. */
async function brokerAlive(broker: BrokerProcess): Promise<void> {
  const exit = broker.child.exitCode !== null || broker.child.signalCode !== null ? await broker.exited : undefined;
  if (exit !== undefined) throw new Error(`the broker died (${JSON.stringify(exit)}):\n${broker.stderr.lines.slice(-100).join("\n")}`);
}

describe.skipIf(!linux)("notify stress: SDK, real daemon, native waiter", () => {
  for (const perSlot of [false, true]) {
    const mode = perSlot ? "one thread per slot (FUTEX_WAIT)" : "futex_waitv";
    const env = { XPCBUS_NOTIFY_PER_SLOT: perSlot ? "1" : "0" };

    describe(mode, () => {
      it(`workers with several clients each, terminated mid-wake during ${UPDATES} updates, with watchers churning in every thread`, async () => {
        const scripts = writeScripts();
        const broker = await startBroker();
        const config = {
          scenario: "workers",
          socket: broker.socket,
          subjects: SUBJECTS,
          slow: SLOW,
          workerPath: scripts.worker,
          workers: 3,
          clientsPerWorker: 3,
          updates: UPDATES,
          retirements: 9,
          quietCycles: 200,
        };
        const p = new ScriptProcess(`client process (workers, ${mode})`, scripts.driver, config, env);
        try {
          const waiters = await p.event("waiters");
          // The mode is in force: one waiter thread per watched slot, or one per client.
          if (perSlot) expect(waiters["threads"]).toBeGreaterThanOrEqual(waiters["slots"] as number);
          else expect(waiters["threads"]).toBeLessThanOrEqual(waiters["clients"] as number);
          await p.event("ready");
          await p.event("posted", undefined, STEP_MS * 3);
          expect(await p.event("retired")).toMatchObject({ terminate: 3, "busy-terminate": 3, close: 3 });
          await p.event("quiet-churned");
          await p.event("caught-up");
          await p.event("done");
          await p.exitsCleanly();
        } catch (error) {
          await brokerAlive(broker);
          throw error;
        }
        await stopBroker(broker);
      }, STEP_MS * 8);

      it("the broker killed with SIGKILL and restarted, twice, under posts, while clients in threads watch (and churn between restarts)", async () => {
        const scripts = writeScripts();
        const socket = join(tempDir(), "b.sock");
        let broker = await startBroker({ socket });
        const config = {
          scenario: "restart",
          socket,
          subjects: SUBJECTS,
          slow: SLOW,
          workerPath: scripts.worker,
          workers: 2,
          clientsPerWorker: 3,
        };
        const p = new ScriptProcess(`client process (restart, ${mode})`, scripts.driver, config, env);
        try {
          await p.event("ready");
          for (let round = 1; round <= 2; round++) {
            const count = (name: string): number => p.events.filter((e) => e["event"] === name).length;
            p.send("pump");
            await p.event("pumping", () => count("pumping") === round);
            p.send("hold");
            await p.event("held", () => count("held") === round);
            await broker.kill("SIGKILL");
            broker = await startBroker({ socket });
            p.send("settle");
            await p.event("settled", (e) => e["round"] === round);
          }
          p.send("finish");
          await p.event("done");
          await p.exitsCleanly();
        } catch (error) {
          await brokerAlive(broker);
          throw error;
        }
        await stopBroker(broker);
      }, STEP_MS * 8);

      it("client processes exit while their waiters sleep or wake (process.exit, with and without a worker, or by closing), and a live watcher still sees the final seq", async () => {
        const scripts = writeScripts();
        const broker = await startBroker();
        const watcherClient: Client = await connect({ socket: broker.socket, name: "live-watcher" });
        const seen = new Map<string, number>();
        const finalsSeen = new Map<string, (seq: number) => void>();
        for (const subject of SUBJECTS) {
          await watcherClient.watch(subject, {
            callback: (e) => {
              seen.set(subject, e.seq);
              finalsSeen.get(subject)?.(e.seq);
            },
          });
        }
        const publisher = await connect({ socket: broker.socket, name: "publisher" });
        const publishAll = async (): Promise<Record<string, number>> => {
          const finals: Record<string, number> = {};
          for (const subject of SUBJECTS) finals[subject] = (await publisher.publish(subject, "x")).seq!;
          return finals;
        };
        // asleep: told to exit once every waiter is back asleep; mid-wake: told while posts stream in.
        const variants = [
          { exit: "exit", worker: false, when: "asleep" },
          { exit: "exit", worker: true, when: "asleep" },
          { exit: "close", worker: false, when: "asleep" },
          { exit: "close", worker: true, when: "asleep" },
          { exit: "exit", worker: false, when: "mid-wake" },
          { exit: "exit", worker: true, when: "mid-wake" },
        ];
        try {
          const exiters = variants.map(
            (v, i) =>
              new ScriptProcess(
                `client process ${i} (${v.exit === "exit" ? "process.exit" : "closes and ends"}${v.worker ? ", with a worker" : ""}, ${v.when}, ${mode})`,
                scripts.exiter,
                { socket: broker.socket, subjects: SUBJECTS, slow: SLOW, workerPath: scripts.worker, ...v },
                env,
              ),
          );
          for (const e of exiters) await e.event("watching");
          const finals = await publishAll();
          for (const e of exiters) e.send(`expect ${JSON.stringify(finals)}`);
          for (const e of exiters) await e.event("woken");
          // Nothing was posted since every watcher saw the last post: the waiters sleep.
          const asleep = exiters.filter((_, i) => variants[i]!.when === "asleep");
          for (const e of asleep) e.send("exit");
          for (const e of asleep) await e.exitsCleanly();
          const midWake = exiters.filter((_, i) => variants[i]!.when === "mid-wake");
          let streaming = true;
          const stream = (async () => {
            while (streaming) await publishAll();
          })();
          await publishAll();
          for (const e of midWake) e.send("exit");
          try {
            for (const e of midWake) await e.exitsCleanly();
          } finally {
            streaming = false;
            await stream;
          }
          // The broker counted them all out; the watcher still here sees the next post.
          const last = await publishAll();
          await Promise.all(
            SUBJECTS.map(
              (subject) =>
                new Promise<void>((resolve, reject) => {
                  const timer = setTimeout(() => reject(new Error(`the live watcher did not see ${subject} at seq ${last[subject]} (last seen ${seen.get(subject)})`)), STEP_MS);
                  const check = (seq: number): void => {
                    if (seq < last[subject]!) return;
                    clearTimeout(timer);
                    resolve();
                  };
                  finalsSeen.set(subject, check);
                  check(seen.get(subject) ?? 0);
                }),
            ),
          );
        } catch (error) {
          await brokerAlive(broker);
          throw error;
        } finally {
          await watcherClient.close();
          await publisher.close();
        }
        await stopBroker(broker);
      }, STEP_MS * 6);
    });
  }
});
