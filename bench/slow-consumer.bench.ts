// Scenario: a stopped subscriber must cost the others nothing. The broker
// (default options) serves two `xpcbus sub 'load.>'`, one of them stopped
// with SIGSTOP, while `xpcbus pub load.x --stdin` publishes N messages of
// 4 KiB. Measured against the same run without the stopped subscriber: the
// time the fast subscriber needs for all N, the broker's peak RSS, and, once
// the stopped one is continued, that the messages it got plus the broker's
// `dropped` totals add up to exactly N. docs/PROTOCOL.md §9.7 says why.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connect } from "../client-sdk/index.js";
import { CLI, scratchDir, startBroker } from "./support/processes.js";

export interface SlowConsumerRun {
  stoppedSubscriber: boolean;
  /** From the first line written to the publisher until the fast subscriber has had all N, or been told of those it lost. */
  fastSeconds: number;
  /**
   * Messages the broker dropped for the fast subscriber. The publisher has no
   * flow control (fire and forget, flat out), so on two shared cores even a
   * reader that keeps up most of the time can fall 8 MiB behind for a moment;
   * what it loses it is told (`dropped`), and the count is reported, not hidden.
   */
  fastDropped: number;
  /** The broker's peak resident set (VmHWM), MiB. */
  brokerPeakRssMiB: number;
  /** What the stopped subscriber had once continued: messages, and the broker's last `dropped` total. */
  stopped?: { messages: number; droppedTotal: number; droppedNotices: number; caughtUp: boolean };
}

export interface SlowConsumerResult {
  scenario: "slow-consumer";
  messages: number;
  payloadBytes: number;
  alone: SlowConsumerRun;
  withStopped: SlowConsumerRun;
  /** withStopped.fastSeconds / alone.fastSeconds */
  slowdown: number;
}

/** How long the continued subscriber may take to report everything it is owed. */
const CATCH_UP_TIMEOUT_MS = 60_000;

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? "0");
  return Math.round((kib / 1024) * 10) / 10;
}

interface CliSubscriber {
  child: ChildProcess;
  messages: number;
  droppedTotal: number;
  droppedNotices: number;
  /** Resolves when `test` holds, checked at every line. */
  until(test: () => boolean, timeoutMs: number, what: string): Promise<void>;
  exited: Promise<void>;
}

function cliSubscriber(socket: string, count?: number): CliSubscriber {
  const args = [CLI, "sub", "load.>", "--socket", socket, ...(count === undefined ? [] : ["--count", String(count)])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const waiters = new Set<() => void>();
  const check = (): void => {
    for (const w of waiters) w();
  };
  const sub: CliSubscriber = {
    child,
    messages: 0,
    droppedTotal: 0,
    droppedNotices: 0,
    until: (test, timeoutMs, what) =>
      new Promise((resolve, reject) => {
        if (test()) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out waiting for ${what} (messages ${sub.messages}, dropped ${sub.droppedTotal})`));
        }, timeoutMs);
        const waiter = (): void => {
          if (!test()) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        };
        waiters.add(waiter);
      }),
    exited: new Promise((resolve) => child.once("close", () => resolve())),
  };
  createInterface({ input: child.stdout! }).on("line", () => {
    sub.messages++;
    check();
  });
  // The CLI reports each `dropped` notice on stderr with the broker's running total.
  createInterface({ input: child.stderr! }).on("line", (line) => {
    const total = /dropped \d+ messages? \((\d+) in all\)/.exec(line)?.[1];
    if (total === undefined) return;
    sub.droppedNotices++;
    sub.droppedTotal = Number(total);
    check();
  });
  return sub;
}

/**
 * Waits until the broker has `n` subscriptions, so no message is published
 * before both listen. Asks over one SDK connection (closed before anything is
 * measured), not a `status` process per poll, which competed for the CPU with
 * the subscribers it waited for.
 */
async function subscribed(socket: string, n: number): Promise<void> {
  const observer = await connect({ socket, name: "bench-observer", reconnect: false });
  try {
    for (let i = 0; i < 400; i++) {
      const status = await observer.status();
      if (status.peers.reduce((sum, p) => sum + p.subscriptionCount, 0) >= n) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`the subscribers did not subscribe`);
  } finally {
    await observer.close();
  }
}

async function publishLines(socket: string, messages: number, payloadBytes: number): Promise<void> {
  const pub = spawn(process.execPath, [CLI, "pub", "load.x", "--stdin", "--socket", socket], { stdio: ["pipe", "ignore", "inherit"] });
  const exited = new Promise<number | null>((resolve) => pub.once("close", (code) => resolve(code)));
  const line = `${"x".repeat(payloadBytes)}\n`;
  const stdin = pub.stdin!;
  for (let i = 0; i < messages; i++) {
    if (!stdin.write(line)) await new Promise((r) => stdin.once("drain", r));
  }
  stdin.end();
  const code = await exited;
  if (code !== 0) throw new Error(`xpcbus pub exited with ${code}`);
}

async function once(socket: string, messages: number, payloadBytes: number, stoppedSubscriber: boolean): Promise<SlowConsumerRun> {
  const broker = await startBroker(socket);
  const fast = cliSubscriber(socket, messages);
  const slow = stoppedSubscriber ? cliSubscriber(socket) : undefined;
  try {
    await subscribed(socket, stoppedSubscriber ? 2 : 1);
    slow?.child.kill("SIGSTOP");
    const started = process.hrtime.bigint();
    await Promise.all([publishLines(socket, messages, payloadBytes), fast.until(() => fast.messages + fast.droppedTotal >= messages, 600_000, "the fast subscriber")]);
    const fastSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const run: SlowConsumerRun = { stoppedSubscriber, fastSeconds: Math.round(fastSeconds * 100) / 100, fastDropped: fast.droppedTotal, brokerPeakRssMiB: peakRssMiB(broker.pid) };
    if (slow !== undefined) {
      slow.child.kill("SIGCONT");
      const caughtUp = await slow.until(() => slow.messages + slow.droppedTotal >= messages, CATCH_UP_TIMEOUT_MS, "the continued subscriber").then(
        () => true,
        () => false,
      );
      run.stopped = { messages: slow.messages, droppedTotal: slow.droppedTotal, droppedNotices: slow.droppedNotices, caughtUp };
    }
    return run;
  } finally {
    for (const sub of [fast, slow]) {
      if (sub === undefined) continue;
      sub.child.kill("SIGCONT");
      sub.child.kill("SIGTERM");
      await sub.exited;
    }
    await broker.stop();
  }
}

export async function run(options: { messages: number; payloadBytes?: number }): Promise<SlowConsumerResult> {
  const payloadBytes = options.payloadBytes ?? 4096;
  const dir = scratchDir();
  try {
    const alone = await once(join(dir.path, "alone.sock"), options.messages, payloadBytes, false);
    const withStopped = await once(join(dir.path, "stopped.sock"), options.messages, payloadBytes, true);
    return {
      scenario: "slow-consumer",
      messages: options.messages,
      payloadBytes,
      alone,
      withStopped,
      slowdown: Math.round((withStopped.fastSeconds / alone.fastSeconds) * 100) / 100,
    };
  } finally {
    dir.remove();
  }
}
