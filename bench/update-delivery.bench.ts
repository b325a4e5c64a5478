// Scenario: how N client processes learn that a subject changed, by polling,
// push, notify and notify-then-fetch, while a publisher updates it at a fixed
// rate. Latency is publish -> the moment each client has the new sequence
// number (for polling that is staleness); CPU is broker + all clients over
// the window; frames and bytes per update come from the broker's counters;
// idle cost is the same window with no updates at all.

import { join } from "node:path";
import { connect, type Client } from "../client-sdk/index.js";
import { cpuMs, cpuMsOf as cpuOf, roundMs } from "./support/cpu.js";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { clientScript, scratchDir, sleep, spawnNode, startBroker, type Spawned } from "./support/processes.js";

export interface Mode {
  name: string;
  mode: "poll" | "push" | "notify" | "notify-fetch";
  intervalMs?: number;
}

export const MODES: Mode[] = [
  { name: "poll 10 ms", mode: "poll", intervalMs: 10 },
  { name: "poll 100 ms", mode: "poll", intervalMs: 100 },
  { name: "poll 1000 ms", mode: "poll", intervalMs: 1000 },
  { name: "push", mode: "push" },
  { name: "notify", mode: "notify" },
  { name: "notify+fetch", mode: "notify-fetch" },
];

export interface DeliveryRow {
  mode: string;
  clients: number;
  ratePerSecond: number;
  updates: number;
  latency: LatencySummary;
  /** Every client ended with the last update (push: received every update). */
  complete: boolean;
  brokerCpuMs: number;
  clientsCpuMs: number;
  cpuUsPerUpdate: number;
  framesPerUpdate: number;
  bytesPerUpdate: number;
}

export interface IdleRow {
  mode: string;
  clients: number;
  windowMs: number;
  brokerCpuMs: number;
  clientsCpuMs: number;
  frames: number;
}

export interface UpdateDeliveryResult {
  scenario: "update-delivery";
  rows: DeliveryRow[];
  idle: IdleRow[];
}

interface Counters {
  frames: number;
  bytes: number;
}

async function clientCounters(observer: Client): Promise<Counters> {
  const status = await observer.status();
  let frames = 0;
  let bytes = 0;
  for (const p of status.peers) {
    if (!p.name.startsWith("bench-client")) continue;
    frames += p.msgsIn + p.msgsOut;
    bytes += p.bytesIn + p.bytesOut;
  }
  return { frames, bytes };
}

export interface Rate {
  perSecond: number;
  /** How long the publisher updates at this rate. */
  windowMs: number;
}

