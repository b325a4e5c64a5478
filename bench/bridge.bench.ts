// Scenario: the NATS bridge (`xpcbus daemon --bridge FILE`), one direction,
// broker → NATS → broker, next to each of its parts alone, in the same run.
// One nats-server and two daemons: A exports `bench.>` as `fleet.a.bench.>`,
// B imports `fleet.a.bench.>` taking 2 tokens off, so `bench.x` published on
// A arrives as `bench.x` on B. Three paths, all through those same processes:
//
// - xpcbus alone: a publisher and a subscriber on A, on a subject the bridge
//   does not export (A's bridge is connected, idle);
// - NATS alone: a publisher and a subscriber straight on the nats-server
//   (nats.js), on a subject B does not import;
// - bridged: a publisher on A and a subscriber on B, on `bench.>`.
//
// Throughput: 64 B flat out with the throughput scenario's harness (the
// burst's, one subscriber, ~1 MiB in flight, counted after a warm-up of a
// fifth): msgs/s at the subscriber and CPU per message over every server on
// the path (A; nats-server; A + nats-server + B) and both clients, from /proc.
// Latency: one-way, the publisher's monotonic send time in the payload (the
// compare scenario's subscriber), one message per millisecond, HdrHistogram.
// The bridge's added latency is the bridged p50 less each part's p50.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../client-sdk/index.js";
import { burstThrough, type BurstRoute } from "./burst.bench.js";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { clientScript, scratchDir, sleep, spawnNode, startBroker } from "./support/processes.js";
import { openPublisher, startSystem, unavailable, type RunningSystem, type SystemName } from "./support/systems.js";
import { oneToOneFigures, type OneToOneFigures } from "./throughput.bench.js";

export type BridgePath = "xpcbus" | "nats" | "bridged";

/** What each path is, for the report. */
export const PATH_LABELS: Record<BridgePath, string> = {
  xpcbus: "xpcbus alone (A → A)",
  nats: "NATS alone (nats-server)",
  bridged: "bridged (A → NATS → B)",
};

export interface BridgeThroughputRow extends OneToOneFigures {
  path: BridgePath;
  payloadBytes: number;
  messages: number;
  /** The first of them, not counted. */
  warmup: number;
  /** brokerCpuMs by server on the path: "A", "nats-server", "B". */
  serversCpuMs: Record<string, number>;
}

export interface BridgeLatencyRow {
  path: BridgePath;
  payloadBytes: number;
  /** Counted messages, one every `spacingMs`. */
  messages: number;
  /** Sent before them and not counted. */
  warmup: number;
  spacingMs: number;
  latency: LatencySummary;
  /** Counted messages that never arrived. */
  missing: number;
}

export interface BridgeResult {
  scenario: "bridge";
  throughput: BridgeThroughputRow[];
  latency: BridgeLatencyRow[];
  /** Bridged p50 less the xpcbus-alone and NATS-alone p50s, µs: what the hop adds. */
  addedP50Us?: { overXpcbus: number; overNats: number };
  /** Why the scenario did not run (no nats-server), or undefined. */
  skipped?: string;
}

export interface BridgeOptions {
  /** Throughput: messages per path. */
  messages: number;
  payloadBytes: number;
  /** Latency: counted messages per path, after `latencyWarmup` not counted. */
  latencyMessages: number;
  latencyWarmup: number;
  /** Latency: time between two publishes. Default 1 ms, as in compare.bench.ts. */
  spacingMs?: number;
  progress?: (line: string) => void;
}

/** The subjects: `bench.>` crosses the bridge; the others stay where they are published. */
const BRIDGED_SUBJECT = "bench.bridge";
const LOCAL_SUBJECT = "solo.bridge";
/** How long the bridge path may take to open (both bridges connected, B's NATS subscription in place). */
const OPEN_TIMEOUT_MS = 15_000;

