// Scenario: a burst. One publisher process sends `messages` × 64 B as fast as
// a window lets it to `subscribers` subscriber processes, through xpcbus and
// each peer that is installed (NATS with nats.js, Redis, Mosquitto), in the
// same run: deliveries per second (first publish → last delivery at the last
// subscriber) and CPU per delivery, broker + publisher + every subscriber,
// read from /proc for all of them alike.
//
// The window is kept by this harness, not through the broker: each
// subscriber prints a progress line every `reportEvery` messages, and the
// publisher may run at most `window` messages ahead of the slowest one. It is
// the same mechanism for every system (Redis and MQTT have no request/reply
// to build one on) and adds nothing to the broker traffic being measured. It
// keeps every broker's backlog to a subscriber far under its per-subscriber
// bound (xpcbus 8 MiB, Redis's pubsub client-output-buffer 8 MB soft, NATS's
// 64 MB, Mosquitto's 1000 queued messages), so the figure is of delivery,
// not of what a broker does once a subscriber is too slow.

import { cpuMs, cpuMsOf, roundMs } from "./support/cpu.js";
import { clientScript, scratchDir, spawnNode, type Spawned } from "./support/processes.js";
import { startSystem, SYSTEMS, availableSystems, type SystemName } from "./support/systems.js";

export interface BurstRow {
  system: SystemName;
  subscribers: number;
  messages: number;
  payloadBytes: number;
  /** Messages the publisher may be ahead of the slowest subscriber. */
  window: number;
  /** Deliveries that arrived, of messages × subscribers. */
  delivered: number;
  missing: number;
  seconds: number;
  deliveriesPerSecond: number;
  brokerCpuMs: number;
  publisherCpuMs: number;
  subscribersCpuMs: number;
  cpuUsPerDelivery: number;
}

export interface BurstResult {
  scenario: "burst";
  rows: BurstRow[];
  skipped: Array<{ system: SystemName; reason: string }>;
}

export interface BurstOptions {
  systems?: SystemName[];
  subscribers: number;
  messages: number;
  payloadBytes: number;
  window: number;
  /**
   * Messages (per subscriber) that are a warm-up: time and CPU are counted
   * from the moment every subscriber has reported that many, and the
   * deliveries reported by then are left out. Default 0: from the first publish.
   */
  warmup?: number;
  /** A run in which no subscriber reports progress for this long is ended and its losses reported. Default 10 s. */
  stallMs?: number;
  /** More `xpcbus daemon` options (xpcbus only), e.g. `["--store", "memory"]`. Default none: the product's defaults. */
  brokerArgs?: readonly string[];
  /** Every publish retained (xpcbus only). Default false. */
  retain?: boolean;
  progress?: (line: string) => void;
}

/** One burst through `system`, with a server of its own started in `dir` (also the 1 → 1 throughput's runner). */
export async function burstOnce(system: SystemName, dir: string, options: BurstOptions): Promise<BurstRow> {
  const server = await startSystem(system, dir, { brokerArgs: options.brokerArgs });
  try {
    const at = { system, address: server.address };
    const { row } = await burstThrough({ publisher: at, subscriber: at, subject: "bench.burst", serverPids: [server.pid] }, options);
    return { system, ...row };
  } finally {
    await server.stop();
  }
}

/**
 * Where a burst goes: the publisher's broker, the subscribers' broker (the
 * same one, or two ends of a path such as xpcbus → NATS → xpcbus, see
 * bridge.bench.ts) and every server on the way, whose CPU is the broker's.
 */
export interface BurstRoute {
  publisher: { system: SystemName; address: string };
  subscriber: { system: SystemName; address: string };
  subject: string;
  serverPids: number[];
}

/**
 * One burst along `route`, whose servers the caller started and stops. The
 * row is burstOnce's without the system; `serversCpuMs` is each server's
 * share of `brokerCpuMs`, in the order of `route.serverPids`.
 */
