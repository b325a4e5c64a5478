// Floor: ping-pong of `size`-byte messages over a raw Unix socket; one-way
// latency = round trip / 2. What no broker on this machine can beat.
import { createConnection } from "node:net";
import { newHistogram, summarise } from "../support/histogram.js";

const [socket, countText, sizeText, intervalText] = process.argv.slice(2) as [string, string, string, string];
const count = Number(countText);
const size = Math.max(8, Number(sizeText));
const interval = Number(intervalText);
const histogram = newHistogram();
const conn = createConnection({ path: socket });
await new Promise((r) => conn.once("connect", r));
conn.setNoDelay?.(true);
const cpuStart = process.cpuUsage();
let pending = Buffer.alloc(0);
for (let i = 0; i < count; i++) {
  if (interval > 0) await new Promise((r) => setTimeout(r, interval));
  const message = Buffer.alloc(size);
  const sent = process.hrtime.bigint();
  message.writeBigUInt64LE(sent, 0);
  const back = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length >= size) {
        pending = pending.subarray(size);
        conn.off("data", onData);
        resolve();
      }
    };
    conn.on("data", onData);
  });
  conn.write(message);
  await back;
  histogram.recordValue(Number((process.hrtime.bigint() - sent) / 2n));
}
const cpu = process.cpuUsage(cpuStart);
process.stdout.write(`${JSON.stringify({ latency: summarise(histogram), cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
conn.end();
