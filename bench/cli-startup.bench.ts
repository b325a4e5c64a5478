// Scenario: what a one-shot CLI command costs to start. `xpcbus pub <subject> x`
// against the same publish done by a 4-line script on the SDK (the floor: a
// node process that loads only the SDK), both against one running broker,
// plus `xpcbus --version` (start-up with no connection at all). Each is run
// `runs` times, interleaved so a noisy moment hits all three alike, after one
// warm-up of each (the file cache); the figures are medians of wall time from
// spawn to exit, and the headline is pub's median as a ratio to the script's.
// A subscriber in this process checks that every publish arrived.
// Besides: in this process, connect + first acknowledged publish + close with
// the SDK (median of `connectRuns`), and what the broker check the Unix
// transport does before `hello` costs (docs/SECURITY.md, "Trusting the
// broker"): the native peerCredentials() call, timed over 1000 calls on one
// connected socket. A before/after of the check cannot be had in one run; its
// cost next to the connect's is the figure.

import { spawn } from "node:child_process";
import { createConnection, type Socket } from "node:net";
import { loadNative } from "../native/index.js";
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
  /** Median ms, in this process, of connect() + one acknowledged publish + close() with the SDK. */
  connectPublishMs: number;
  connectRuns: number;
  /** µs per native peerCredentials() call (SO_PEERCRED and the rest), mean of PEER_CREDENTIALS_CALLS on one socket. */
  peerCredentialsUs: number;
  /** peerCredentialsUs as a share of connectPublishMs: what the broker check adds to a connect. */
  peerCredentialsShare: number;
  /** pubMs / scriptMs. */
  pubRatio: number;
  target: number;
  /** Publishes the subscriber received: one per pub run and per script run, warm-ups included. */
  received: number;
  expected: number;
}

const SUBJECT = "bench.startup";

/** Calls timed for the per-call cost: enough that the timer's resolution is noise, still well under a second. */
const PEER_CREDENTIALS_CALLS = 1000;

/** Connects a plain socket (no hello) and times peerCredentials() on it; µs per call. */
async function timePeerCredentials(socketPath: string): Promise<number> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ path: socketPath });
    s.once("error", reject);
    s.once("connect", () => resolve(s));
  });
  try {
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    const native = loadNative();
    native.peerCredentials(fd); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < PEER_CREDENTIALS_CALLS; i++) native.peerCredentials(fd);
    return Number(process.hrtime.bigint() - started) / 1e3 / PEER_CREDENTIALS_CALLS;
  } finally {
    socket.destroy();
  }
}

/** ms of one connect + acknowledged publish + close, in this process. */
async function timeConnectPublish(socketPath: string): Promise<number> {
  const started = process.hrtime.bigint();
  const bus = await connect({ socket: socketPath, name: "bench-connect", reconnect: false });
  await bus.publish(SUBJECT, "x");
  await bus.close();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

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

export async function run(options: { runs: number; connectRuns?: number }): Promise<CliStartupResult> {
  const connectRuns = options.connectRuns ?? 20;
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
    const expected = 2 * (options.runs + 1) + connectRuns + 1;
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
    await timeConnectPublish(socket); // warm-up
    const connectTimes: number[] = [];
    for (let i = 0; i < connectRuns; i++) connectTimes.push(await timeConnectPublish(socket));
    const peerCredentialsUs = await timePeerCredentials(socket);
    // Every publish was acknowledged before its process exited, so its delivery is on its way: wait for it (bounded).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allReceived, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    const pubMs = round(median(times.pub));
    const scriptMs = round(median(times.sdk));
    const connectPublishMs = Math.round(median(connectTimes) * 1000) / 1000;
    return {
      scenario: "cli-startup",
      runs: options.runs,
      pubMs,
      scriptMs,
      versionMs: round(median(times.version)),
      connectPublishMs,
      connectRuns,
      peerCredentialsUs: Math.round(peerCredentialsUs * 100) / 100,
      peerCredentialsShare: Math.round((peerCredentialsUs / 1000 / connectPublishMs) * 10000) / 10000,
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