interface Topology {
  nats: RunningSystem;
  a: { socket: string; pid: number };
  b: { socket: string; pid: number };
  stop(): Promise<void>;
}

async function startTopology(dir: string): Promise<Topology> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const nats = await startSystem("nats", dir);
    stops.push(nats.stop);
    const servers = [`nats://127.0.0.1:${nats.address}`];
    const file = (name: string, body: Record<string, unknown>): string => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify({ version: 1, nats: { servers, name: `xpcbus-bench-${name.slice(0, 1)}` }, ...body }));
      return path;
    };
    const fileA = file("a.bridge.json", { export: [{ subject: "bench.>", prefix: "fleet.a." }] });
    const fileB = file("b.bridge.json", { import: [{ subject: "fleet.a.bench.>", stripTokens: 2 }] });
    const a = { socket: join(dir, "a.sock"), pid: 0 };
    const b = { socket: join(dir, "b.sock"), pid: 0 };
    // The daemons as shipped (default store), plus the bridge.
    const brokerA = await startBroker(a.socket, ["--bridge", fileA]);
    stops.push(brokerA.stop);
    const brokerB = await startBroker(b.socket, ["--bridge", fileB]);
    stops.push(brokerB.stop);
    a.pid = brokerA.pid;
    b.pid = brokerB.pid;
    await pathOpen(a.socket, b.socket);
    return { nats, a, b, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Resolves once a probe published on A arrives on B: both bridges are
 * connected and B's NATS subscription is in place (NATS subscriptions take
 * effect asynchronously, so only a message through proves the path).
 */
async function pathOpen(socketA: string, socketB: string): Promise<void> {
  const [ca, cb] = await Promise.all([
    connect({ socket: socketA, name: "bench-bridge-probe", reconnect: false }),
    connect({ socket: socketB, name: "bench-bridge-probe", reconnect: false }),
  ]);
  try {
    let arrived = false;
    await cb.subscribe("bench.probe", { callback: () => (arrived = true) });
    const deadline = Date.now() + OPEN_TIMEOUT_MS;
    while (!arrived) {
      if (Date.now() > deadline) throw new Error(`the bridge path A → NATS → B did not open within ${OPEN_TIMEOUT_MS} ms`);
      await ca.publish("bench.probe", "probe");
      await sleep(50);
    }
  } finally {
    await Promise.all([ca.close(), cb.close()]);
  }
}

interface Route {
  path: BridgePath;
  publisher: { system: SystemName; address: string };
  subscriber: { system: SystemName; address: string };
  subject: string;
  servers: Array<{ name: string; pid: number }>;
}

function routes(t: Topology): Route[] {
  const a = { system: "xpcbus" as const, address: t.a.socket };
  const nats = { system: "nats" as const, address: t.nats.address };
  return [
    { path: "xpcbus", publisher: a, subscriber: a, subject: LOCAL_SUBJECT, servers: [{ name: "A", pid: t.a.pid }] },
    { path: "nats", publisher: nats, subscriber: nats, subject: LOCAL_SUBJECT, servers: [{ name: "nats-server", pid: t.nats.pid }] },
    {
      path: "bridged",
      publisher: a,
      subscriber: { system: "xpcbus", address: t.b.socket },
      subject: BRIDGED_SUBJECT,
      servers: [
        { name: "A", pid: t.a.pid },
        { name: "nats-server", pid: t.nats.pid },
        { name: "B", pid: t.b.pid },
      ],
    },
  ];
}

