// Scenario: xpcbus against the established brokers, in the same run, with
// the same payloads and process counts: 1 publisher -> 1 subscriber process
// (one-way latency), and one publish -> 100 subscriber processes (latency of
// the last subscriber to get it, CPU per delivery). Subscribers are separate
// processes; the publisher is this process. The first `warmup` messages
// (the same count for every system) let each broker and client library reach
// its steady state: they are sent and received like the others, but neither
// their latency nor the CPU spent on them is counted.

import { cpuMs, cpuMsOf, roundMs } from "./support/cpu.js";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { clientScript, scratchDir, sleep, spawnNode, type Spawned } from "./support/processes.js";
import { openPublisher, startSystem, SYSTEMS, availableSystems, type SystemName } from "./support/systems.js";

export interface CompareRow {
  system: SystemName;
  subscribers: number;
  messages: number;
  /** Messages sent before these and not counted. */
  warmup: number;
  payloadBytes: number;
  /** One subscriber: one-way latency. Many: the last subscriber's latency per message. */
  latency: LatencySummary;
  /** Deliveries that never arrived within the run (0 when nothing was lost). */
  missing: number;
  serverCpuMs: number;
  subscribersCpuMs: number;
  cpuUsPerDelivery: number;
}

export interface CompareResult {
  scenario: "compare";
  rows: CompareRow[];
  skipped: Array<{ system: SystemName; reason: string }>;
}


async function once(system: SystemName, dir: string, subscribers: number, messages: number, spacingMs: number, payloadBytes: number, warmup: number): Promise<CompareRow> {
  const total = warmup + messages;
  const server = await startSystem(system, dir);
  const subject = "bench.fanout";
  const subs: Spawned[] = [];
  try {
    for (let i = 0; i < subscribers; i++) subs.push(spawnNode(clientScript("fanout-subscriber"), [system, server.address, subject, String(total)]));
    await Promise.all(subs.map((s) => s.line("ready")));
    const publisher = await openPublisher(system, server.address);
    await sleep(100); // subscriptions are acknowledged; let the servers settle
    const pids = subs.map((s) => s.child.pid!);
    const payload = Buffer.alloc(Math.max(12, payloadBytes));
    let cpuStart = { server: cpuMs(server.pid), subs: cpuMsOf(pids) };
    for (let i = 0; i < total; i++) {
      await sleep(spacingMs);
      if (i === warmup) cpuStart = { server: cpuMs(server.pid), subs: cpuMsOf(pids) };
      payload.writeBigUInt64LE(process.hrtime.bigint(), 0);
      payload.writeUInt32LE(i, 8);
      await publisher.publish(subject, payload);
    }
    // Give stragglers a bounded time, then ask everyone for what they have.
    // Subscribers stay alive after their result line until stdin closes, so
    // their CPU can still be read below.
    const results = await Promise.race([
      Promise.all(subs.map((s) => s.result<{ latencies: number[]; received: number }>())),
      sleep(5000 + spacingMs * 10).then(() => null),
    ]);
    const final = results ?? (await Promise.all(subs.map((s) => (s.child.stdin!.write("finish\n"), s.result<{ latencies: number[]; received: number }>()))));
    const cpuEnd = { server: cpuMs(server.pid), subs: cpuMsOf(pids) };
    await publisher.close();
    const histogram = newHistogram();
    let missing = 0;
    for (let i = warmup; i < total; i++) {
      let worst = -1;
      for (const r of final) {
        const latency = r.latencies[i] ?? -1;
        if (latency < 0) missing++;
        else worst = Math.max(worst, latency);
      }
      if (worst >= 0) histogram.recordValue(Math.max(1, worst));
    }
    const serverCpuMs = roundMs(cpuEnd.server - cpuStart.server);
    const subscribersCpuMs = roundMs(cpuEnd.subs - cpuStart.subs);
    return {
      system,
      subscribers,
      messages,
      warmup,
      payloadBytes: payload.length,
      latency: summarise(histogram),
      missing,
      serverCpuMs,
      subscribersCpuMs,
      cpuUsPerDelivery: Math.round(((serverCpuMs + subscribersCpuMs) * 1000) / (messages * subscribers) * 10) / 10,
    };
  } finally {
    await Promise.all(
      subs.map(async (s) => {
        s.child.stdin!.end();
        await s.stop();
      }),
    );
    await server.stop();
  }
}

export async function run(options: {
  systems?: SystemName[];
  single: { messages: number; spacingMs: number };
  fanout: { subscribers: number; messages: number; spacingMs: number };
  payloadBytes: number;
  /** Messages sent first and not counted, per case (default: a tenth of its messages). */
  warmup?: { single: number; fanout: number };
  progress?: (line: string) => void;
}): Promise<CompareResult> {
  const dir = scratchDir();
  const rows: CompareRow[] = [];
  const skipped: CompareResult["skipped"] = [];
  try {
    for (const system of availableSystems("compare", options.systems ?? SYSTEMS, skipped, options.progress)) {
      options.progress?.(`compare: ${system}, 1 subscriber`);
      const warmup = options.warmup ?? { single: Math.ceil(options.single.messages / 10), fanout: Math.ceil(options.fanout.messages / 10) };
      rows.push(await once(system, dir.path, 1, options.single.messages, options.single.spacingMs, options.payloadBytes, warmup.single));
      options.progress?.(`compare: ${system}, ${options.fanout.subscribers} subscribers`);
      rows.push(await once(system, dir.path, options.fanout.subscribers, options.fanout.messages, options.fanout.spacingMs, options.payloadBytes, warmup.fanout));
    }
    return { scenario: "compare", rows, skipped };
  } finally {
    dir.remove();
  }
}
