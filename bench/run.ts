// `npm run bench`: runs the scenarios, prints a Markdown table, and writes
// the raw numbers (with the machine they came from) to bench/results/.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { DIST } from "./support/processes.js";
import { run as pushLatency, type PushLatencyResult } from "./push-latency.bench.js";
import { run as notifyScenario, type NotifyResult } from "./notify.bench.js";

const full = process.argv.includes("--full");
const onlyIndex = process.argv.indexOf("--only");
const only = onlyIndex > 0 ? process.argv[onlyIndex + 1] : undefined;
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

function notifyTable(r: NotifyResult): string {
  return [
    `Notify (Linux table + futex): broker time per post, ns (mean of 2000 posts; a publish nobody watches: ${r.unwatchedNsPerPost} ns):`,
    "",
    "| watchers | only checking | asleep on the slot |",
    "|---|---|---|",
    ...r.postCost.map((row) => `| ${row.watchers} | ${row.checkOnlyNsPerPost} | ${row.sleepingNsPerPost} |`),
    "",
    "Wake-up latency, publish → watcher callback (µs):",
    "",
    "| watching connections | p50 | p90 | p99 | max | wake-ups |",
    "|---|---|---|---|---|---|",
    ...r.wakeLatency.map((w) => `| ${w.watchers} | ${w.latency.p50Us} | ${w.latency.p90Us} | ${w.latency.p99Us} | ${w.latency.maxUs} | ${w.latency.count} |`),
  ].join("\n");
}

const results: unknown[] = [];
const sections: string[] = [];
if (only === undefined || only === "push-latency") {
  process.stderr.write(`bench: push-latency (${messages} messages, ~${Math.ceil((messages * 2 * 1.1) / 1000)} s)\n`);
  const result = await pushLatency({ messages, payloadBytes: 64, intervalMs: 1 });
  results.push(result);
  sections.push(table(result));
}
if ((only === undefined || only === "notify") && process.platform === "linux") {
  process.stderr.write("bench: notify (post cost with 1-1000 watchers, wake-up latency; ~20 s)\n");
  const result = await notifyScenario();
  results.push(result);
  sections.push(notifyTable(result));
}
const machine = { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: process.version };
const markdown = sections.join("\n\n");
process.stdout.write(`${markdown}\n`);
const dir = join(DIST, "..", "bench", "results");
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
writeFileSync(join(dir, `${stamp}.json`), `${JSON.stringify({ machine, results }, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2)}\n`);
writeFileSync(join(dir, "latest.md"), `${markdown}\n\nMachine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}.\n`);
