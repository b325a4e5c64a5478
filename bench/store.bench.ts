// Scenario: what the durable store costs. The same broker three ways in the
// same run: `--store memory` (nothing on disk: the baseline), the SQLite
// store as shipped (WAL, durability normal) and `--durability full` (an fsync
// per commit). Two measures:
//
// 1. 1 → 1 throughput, the throughput scenario's harness (burstOnce, one
//    subscriber process, ~1 MiB in flight, the first fifth a warm-up), plain
//    publishes (each one still goes into the subject's history) and every
//    publish retained: msgs/s and CPU per message, broker and both clients.
//    `rounds` rounds, each running every configuration once in turn, and the
//    median of each figure: on 2 cores a single run's rate moves by ±30 %
//    with whatever else the machine does, and taking turns spreads that over
//    the configurations alike instead of onto whichever ran at a bad moment.
// 2. Ack latency of a retained publish: one client per configuration's broker
//    publishes retained values with an ack, one at a time (each awaited),
//    round-robin over `subjects` subjects; the three brokers run side by side
//    and take turns publish by publish, for the same reason. HdrHistogram of
//    publish → ack. The clients are this process, as in update-delivery and
//    compare, whose publishers run here too; nothing else runs in it
//    meanwhile. With one publish in flight, every publish is a commit of its
//    own: the store's worst case per message.
//
// The store file is `<socket>.store.db` beside the broker's socket, in a
// scratch folder under the OS temp dir; its filesystem is in the result,
// since an fsync costs nothing on tmpfs and "full" then measures nothing.

import { readdirSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { connect, type Client } from "../client-sdk/index.js";
import { burstOnce } from "./burst.bench.js";
import { cpuMs, roundMs } from "./support/cpu.js";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { scratchDir, startBroker } from "./support/processes.js";
import { oneToOneFigures, type OneToOneFigures } from "./throughput.bench.js";

export type StoreConfigName = "memory" | "sqlite" | "sqlite full";

interface StoreConfig {
  name: StoreConfigName;
  brokerArgs: string[];
  /** Whether it writes `<socket>.store.db`: checked, so a row is what its label says. */
  onDisk: boolean;
}

/** The baseline first: each ratio is to the memory row of the same run. */
export const STORE_CONFIGS: StoreConfig[] = [
  { name: "memory", brokerArgs: ["--store", "memory"], onDisk: false },
  // The product's default: no store option at all.
  { name: "sqlite", brokerArgs: [], onDisk: true },
  { name: "sqlite full", brokerArgs: ["--durability", "full"], onDisk: true },
];

/** One 1 → 1 run. */
export type StoreThroughputRun = OneToOneFigures;

/** A configuration's 1 → 1 figures: each the median over its runs (in `runs`, in order); `delivered` the fewest. */
export interface StoreThroughputRow extends StoreThroughputRun {
  store: StoreConfigName;
  publish: "plain" | "retained";
  payloadBytes: number;
  messages: number;
  /** The first of them, not counted. */
  warmup: number;
  runs: StoreThroughputRun[];
}

export interface StoreAckRow {
  store: StoreConfigName;
  publishes: number;
  /** Publishes before these, not counted. */
  warmup: number;
  subjects: number;
  payloadBytes: number;
  /** Publish → its ack, one publish in flight. */
  latency: LatencySummary;
  /** Broker CPU over the counted publishes, per publish. */
  brokerCpuUsPerPublish: number;
}

export interface StoreResult {
  scenario: "store";
  /** The filesystem the store files were on (an fsync is free on tmpfs). */
  filesystem: string;
  throughput: StoreThroughputRow[];
  ack: StoreAckRow[];
}

export interface StoreOptions {
  /** Messages per 1 → 1 run. */
  messages: number;
  /** 1 → 1 runs per configuration and kind of publish, taking turns; each figure is their median. */
  rounds: number;
  payloadBytes: number;
  /** Retained publishes with an ack, counted. */
  acks: number;
  ackWarmup: number;
  subjects: number;
  progress?: (line: string) => void;
}

// statfs(2) f_type magic numbers (linux/magic.h) of the filesystems a temp dir is likely on.
const FILESYSTEMS: Record<number, string> = {
  0xef53: "ext4",
  0x01021994: "tmpfs",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x794c7630: "overlayfs",
  0x2fc12fc1: "zfs",
};

function filesystemOf(dir: string): string {
  try {
    const type = Number(statfsSync(dir).type);
    return FILESYSTEMS[type] ?? `statfs type 0x${type.toString(16)}`;
  } catch {
    return "unknown";
  }
}

const storeFiles = (dir: string): number => readdirSync(dir).filter((f) => f.endsWith(".store.db")).length;

/** Throws unless the broker just run wrote a store file exactly when its configuration should. */
function checkStoreFile(config: StoreConfig, dir: string, before: number): void {
  const made = storeFiles(dir) - before;
  if (made !== (config.onDisk ? 1 : 0)) {
    throw new Error(`store "${config.name}" (${config.brokerArgs.join(" ") || "defaults"}): expected ${config.onDisk ? "one new" : "no"} <socket>.store.db, found ${made}`);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Every configuration's broker side by side, taking turns publish by publish (the file's header says why). */
async function ackLatency(dir: string, options: StoreOptions): Promise<StoreAckRow[]> {
  const brokers: Array<{ config: StoreConfig; pid: number; stop(): Promise<void>; client?: Client }> = [];
  const before = storeFiles(dir);
  try {
    for (const config of STORE_CONFIGS) {
      const socket = join(dir, `acks-${config.name.replace(/ /g, "-")}.sock`);
      const broker = await startBroker(socket, config.brokerArgs);
      brokers.push({ config, ...broker });
      brokers[brokers.length - 1]!.client = await connect({ socket, name: "bench-store-acks", reconnect: false });
    }
    if (storeFiles(dir) - before !== STORE_CONFIGS.filter((c) => c.onDisk).length) {
      throw new Error(`expected ${STORE_CONFIGS.filter((c) => c.onDisk).length} new <socket>.store.db, found ${storeFiles(dir) - before}`);
    }
    const subjects = Array.from({ length: options.subjects }, (_, i) => `bench.store.s${i}`);
    const payload = Buffer.alloc(Math.max(4, options.payloadBytes));
    const histograms = brokers.map(() => newHistogram());
    const total = options.ackWarmup + options.acks;
    let cpuFrom = brokers.map((b) => cpuMs(b.pid));
    for (let i = 0; i < total; i++) {
      if (i === options.ackWarmup) cpuFrom = brokers.map((b) => cpuMs(b.pid));
      payload.writeUInt32LE(i, 0);
      const subject = subjects[i % subjects.length] as string;
      for (let b = 0; b < brokers.length; b++) {
        const started = process.hrtime.bigint();
        await brokers[b]!.client!.publish(subject, payload, { retain: true });
        if (i >= options.ackWarmup) histograms[b]!.recordValue(Math.max(1, Number(process.hrtime.bigint() - started)));
      }
    }
    const cpuTo = brokers.map((b) => cpuMs(b.pid));
    // The last value is the retained one: the publishes did what they say.
    const last = subjects[(total - 1) % subjects.length] as string;
    for (const b of brokers) {
      if (!(await b.client!.get(last)).found) throw new Error(`store "${b.config.name}": the last retained publish is not retained`);
    }
    return brokers.map((b, i) => ({
      store: b.config.name,
      publishes: options.acks,
      warmup: options.ackWarmup,
      subjects: subjects.length,
      payloadBytes: payload.length,
      latency: summarise(histograms[i]!),
      brokerCpuUsPerPublish: Math.round(((cpuTo[i]! - cpuFrom[i]!) * 1000) / Math.max(1, options.acks) * 100) / 100,
    }));
  } finally {
    for (const b of brokers) {
      await b.client?.close().catch(() => undefined);
      await b.stop();
    }
  }
}

export async function run(options: StoreOptions): Promise<StoreResult> {
  const dir = scratchDir();
  const throughput: StoreThroughputRow[] = [];
  try {
    const filesystem = filesystemOf(dir.path);
    // About 1 MiB in flight, as in the throughput scenario.
    const window = Math.max(16, Math.floor((1 << 20) / (options.payloadBytes + 64)));
    const warmup = Math.floor(options.messages / 5);
    for (const publish of ["plain", "retained"] as const) {
      const runs = STORE_CONFIGS.map((): StoreThroughputRun[] => []);
      for (let round = 1; round <= options.rounds; round++) {
        for (const [c, config] of STORE_CONFIGS.entries()) {
          options.progress?.(`store: 1 → 1, ${config.name}, ${options.messages} × ${options.payloadBytes} B, ${publish}, round ${round}/${options.rounds}`);
          const before = storeFiles(dir.path);
          const row = await burstOnce("xpcbus", dir.path, {
            subscribers: 1,
            messages: options.messages,
            payloadBytes: options.payloadBytes,
            window,
            warmup,
            brokerArgs: config.brokerArgs,
            retain: publish === "retained",
          });
          checkStoreFile(config, dir.path, before);
          runs[c]!.push(oneToOneFigures(row));
        }
      }
      for (const [c, config] of STORE_CONFIGS.entries()) {
        const mine = runs[c]!;
        const mid = (pick: (run: StoreThroughputRun) => number): number => median(mine.map(pick));
        throughput.push({
          store: config.name,
          publish,
          payloadBytes: Math.max(12, options.payloadBytes),
          messages: options.messages,
          warmup,
          delivered: Math.min(...mine.map((run) => run.delivered)),
          messagesPerSecond: Math.round(mid((run) => run.messagesPerSecond)),
          cpuUsPerMessage: mid((run) => run.cpuUsPerMessage),
          brokerCpuMs: roundMs(mid((run) => run.brokerCpuMs)),
          publisherCpuMs: roundMs(mid((run) => run.publisherCpuMs)),
          subscriberCpuMs: roundMs(mid((run) => run.subscriberCpuMs)),
          runs: mine,
        });
      }
    }
    options.progress?.(`store: retained publish → ack, ${STORE_CONFIGS.map((c) => c.name).join(", ")} taking turns, ${options.acks} each after ${options.ackWarmup}`);
    const ack = await ackLatency(dir.path, options);
    return { scenario: "store", filesystem, throughput, ack };
  } finally {
    dir.remove();
  }
}