export async function burstThrough(route: BurstRoute, options: BurstOptions): Promise<{ row: Omit<BurstRow, "system">; serversCpuMs: number[] }> {
  const { subscribers, messages, window } = options;
  // Four progress lines per window: the publisher gets credit well before it runs dry.
  const reportEvery = Math.max(1, Math.floor(window / 4));
  const { subject } = route;
  const subs: Spawned[] = [];
  let publisher: Spawned | undefined;
  let stall: NodeJS.Timeout | undefined;
  try {
    for (let i = 0; i < subscribers; i++) {
      subs.push(spawnNode(clientScript("burst-subscriber"), [route.subscriber.system, route.subscriber.address, subject, String(messages), String(reportEvery)]));
    }
    await Promise.all(subs.map((s) => s.line("ready")));
    const pub = spawnNode(clientScript("burst-publisher"), [route.publisher.system, route.publisher.address, subject, String(messages), String(options.payloadBytes), ...(options.retain === true ? ["retain"] : [])]);
    publisher = pub;
    await pub.line("ready");

    const chunks = new Array<number>(subscribers).fill(0);
    let granted = Math.min(messages, window);
    const subPids = subs.map((s) => s.child.pid!);
    const readServers = (): number[] => route.serverPids.map((pid) => cpuMs(pid));
    const readCpu = (): { servers: number[]; publisher: number; subs: number } => ({ servers: readServers(), publisher: cpuMs(pub.child.pid!), subs: cpuMsOf(subPids) });
    const warmup = options.warmup ?? 0;
    /** Where counting starts: the first publish, or the end of the warm-up. */
    let mark: { cpu: ReturnType<typeof readCpu>; ns: bigint; delivered: number } | undefined;
    const stalled = (): void => {
      pub.child.stdin!.write("end\n");
      for (const s of subs) s.child.stdin!.write("finish\n");
    };
    const armStall = (): void => {
      clearTimeout(stall);
      stall = setTimeout(stalled, options.stallMs ?? 10_000);
    };
    subs.forEach((s, i) =>
      s.onLine((line) => {
        if (!line.startsWith("progress ")) return;
        chunks[i] = Number(line.slice(9));
        armStall();
        if (mark === undefined && warmup > 0 && Math.min(...chunks) * reportEvery >= warmup) {
          mark = { cpu: readCpu(), ns: process.hrtime.bigint(), delivered: chunks.reduce((sum, c) => sum + c * reportEvery, 0) };
        }
        const credit = Math.min(messages, Math.min(...chunks) * reportEvery + window);
        if (credit > granted) {
          granted = credit;
          pub.child.stdin!.write(`${credit}\n`);
        }
      }),
    );
    const start = readCpu();
    armStall();
    pub.child.stdin!.write(`${granted}\n`);
    const [sent, results] = await Promise.all([
      pub.result<{ sent: number; firstNs: string }>(),
      Promise.all(subs.map((s) => s.result<{ received: number; lastNs: string }>())),
    ]);
    clearTimeout(stall);
    // Every process is still alive (each waits for its stdin to close): read them now.
    const from = mark?.cpu ?? start;
    const serversCpuMs = readServers().map((ms, i) => roundMs(ms - (from.servers[i] ?? 0)));
    const brokerCpuMs = roundMs(serversCpuMs.reduce((sum, ms) => sum + ms, 0));
    const publisherCpuMs = roundMs(cpuMs(pub.child.pid!) - from.publisher);
    const subscribersCpuMs = roundMs(cpuMsOf(subPids) - from.subs);
    const delivered = results.reduce((sum, r) => sum + r.received, 0);
    const lastNs = results.reduce((max, r) => (BigInt(r.lastNs) > max ? BigInt(r.lastNs) : max), 0n);
    const seconds = Number(lastNs - (mark?.ns ?? BigInt(sent.firstNs))) / 1e9;
    const counted = delivered - (mark?.delivered ?? 0);
    const row = {
      subscribers,
      messages,
      payloadBytes: Math.max(12, options.payloadBytes),
      window,
      delivered,
      missing: messages * subscribers - delivered,
      seconds: Math.round(seconds * 1000) / 1000,
      deliveriesPerSecond: Math.round(counted / Math.max(seconds, 1e-6)),
      brokerCpuMs,
      publisherCpuMs,
      subscribersCpuMs,
      cpuUsPerDelivery: Math.round(((brokerCpuMs + publisherCpuMs + subscribersCpuMs) * 1000) / Math.max(1, counted) * 100) / 100,
    };
    return { row, serversCpuMs };
  } finally {
    clearTimeout(stall);
    const all = publisher === undefined ? subs : [publisher, ...subs];
    await Promise.all(
      all.map(async (s) => {
        s.child.stdin!.end();
        await s.stop();
      }),
    );
  }
}

export async function run(options: BurstOptions): Promise<BurstResult> {
  const dir = scratchDir();
  const rows: BurstRow[] = [];
  const skipped: BurstResult["skipped"] = [];
  try {
    for (const system of availableSystems("burst", options.systems ?? SYSTEMS, skipped, options.progress)) {
      options.progress?.(`burst: ${system}, ${options.messages} × ${options.payloadBytes} B to ${options.subscribers} subscribers`);
      rows.push(await burstOnce(system, dir.path, options));
    }
    return { scenario: "burst", rows, skipped };
  } finally {
    dir.remove();
  }
}
