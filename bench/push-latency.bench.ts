// Scenario: one publisher → one subscriber through the broker, each its own
// process, against the raw Unix-socket floor measured in the same run.
// Latency is publish → delivery in the subscriber (HdrHistogram); CPU is
// user + system of every process over the run.

import { join } from "node:path";
import { cpuMs } from "./support/cpu.js";
import type { LatencySummary } from "./support/histogram.js";
import { clientScript, scratchDir, spawnNode, startBroker } from "./support/processes.js";

export interface PushLatencyResult {
  scenario: "push-latency";
  messages: number;
  payloadBytes: number;
  intervalMs: number;
  push: { latency: LatencySummary; brokerCpuMs: number; publisherCpuMs: number; subscriberCpuMs: number; cpuUsPerMessage: number };
  floor: { latency: LatencySummary; cpuMs: number };
  ratios: { p50VsFloor: number; p99VsFloor: number };
}

export async function run(options: { messages: number; payloadBytes: number; intervalMs: number }): Promise<PushLatencyResult> {
  const dir = scratchDir();
  try {
    const { messages, payloadBytes, intervalMs } = options;
    // Floor first, alone on the machine.
    const floorSocket = join(dir.path, "floor.sock");
    const echo = spawnNode(clientScript("floor-echo"), [floorSocket]);
    await echo.line("ready");
    const pinger = spawnNode(clientScript("floor-pinger"), [floorSocket, String(messages), String(payloadBytes), String(intervalMs)]);
    const floor = await pinger.result<{ latency: LatencySummary; cpuMs: number }>();
    await echo.stop();

    const socket = join(dir.path, "broker.sock");
    const broker = await startBroker(socket);
    const brokerCpuStart = cpuMs(broker.pid);
    const sub = spawnNode(clientScript("push-subscriber"), [socket, "bench.latency", String(messages)]);
    await sub.line("ready");
    const pub = spawnNode(clientScript("push-publisher"), [socket, "bench.latency", String(messages), String(payloadBytes), String(intervalMs)]);
    const [subResult, pubResult] = await Promise.all([
      sub.result<{ latency: LatencySummary; cpuMs: number }>(),
      pub.result<{ cpuMs: number }>(),
    ]);
    const brokerCpuMs = cpuMs(broker.pid) - brokerCpuStart;
    await broker.stop();
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      scenario: "push-latency",
      messages,
      payloadBytes,
      intervalMs,
      push: {
        latency: subResult.latency,
        brokerCpuMs,
        publisherCpuMs: pubResult.cpuMs,
        subscriberCpuMs: subResult.cpuMs,
        cpuUsPerMessage: round(((brokerCpuMs + pubResult.cpuMs + subResult.cpuMs) * 1000) / messages),
      },
      floor,
      ratios: {
        p50VsFloor: round(subResult.latency.p50Us / floor.latency.p50Us),
        p99VsFloor: round(subResult.latency.p99Us / floor.latency.p99Us),
      },
    };
  } finally {
    dir.remove();
  }
}
