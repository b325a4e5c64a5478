// Scenario: `xpcbus pub <subject> --stdin` fed N lines of 64 B from a file,
// into a default broker with one subscriber (an SDK client in this process)
// that must receive them all. Lines per second from the first message the
// subscriber gets to the last (the CLI's start-up is reported apart), and
// the CPU of the CLI and the broker per line.

import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../client-sdk/index.js";
import { cpuMs, roundMs } from "./support/cpu.js";
import { BENCH_NODE_ARGS, CLI, scratchDir, startBroker } from "./support/processes.js";

export interface PubStdinResult {
  scenario: "pub-stdin";
  lines: number;
  lineBytes: number;
  received: number;
  /** First message at the subscriber → last. */
  seconds: number;
  linesPerSecond: number;
  /** From spawning the CLI to the first message at the subscriber: its start-up and connect. */
  startupMs: number;
  cliCpuMs: number;
  brokerCpuMs: number;
  cpuUsPerLine: number;
}

export async function run(options: { lines: number }): Promise<PubStdinResult> {
  const lineBytes = 64;
  const dir = scratchDir();
  const socket = join(dir.path, "stdin.sock");
  const input = join(dir.path, "lines.txt");
  const line = (i: number): string => `${String(i).padStart(10, "0")} ${"x".repeat(lineBytes - 11)}\n`;
  writeFileSync(input, Array.from({ length: options.lines }, (_, i) => line(i)).join(""));
  const broker = await startBroker(socket);
  const client = await connect({ socket, name: "bench-stdin-sub", reconnect: false });
  try {
    let received = 0;
    let firstNs = 0n;
    let lastNs = 0n;
    let all!: () => void;
    const done = new Promise<void>((resolve) => (all = resolve));
    await client.subscribe("bench.lines", {
      callback: () => {
        const now = process.hrtime.bigint();
        if (received === 0) firstNs = now;
        lastNs = now;
        if (++received === options.lines) all();
      },
    });
    const brokerStart = cpuMs(broker.pid);
    // The lines come from `cat`, whose end of output is held open by the
    // shell until the CLI's CPU time has been read: a process that exited
    // cannot be read (support/cpu.ts).
    const feeder = spawn("sh", ["-c", 'cat "$0" && exec sleep 3600', input], { stdio: ["ignore", "pipe", "inherit"] });
    const spawnedNs = process.hrtime.bigint();
    const cli = spawn(process.execPath, [...BENCH_NODE_ARGS, CLI, "pub", "bench.lines", "--stdin", "--socket", socket], { stdio: [feeder.stdout!, "ignore", "inherit"] });
    const exited = new Promise<number | null>((resolve) => cli.once("exit", (code) => resolve(code)));
    let cliCpu = Number.NaN;
    try {
      await Promise.race([done, exited.then((code) => Promise.reject(new Error(`xpcbus pub --stdin exited with ${code} after ${received} of ${options.lines} lines`)))]);
    } finally {
      if (cli.exitCode === null) cliCpu = cpuMs(cli.pid!);
      feeder.kill("SIGTERM");
    }
    const brokerCpuMs = roundMs(cpuMs(broker.pid) - brokerStart);
    const code = await exited;
    if (code !== 0) throw new Error(`xpcbus pub --stdin exited with ${code}`);
    const seconds = Number(lastNs - firstNs) / 1e9;
    return {
      scenario: "pub-stdin",
      lines: options.lines,
      lineBytes,
      received,
      seconds: Math.round(seconds * 1000) / 1000,
      linesPerSecond: Math.round(received / Math.max(seconds, 1e-6)),
      startupMs: Math.round(Number(firstNs - spawnedNs) / 1e6),
      cliCpuMs: roundMs(cliCpu),
      brokerCpuMs,
      cpuUsPerLine: Math.round(((cliCpu + brokerCpuMs) * 1000) / options.lines * 100) / 100,
    };
  } finally {
    await client.close();
    await broker.stop();
    dir.remove();
  }
}