async function throughputOnce(route: Route, options: BridgeOptions): Promise<BridgeThroughputRow> {
  const { messages, payloadBytes } = options;
  // The throughput scenario's window: about 1 MiB in flight, far under every bound on the way (the bridge's 8 MiB, NATS's 64 MB per client).
  const window = Math.max(16, Math.floor((1 << 20) / (payloadBytes + 64)));
  const warmup = Math.floor(messages / 5);
  const burstRoute: BurstRoute = { publisher: route.publisher, subscriber: route.subscriber, subject: route.subject, serverPids: route.servers.map((s) => s.pid) };
  const { row, serversCpuMs } = await burstThrough(burstRoute, { subscribers: 1, messages, payloadBytes, window, warmup });
  return {
    path: route.path,
    payloadBytes: row.payloadBytes,
    messages,
    warmup,
    ...oneToOneFigures(row),
    serversCpuMs: Object.fromEntries(route.servers.map((s, i) => [s.name, serversCpuMs[i] ?? 0])),
  };
}

async function latencyOnce(route: Route, options: BridgeOptions): Promise<BridgeLatencyRow> {
  const warmup = options.latencyWarmup;
  const total = warmup + options.latencyMessages;
  const spacingMs = options.spacingMs ?? 1;
  const sub = spawnNode(clientScript("fanout-subscriber"), [route.subscriber.system, route.subscriber.address, route.subject, String(total)]);
  try {
    await sub.line("ready");
    const publisher = await openPublisher(route.publisher.system, route.publisher.address);
    const payload = Buffer.alloc(Math.max(12, options.payloadBytes));
    try {
      for (let i = 0; i < total; i++) {
        await sleep(spacingMs);
        payload.writeBigUInt64LE(process.hrtime.bigint(), 0);
        payload.writeUInt32LE(i, 8);
        await publisher.publish(route.subject, payload);
      }
    } finally {
      await publisher.close();
    }
    // Stragglers get a bounded time; then the subscriber says what it has.
    const result = await Promise.race([sub.result<{ latencies: number[] }>(), sleep(5000).then(() => null)]);
    const final = result ?? (sub.child.stdin!.write("finish\n"), await sub.result<{ latencies: number[] }>());
    const histogram = newHistogram();
    let missing = 0;
    for (let i = warmup; i < total; i++) {
      const ns = final.latencies[i] ?? -1;
      if (ns < 0) missing++;
      else histogram.recordValue(Math.max(1, ns));
    }
    return { path: route.path, payloadBytes: payload.length, messages: options.latencyMessages, warmup, spacingMs, latency: summarise(histogram), missing };
  } finally {
    sub.child.stdin!.end();
    await sub.stop();
  }
}

export async function run(options: BridgeOptions): Promise<BridgeResult> {
  const reason = unavailable("nats");
  if (reason !== undefined) {
    options.progress?.(`bridge: skipped: ${reason}`);
    return { scenario: "bridge", throughput: [], latency: [], skipped: reason };
  }
  const dir = scratchDir();
  try {
    const topology = await startTopology(dir.path);
    try {
      const paths = routes(topology);
      const throughput: BridgeThroughputRow[] = [];
      for (const route of paths) {
        options.progress?.(`bridge: throughput, ${PATH_LABELS[route.path]}, ${options.messages} × ${options.payloadBytes} B`);
        throughput.push(await throughputOnce(route, options));
      }
      const latency: BridgeLatencyRow[] = [];
      for (const route of paths) {
        options.progress?.(`bridge: latency, ${PATH_LABELS[route.path]}, ${options.latencyMessages} after ${options.latencyWarmup}`);
        latency.push(await latencyOnce(route, options));
      }
      const p50 = (path: BridgePath): number | undefined => latency.find((row) => row.path === path)?.latency.p50Us;
      const [bridged, ours, nats] = [p50("bridged"), p50("xpcbus"), p50("nats")];
      const round = (us: number): number => Math.round(us * 100) / 100;
      const addedP50Us = bridged !== undefined && ours !== undefined && nats !== undefined ? { overXpcbus: round(bridged - ours), overNats: round(bridged - nats) } : undefined;
      return { scenario: "bridge", throughput, latency, addedP50Us };
    } finally {
      await topology.stop();
    }
  } finally {
    dir.remove();
  }
}
