// Scenario: 1 publisher → 1 subscriber as fast as it goes, through xpcbus and
// each peer that is installed, in the same run and with the same harness:
// the burst's (burst.bench.ts), with one subscriber process and a window of
// about 1 MiB in flight. Messages per second at the subscriber and CPU per
// message, broker + both clients, read from /proc for every process alike,
// counted after a warm-up of a fifth of the messages (the same for every
// system: each broker and client library at its steady state).

import { burstOnce, type BurstRow } from "./burst.bench.js";
import { scratchDir } from "./support/processes.js";
import { availableSystems, SYSTEMS, type SystemName } from "./support/systems.js";

/** What one 1 → 1 run measures (here and in store.bench.ts). */
export interface OneToOneFigures {
  /** Messages that arrived. */
  delivered: number;
  messagesPerSecond: number;
  cpuUsPerMessage: number;
  brokerCpuMs: number;
  publisherCpuMs: number;
  subscriberCpuMs: number;
}

/** A burst row with one subscriber, as a 1 → 1 figure. */
export function oneToOneFigures(row: Pick<BurstRow, "delivered" | "deliveriesPerSecond" | "cpuUsPerDelivery" | "brokerCpuMs" | "publisherCpuMs" | "subscribersCpuMs">): OneToOneFigures {
  return {
    delivered: row.delivered,
    messagesPerSecond: row.deliveriesPerSecond,
    cpuUsPerMessage: row.cpuUsPerDelivery,
    brokerCpuMs: row.brokerCpuMs,
    publisherCpuMs: row.publisherCpuMs,
    subscriberCpuMs: row.subscribersCpuMs,
  };
}

export interface ThroughputRow extends OneToOneFigures {
  system: SystemName;
  payloadBytes: number;
  messages: number;
  /** The first of them, not counted. */
  warmup: number;
}

export interface ThroughputResult {
  scenario: "throughput";
  rows: ThroughputRow[];
  skipped: Array<{ system: SystemName; reason: string }>;
}

export async function run(options: {
  /** Per run at small payloads; a quarter as many above 1 KiB. */
  messages: number;
  payloads: number[];
  systems?: SystemName[];
  progress?: (line: string) => void;
}): Promise<ThroughputResult> {
  const dir = scratchDir();
  const rows: ThroughputRow[] = [];
  const skipped: ThroughputResult["skipped"] = [];
  try {
    const systems = availableSystems("throughput", options.systems ?? SYSTEMS, skipped, options.progress);
    for (const payloadBytes of options.payloads) {
      // About 1 MiB in flight: far under every broker's per-subscriber bound.
      const window = Math.max(16, Math.floor((1 << 20) / (payloadBytes + 64)));
      for (const system of systems) {
        options.progress?.(`throughput: ${system}, ${options.messages} × ${payloadBytes} B`);
        const messages = payloadBytes > 1024 ? Math.ceil(options.messages / 4) : options.messages;
        const row = await burstOnce(system, dir.path, { subscribers: 1, messages, payloadBytes, window, warmup: Math.floor(messages / 5) });
        rows.push({
          system,
          payloadBytes: row.payloadBytes,
          messages: row.messages,
          warmup: Math.floor(row.messages / 5),
          ...oneToOneFigures(row),
        });
      }
    }
    return { scenario: "throughput", rows, skipped };
  } finally {
    dir.remove();
  }
}
