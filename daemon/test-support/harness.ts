// Test harness: the real daemon (the built CLI) on a temporary socket, real
// client processes, and helpers that wait for events instead of sleeping.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { connect } from "../../client-sdk/index.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(ROOT, "dist", "daemon", "cli", "main.js");
export const SDK = join(ROOT, "dist", "client-sdk", "index.js");

const cleanups: Array<() => void> = [];

/** Runs everything registered so far; call from afterEach/afterAll. */
export function cleanup(): void {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
}

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "xpcbus-test-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Lines of a child's stream, with a way to wait for one that matches. */
export class LineReader {
  readonly lines: string[] = [];
  #waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  #ended = false;
  #endWaiters: Array<() => void> = [];

  constructor(stream: NodeJS.ReadableStream) {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on("line", (line) => {
      this.lines.push(line);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.test(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    rl.on("close", () => {
      this.#ended = true;
      for (const fn of this.#endWaiters.splice(0)) fn();
    });
  }

  /** Resolves with the first line (already seen or future) that passes `test`. */
  waitFor(test: (line: string) => boolean, timeoutMs = 10_000, what = "a matching line"): Promise<string> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; lines so far:\n${this.lines.join("\n")}`)), timeoutMs);
      this.#waiters.push({
        test,
        resolve: (line) => {
          clearTimeout(timer);
          resolvePromise(line);
        },
      });
    });
  }

  /** JSON lines only, parsed. */
  json<T = Record<string, unknown>>(): T[] {
    return this.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as T);
  }

  waitForJson<T = Record<string, unknown>>(test: (value: T) => boolean, timeoutMs = 10_000, what?: string): Promise<T> {
    return this.waitFor(
      (line) => {
        if (!line.startsWith("{")) return false;
        try {
          return test(JSON.parse(line) as T);
        } catch {
          return false;
        }
      },
      timeoutMs,
      what,
    ).then((line) => JSON.parse(line) as T);
  }

  ended(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((r) => this.#endWaiters.push(r));
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
}

export class BrokerProcess {
  readonly socket: string;
  readonly child: ChildProcess;
  readonly stderr: LineReader;
  readonly exited: Promise<Exit>;

  constructor(socket: string, child: ChildProcess) {
    this.socket = socket;
    this.child = child;
    this.stderr = new LineReader(child.stderr!);
    this.exited = exitOf(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  ready(): Promise<Record<string, unknown>> {
    return Promise.race([
      this.stderr.waitForJson((l) => l["msg"] === "ready", 10_000, "the broker's ready line"),
      this.exited.then((e) => {
        throw new Error(`broker exited before ready (${JSON.stringify(e)}):\n${this.stderr.lines.join("\n")}`);
      }),
    ]);
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): Promise<Exit> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Spawns `xpcbus daemon` and does not wait; use `.ready()`. */
export function spawnBroker(options: { socket?: string; args?: string[]; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): BrokerProcess {
  const socket = options.socket ?? join(tempDir(), "broker.sock");
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, "daemon", "--socket", socket, "--log-level", "debug", ...(options.args ?? [])], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  const broker = new BrokerProcess(socket, child);
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return broker;
}

/** Starts the real daemon on a temporary socket and waits for its "ready" line. */
export async function startBroker(options: { socket?: string; args?: string[]; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): Promise<BrokerProcess> {
  const broker = spawnBroker(options);
  await broker.ready();
  return broker;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `xpcbus ...args` to completion. */
export function runCli(args: string[], options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...options.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`xpcbus ${args.join(" ")} did not finish in time; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Starts a long-running `xpcbus ...args` (e.g. `sub`), with its stdout as lines. */
export function spawnCli(args: string[]): { child: ChildProcess; stdout: LineReader; stderr: LineReader; exited: Promise<Exit> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return { child, stdout: new LineReader(child.stdout!), stderr: new LineReader(child.stderr!), exited: exitOf(child) };
}

export class ClientProcess {
  readonly child: ChildProcess;
  readonly out: LineReader;
  readonly err: LineReader;
  readonly exited: Promise<Exit>;

  constructor(child: ChildProcess) {
    this.child = child;
    this.out = new LineReader(child.stdout!);
    this.err = new LineReader(child.stderr!);
    this.exited = exitOf(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits for `{"event": name, ...}` on stdout. */
  event(name: string, test: (e: Record<string, unknown>) => boolean = () => true, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return Promise.race([
      this.out.waitForJson((e) => e["event"] === name && test(e), timeoutMs, `client event "${name}"`),
      this.exited.then((x) => {
        throw new Error(`client exited (${JSON.stringify(x)}) before event "${name}":\n${this.out.lines.join("\n")}\n${this.err.lines.join("\n")}`);
      }),
    ]);
  }

  events(name: string): Array<Record<string, unknown>> {
    return this.out.json().filter((e) => e["event"] === name);
  }

  /** Sends one line to the client's stdin (scripts read commands from it). */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/**
 * Runs `body` as an ES module in a new Node process with `connect`, `socket`,
 * `emit(event, fields)` (a JSON line on stdout) and `commands` (an async
 * iterable of stdin lines) in scope. The client is a real separate process.
 */
export function spawnClient(socket: string, body: string): ClientProcess {
  const code = `
import { connect } from ${JSON.stringify(SDK)};
import { createInterface } from "node:readline";
const socket = ${JSON.stringify(socket)};
const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\\n");
// Opened on first use only: an open stdin would keep the process alive.
const commands = { [Symbol.asyncIterator]: () => createInterface({ input: process.stdin })[Symbol.asyncIterator]() };
const toJson = (d) => d instanceof Uint8Array ? { base64: Buffer.from(d).toString("base64") } : d;
try {
${body}
} catch (error) {
  emit("error", { code: error.code, name: error.name, message: error.message });
  process.exitCode = 1;
}
`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["pipe", "pipe", "pipe"] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return new ClientProcess(child);
}

/** Polls `check` until it returns a value other than undefined (for state only observable by asking, e.g. status). */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Waits until the broker on `socket` has a subscription on `subject` (a CLI
 * `sub`'s readiness is visible only there). Asks over one SDK connection, not
 * by starting a `status` process per poll, which under load starved the very
 * process it waited for.
 */
export async function waitForSubscription(socket: string, subject: string, timeoutMs = 10_000): Promise<void> {
  const observer = await connect({ socket, reconnect: false, name: "test-observer" });
  try {
    await eventually(async () => ((await observer.status()).subjects.some((x) => x.subject === subject) ? true : undefined), timeoutMs, `a subscription on "${subject}"`);
  } finally {
    await observer.close();
  }
}
