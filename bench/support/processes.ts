// Spawning the real broker and benchmark clients, and reading the one JSON
// result line each client prints when it is done.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The build: dist/bench/support → dist; from the sources (tests), bench/support → dist. */
const up = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DIST = basename(up) === "dist" ? up : join(up, "dist");
export const CLI = join(DIST, "daemon", "cli", "main.js");

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function clientScript(name: string): string {
  return join(DIST, "bench", "clients", `${name}.js`);
}

export function scratchDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "xpcbus-bench-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface Spawned {
  child: ChildProcess;
  /** The first stdout line that is a JSON object, parsed. */
  result<T>(): Promise<T>;
  /** Sends `command` on stdin and resolves with the next JSON line printed after it. */
  ask<T>(command: string): Promise<T>;
  /** Resolves at the first stdout line equal to `line`. */
  line(line: string): Promise<void>;
  /** Calls `listener` with every stdout line from now on (progress lines). */
  onLine(listener: (line: string) => void): void;
  stop(): Promise<void>;
}

/**
 * Extra node flags for every process the bench starts, e.g.
 * XPCBUS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile
 * the broker and each client of a scenario (node refuses --cpu-prof in NODE_OPTIONS).
 */
export const BENCH_NODE_ARGS = (process.env["XPCBUS_BENCH_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0);

export function spawnNode(script: string, args: string[]): Spawned {
  const child = spawn(process.execPath, [...BENCH_NODE_ARGS, script, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  // A write to a child that died is reported by its exit (result() rejects), not by crashing the harness with EPIPE.
  child.stdin!.on("error", () => undefined);
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(l);
    for (const w of waiters) w(l);
  });
  // "close", not "exit": every line the child wrote has been read by then.
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  const waitLine = (test: (l: string) => boolean): Promise<string> =>
    new Promise((resolvePromise, reject) => {
      const seen = lines.find(test);
      if (seen !== undefined) return resolvePromise(seen);
      waiters.push((l) => test(l) && resolvePromise(l));
      void exited.then(() => reject(new Error(`${script} exited before printing the expected line`)));
    });
  let answered = 0;
  return {
    child,
    result: async <T>() => JSON.parse(await waitLine((l) => l.startsWith("{"))) as T,
    ask: async <T>(command: string) => {
      const skip = answered++;
      child.stdin!.write(`${command}\n`);
      let seen = 0;
      return JSON.parse(await waitLine((l) => l.startsWith("{") && seen++ === skip)) as T;
    },
    line: async (wanted) => void (await waitLine((l) => l === wanted)),
    onLine: (listener) => void waiters.push(listener),
    stop: async () => {
      // A profiled process writes its profile only if it exits by itself: give it a moment.
      if (BENCH_NODE_ARGS.length > 0) await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * Starts `xpcbus daemon` on `socket` and resolves once it says ready. `args`
 * are more `xpcbus daemon` options (e.g. `["--store", "memory"]`); without
 * them it is the product's defaults, so the SQLite store at `<socket>.store.db`.
 */
export async function startBroker(socket: string, args: readonly string[] = []): Promise<{ pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [...BENCH_NODE_ARGS, CLI, "daemon", "--socket", socket, "--log-level", "warn", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  // At log level warn there is no ready line: wait until the socket answers.
  const { socketIsLive } = await import("../../daemon/index.js");
  for (let i = 0; i < 200 && !(await socketIsLive(socket)); i++) {
    if (child.exitCode !== null) throw new Error(`broker exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
