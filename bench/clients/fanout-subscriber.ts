// Benchmark subscriber for any of the compared systems: receives `count`
// messages whose first 8 bytes are the publisher's send time and bytes 8..12
// the message index; prints the latency of each index (ns) as one JSON line.
// A "finish" line on stdin ends the run early (a system that lost messages).
// It exits only when stdin closes, so the harness can read its CPU time from
// /proc after the result line (a process that exited can no longer be read).
import { createInterface } from "node:readline";
import { openSubscriber, type SystemName } from "../support/systems.js";

const [system, address, subject, countText] = process.argv.slice(2) as [SystemName, string, string, string];
const count = Number(countText);
const latencies: number[] = new Array(count).fill(-1);
let received = 0;
let finish!: () => void;
const done = new Promise<void>((resolve) => (finish = resolve));
let stdinClosed!: () => void;
const closed = new Promise<void>((resolve) => (stdinClosed = resolve));

function onPayload(payload: Uint8Array): void {
  const now = process.hrtime.bigint();
  const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const index = buffer.readUInt32LE(8);
  if (index < count && latencies[index] === -1) {
    latencies[index] = Number(now - buffer.readBigUInt64LE(0));
    if (++received === count) finish();
  }
}

const subscriber = await openSubscriber(system, address, subject, onPayload);
process.stdout.write("ready\n");
createInterface({ input: process.stdin })
  .on("line", (line) => line === "finish" && finish())
  .on("close", () => {
    finish();
    stdinClosed();
  });
await done;
process.stdout.write(`${JSON.stringify({ latencies, received })}\n`);
await closed;
await subscriber.close().catch(() => undefined);
process.exit(0);
