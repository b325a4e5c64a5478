// `npm run bench`: runs the scenarios, prints a Markdown table, and writes
// the raw numbers (with the machine they came from) to bench/results/.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { DIST } from "./support/processes.js";
import { run as pushLatency, type PushLatencyResult } from "./push-latency.bench.js";

const full = process.argv.includes("--full");
const messages = full ? 20_000 : 5_000;

function table(r: PushLatencyResult): string {
  const row = (name: string, l: PushLatencyResult["floor"]["latency"], cpu: string): string =>
    `| ${name} | ${l.p50Us} | ${l.p90Us} | ${l.p99Us} | ${l.maxUs} | ${cpu} |`;
  return [
    `Push latency, 1 publisher → 1 subscriber, ${r.messages} messages of ${r.payloadBytes} B, one every ${r.intervalMs} ms (µs):`,
    "",
    "| path | p50 | p90 | p99 | max | CPU µs/msg (all processes) |",
    "|---|---|---|---|---|---|",
    row("raw Node Unix socket (floor, RTT/2)", r.floor.latency, String(Math.round((r.floor.cpuMs * 1000) / r.messages))),
    row("xpcbus push", r.push.latency, String(r.push.cpuUsPerMessage)),
    "",
    `xpcbus / floor: p50 ${r.ratios.p50VsFloor}×, p99 ${r.ratios.p99VsFloor}×. Broker CPU ${r.push.brokerCpuMs} ms, publisher ${r.push.publisherCpuMs} ms, subscriber ${r.push.subscriberCpuMs} ms.`,
  ].join("\n");
}

process.stderr.write(`bench: push-latency (${messages} messages, ~${Math.ceil((messages * 2 * 1.1) / 1000)} s)\n`);
const result = await pushLatency({ messages, payloadBytes: 64, intervalMs: 1 });
const machine = { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: process.version };
const markdown = table(result);
process.stdout.write(`${markdown}\n`);
const dir = join(DIST, "..", "bench", "results");
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
writeFileSync(join(dir, `${stamp}.json`), `${JSON.stringify({ machine, results: [result] }, null, 2)}\n`);
writeFileSync(join(dir, "latest.md"), `${markdown}\n\nMachine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}.\n`);
