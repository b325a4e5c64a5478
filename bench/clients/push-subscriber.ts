// Benchmark subscriber: receives `count` messages whose first 8 bytes are the
// publisher's send time (CLOCK_MONOTONIC, shared by all processes on Linux),
// records publish → delivery latency, prints one JSON result line.

import { connect } from "../../client-sdk/index.js";
import { newHistogram, summarise } from "../support/histogram.js";

const [socket, subject, countText] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const client = await connect({ socket, name: "bench-sub", reconnect: false });
const histogram = newHistogram();
const cpuStart = process.cpuUsage();
let received = 0;
let firstNs = 0n;
let lastNs = 0n;
const done = new Promise<void>((resolve) => {
  void client.subscribe(subject, {
    callback: (m) => {
      const now = process.hrtime.bigint();
      if (received === 0) firstNs = now;
      lastNs = now;
      const raw = m.raw;
      const sent = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).readBigUInt64LE(0);
      histogram.recordValue(Number(now - sent));
      if (++received === count) resolve();
    },
  })
    // Answered after every message before it: the publisher's end-to-end window (push-publisher.ts).
    .then(() => client.respond(`${subject}.sync`, () => received))
    .then(() => process.stdout.write("ready\n"));
});
await done;
const cpu = process.cpuUsage(cpuStart);
process.stdout.write(
  `${JSON.stringify({ latency: summarise(histogram), cpuMs: (cpu.user + cpu.system) / 1000, firstNs: String(firstNs), lastNs: String(lastNs) })}\n`,
);
await client.close();
