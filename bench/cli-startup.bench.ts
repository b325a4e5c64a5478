// Scenario: what a one-shot CLI command costs to start. `xpcbus pub <subject> x`
// against the same publish done by a 4-line script on the SDK (the floor: a
// node process that loads only the SDK), both against one running broker,
// plus `xpcbus --version` (start-up with no connection at all). Each is run
// `runs` times, interleaved so a noisy moment hits all three alike, after one
// warm-up of each (the file cache); the figures are medians of wall time from
// spawn to exit, and the headline is pub's median as a ratio to the script's.
// A subscriber in this process checks that every publish arrived.

import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../client-sdk/index.js";
import { BENCH_NODE_ARGS, CLI, DIST, scratchDir, startBroker } from "./support/processes.js";

/** What `xpcbus pub` should cost at most, as a ratio to the SDK script (issue 17). */
export const CLI_STARTUP_TARGET_RATIO = 1.15;

export interface CliStartupResult {
  scenario: "cli-startup";
  runs: number;
  /** Median ms, spawn → exit, of `xpcbus pub <subject> x`. */
  pubMs: number;
  /** Median ms of the 4-line SDK script doing the same publish. */
  scriptMs: number;
  /** Median ms of `xpcbus --version`. */
  versionMs: number;
  /** pubMs / scriptMs. */
  pubRatio: number;
  target: number;
  /** Publishes the subscriber received: one per pub run and per script run, warm-ups included. */
  received: number;
  expected: number;
}

const SUBJECT = "bench.startup";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Wall time of one process from spawn to exit, in ms; a non-zero exit fails the scenario. */
function timeRun(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let stderr = "";
    const child = spawn(process.execPath, [...BENCH_NODE_ARGS, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`node ${args.join(" ")} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

export async function run(options: { runs: number }): Promise<CliStartupResult> {
  const dir = scratchDir();
  const socket = join(dir.path, "startup.sock");
  // The baseline an application would write: load the SDK, connect, publish, close.
  const script = join(dir.path, "publish.mjs");
  writeFileSync(
    script,
    [
      `import { connect } from ${JSON.stringify(join(DIST, "client-sdk", "index.js"))};`,
      "const bus = await connect({ socket: process.argv[2], reconnect: false });",
      'await bus.publish(process.argv[3], "x");',
      "await bus.close();",
      "",
    ].join("\n"),
  );
  const broker = await startBroker(socket);
  const client = await connect({ socket, name: "bench-startup-sub", reconnect: false });
  try {
    const expected = 2 * (options.runs + 1);
    let received = 0;
    let all!: () => void;
    const allReceived = new Promise<void>((resolve) => (all = resolve));
    await client.subscribe(SUBJECT, {
      callback: () => {
        if (++received === expected) all();
      },
    });
    const pub = (): Promise<number> => timeRun([CLI, "pub", SUBJECT, "x", "--socket", socket]);
    const sdk = (): Promise<number> => timeRun([script, socket, SUBJECT]);
    const version = (): Promise<number> => timeRun([CLI, "--version"]);
    await pub();
    await sdk();
    await version();
    const times = { pub: [] as number[], sdk: [] as number[], version: [] as number[] };
    for (let i = 0; i < options.runs; i++) {
      times.pub.push(await pub());
      times.sdk.push(await sdk());
      times.version.push(await version());
    }
    // Every publish was acknowledged before its process exited, so its delivery is on its way: wait for it (bounded).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allReceived, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    const pubMs = round(median(times.pub));
    const scriptMs = round(median(times.sdk));
    return {
      scenario: "cli-startup",
      runs: options.runs,
      pubMs,
      scriptMs,
      versionMs: round(median(times.version)),
      pubRatio: Math.round((pubMs / scriptMs) * 100) / 100,
      target: CLI_STARTUP_TARGET_RATIO,
      received,
      expected,
    };
  } finally {
    await client.close();
    await broker.stop();
    dir.remove();
  }
}
