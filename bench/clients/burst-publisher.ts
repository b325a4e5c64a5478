// Burst publisher for any of the compared systems: `count` messages of
// `size` bytes (send time in bytes 0..8, index in 8..12), each retained when
// a sixth argument says `retain` (xpcbus only), as fast as the
// harness's window lets it: each number on stdin is how many messages it may
// have published by now; "end" stops it early. Publishes are not awaited one
// by one (Redis's client would otherwise wait a round trip per message), only
// before it waits for more credit. Prints one JSON line when done and exits
// only when stdin closes, so the harness can still read its CPU time.
import { createInterface } from "node:readline";
import { openPublisher, type SystemName } from "../support/systems.js";

const [system, address, subject, countText, sizeText, flag] = process.argv.slice(2) as [SystemName, string, string, string, string, string | undefined];
const count = Number(countText);
const size = Math.max(12, Number(sizeText));
const publisher = await openPublisher(system, address, { retain: flag === "retain" });
let limit = 0;
let ended = false;
let wake: (() => void) | undefined;
let stdinClosed!: () => void;
const closed = new Promise<void>((resolve) => (stdinClosed = resolve));
createInterface({ input: process.stdin })
  .on("line", (line) => {
    if (line === "end") ended = true;
    else limit = Math.max(limit, Number(line));
    wake?.();
  })
  .on("close", () => {
    ended = true;
    wake?.();
    stdinClosed();
  });
process.stdout.write("ready\n");

let firstNs = 0n;
let sent = 0;
while (sent < count && !ended) {
  if (sent >= limit) {
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
    continue;
  }
  const pending: Array<Promise<void>> = [];
  for (; sent < Math.min(limit, count); sent++) {
    // A fresh buffer each: not every client library has copied it when publish() returns.
    const payload = Buffer.alloc(size);
    const now = process.hrtime.bigint();
    if (sent === 0) firstNs = now;
    payload.writeBigUInt64LE(now, 0);
    payload.writeUInt32LE(sent, 8);
    pending.push(publisher.publish(subject, payload));
  }
  await Promise.all(pending);
}
process.stdout.write(`${JSON.stringify({ sent, firstNs: String(firstNs) })}\n`);
await closed;
await publisher.close().catch(() => undefined);
process.exit(0);
