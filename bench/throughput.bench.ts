// Scenario: 1 publisher -> 1 subscriber through xpcbus as fast as the
// publisher can go (it waits only for its socket to drain), 64 B and 4 KiB
// payloads: messages per second at the subscriber, and CPU per message of
// the broker and both clients.

import { join } from "node:path";
import { cpuMs, roundMs } from "./support/cpu.js";
import { clientScript, scratchDir, spawnNode, startBroker } from "./support/processes.js";

export interface ThroughputRow {
  payloadBytes: number;
  messages: number;
  messagesPerSecond: number;
  cpuUsPerMessage: number;
  brokerCpuMs: number;
}

export async function run(options: { messages: number; payloads: number[] }): Promise<{ scenario: "throughput"; rows: ThroughputRow[] }> {
  const dir = scratchDir();
  const rows: ThroughputRow[] = [];
  try {
    for (const payloadBytes of options.payloads) {
      const socket = join(dir.path, `tp-${payloadBytes}.sock`);
      const broker = await startBroker(socket);
      const sub = spawnNode(clientScript("push-subscriber"), [socket, "bench.tp", String(options.messages)]);
      await sub.line("ready");
      const brokerStart = cpuMs(broker.pid);
      // A window of about 1 MiB in flight, well under the broker's 8 MiB per-peer bound.
      const window = Math.max(16, Math.floor((1 << 20) / (payloadBytes + 64)));
      const pub = spawnNode(clientScript("push-publisher"), [socket, "bench.tp", String(options.messages), String(payloadBytes), "0", String(window)]);
      const [s, p] = await Promise.all([
        sub.result<{ cpuMs: number; firstNs: string; lastNs: string }>(),
        pub.result<{ cpuMs: number }>(),
      ]);
      const brokerCpuMs = roundMs(cpuMs(broker.pid) - brokerStart);
      await broker.stop();
      const seconds = Number(BigInt(s.lastNs) - BigInt(s.firstNs)) / 1e9;
      rows.push({
        payloadBytes,
        messages: options.messages,
        messagesPerSecond: Math.round(options.messages / Math.max(seconds, 1e-6)),
        cpuUsPerMessage: Math.round(((brokerCpuMs + s.cpuMs + p.cpuMs) * 1000) / options.messages * 10) / 10,
        brokerCpuMs,
      });
    }
    return { scenario: "throughput", rows };
  } finally {
    dir.remove();
  }
}
