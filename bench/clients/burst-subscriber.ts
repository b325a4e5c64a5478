// Burst subscriber for any of the compared systems: counts `count` messages
// whose bytes 8..12 are the message index, and prints "progress <n>" each
// time the highest index it has seen completes another `reportEvery` (the
// harness's window: delivery is in order, so index i seen means everything
// before it arrived or was lost). Prints one JSON result line once the last
// index arrives, or at a "finish" line on stdin (a system that stalled), and
// exits only when stdin closes, so the harness can still read its CPU time.
import { createInterface } from "node:readline";
import { openSubscriber, type SystemName } from "../support/systems.js";

const [system, address, subject, countText, reportText] = process.argv.slice(2) as [SystemName, string, string, string, string];
const count = Number(countText);
const reportEvery = Number(reportText);
const seen = new Uint8Array(count);
let received = 0;
let reported = 0;
let lastNs = 0n;
let finished = false;
let stdinClosed!: () => void;
const closed = new Promise<void>((resolve) => (stdinClosed = resolve));

function finish(): void {
  if (finished) return;
  finished = true;
  process.stdout.write(`${JSON.stringify({ received, lastNs: String(lastNs) })}\n`);
}

function onPayload(payload: Uint8Array): void {
  if (finished) return;
  lastNs = process.hrtime.bigint();
  const index = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readUInt32LE(8);
  if (index >= count || seen[index] === 1) return;
  seen[index] = 1;
  received++;
  const chunks = index === count - 1 ? Math.ceil(count / reportEvery) : Math.floor((index + 1) / reportEvery);
  if (chunks > reported) {
    reported = chunks;
    process.stdout.write(`progress ${chunks}\n`);
  }
  if (index === count - 1 || received === count) finish();
}

const subscriber = await openSubscriber(system, address, subject, onPayload);
process.stdout.write("ready\n");
createInterface({ input: process.stdin })
  .on("line", (line) => line === "finish" && finish())
  .on("close", () => stdinClosed());
await closed;
finish();
await subscriber.close().catch(() => undefined);
process.exit(0);