export async function run(options: {
  counts: number[];
  rates: Rate[];
  modes?: Mode[];
  idleMs: number;
  /** Skip (mode, clients) pairs, e.g. 100 clients polling every 10 ms in the quick profile. */
  skip?: (mode: Mode, clients: number) => boolean;
  /**
   * One broker for every (mode, clients) cell instead of a fresh one each
   * (the tiny profile, whose figures nobody reads: it saves a process start
   * per cell). Counters and CPU are deltas over each window either way.
   */
  sharedBroker?: boolean;
  /** Margin after the last update (beyond one poll interval) for the slowest client to catch up. Default 200 ms. */
  settleMs?: number;
  /**
   * End the wait for the slowest client as soon as every client has the last
   * update, rather than always waiting one poll interval and the margin (the
   * tiny profile: it shortens the window its CPU figures are taken over).
   */
  settleWhenComplete?: boolean;
  progress?: (line: string) => void;
}): Promise<UpdateDeliveryResult> {
  const dir = scratchDir();
  const rows: DeliveryRow[] = [];
  const idle: IdleRow[] = [];
  const settleMs = options.settleMs ?? 200;
  const shared = options.sharedBroker === true ? await startBroker(join(dir.path, "shared.sock")) : undefined;
  try {
    for (const mode of options.modes ?? MODES) {
      for (const clients of options.counts) {
        if (options.skip?.(mode, clients) === true) continue;
        options.progress?.(`update-delivery: ${mode.name}, ${clients} client(s)`);
        const socket = shared !== undefined ? join(dir.path, "shared.sock") : join(dir.path, `${mode.mode}-${clients}.sock`);
        const broker = shared ?? (await startBroker(socket));
        const subject = "bench.state";
        const publisher = await connect({ socket, name: "bench-publisher", reconnect: false });
        const observer = await connect({ socket, name: "bench-observer", reconnect: false });
        await publisher.publish(subject, Buffer.alloc(64), { retain: true });
        const spawned: Spawned[] = [];
        try {
          for (let i = 0; i < clients; i++) {
            spawned.push(spawnNode(clientScript("update-client"), [socket, subject, mode.mode, String(mode.intervalMs ?? 0)]));
          }
          await Promise.all(spawned.map((s) => s.line("ready")));
          const pids = spawned.map((s) => s.child.pid!);
          await Promise.all(spawned.map((s) => s.ask("dump"))); // drop what start-up recorded
          // Idle: no updates at all.
          const idleStart = { broker: cpuMs(broker.pid), clients: cpuOf(pids), counters: await clientCounters(observer) };
          await sleep(options.idleMs);
          const idleCounters = await clientCounters(observer);
          idle.push({
            mode: mode.name,
            clients,
            windowMs: options.idleMs,
            brokerCpuMs: roundMs(cpuMs(broker.pid) - idleStart.broker),
            clientsCpuMs: roundMs(cpuOf(pids) - idleStart.clients),
            frames: idleCounters.frames - idleStart.counters.frames,
          });
          for (const { perSecond: rate, windowMs } of options.rates) {
            const sentAt = new Map<number, bigint>();
            const start = { broker: cpuMs(broker.pid), clients: cpuOf(pids), counters: await clientCounters(observer) };
            const updates = Math.max(1, Math.round((rate * windowMs) / 1000));
            const payload = Buffer.alloc(64);
            const began = Date.now();
            for (let i = 0; i < updates; i++) {
              const due = began + (i * 1000) / rate;
              const wait = due - Date.now();
              if (wait > 0) await sleep(wait);
              const at = process.hrtime.bigint();
              const { seq } = await publisher.publish(subject, payload, { retain: true });
              sentAt.set(seq!, at);
            }
            // Let the slowest mode catch up: one poll interval and a margin.
            const settleUntil = Date.now() + (mode.intervalMs ?? 0) + settleMs;
            if (options.settleWhenComplete === true) {
              const lastSent = Math.max(...sentAt.keys());
              while (Date.now() < settleUntil) {
                const lasts = await Promise.all(spawned.map((s) => s.ask<{ last: number }>("last")));
                if (lasts.every((l) => l.last === lastSent)) break;
                await sleep(10);
              }
            }
            await sleep(settleUntil - Date.now());
            const end = { broker: cpuMs(broker.pid), clients: cpuOf(pids), counters: await clientCounters(observer) };
            const dumps = await Promise.all(spawned.map((s) => s.ask<{ records: Array<[number, string]>; last: number }>("dump")));
            const lastSeq = Math.max(...sentAt.keys());
            const histogram = newHistogram();
            let complete = true;
            for (const dump of dumps) {
              for (const [seq, at] of dump.records) {
                const sent = sentAt.get(seq);
                if (sent !== undefined) histogram.recordValue(Math.max(1, Number(BigInt(at) - sent)));
              }
              if (dump.last !== lastSeq) complete = false;
              if (mode.mode === "push" && dump.records.length !== updates) complete = false;
            }
            const brokerCpuMs = roundMs(end.broker - start.broker);
            const clientsCpuMs = roundMs(end.clients - start.clients);
            rows.push({
              mode: mode.name,
              clients,
              ratePerSecond: rate,
              updates,
              latency: summarise(histogram),
              complete,
              brokerCpuMs,
              clientsCpuMs,
              cpuUsPerUpdate: Math.round(((brokerCpuMs + clientsCpuMs) * 1000) / updates),
              framesPerUpdate: Math.round(((end.counters.frames - start.counters.frames) / updates) * 100) / 100,
              bytesPerUpdate: Math.round((end.counters.bytes - start.counters.bytes) / updates),
            });
          }
        } finally {
          await Promise.all(
            spawned.map(async (s) => {
              s.child.stdin!.end();
              await s.stop();
            }),
          );
          await publisher.close();
          await observer.close();
          if (broker !== shared) await broker.stop();
        }
      }
    }
    return { scenario: "update-delivery", rows, idle };
  } finally {
    await shared?.stop();
    dir.remove();
  }
}
