// Benchmark publisher: `count` publishes of `size` bytes, one every
// `intervalMs`, each stamped with its send time in its first 8 bytes. With
// `syncEvery` > 0 it waits, every that many messages, for the subscriber to
// answer a request on `<subject>.sync`: an end-to-end window, so a publisher
// running flat out is paced by the subscriber instead of being cut off as a
// slow consumer's source.

import { connect } from "../../client-sdk/index.js";

const [socket, subject, countText, sizeText, intervalText, syncText] = process.argv.slice(2) as [string, string, string, string, string, string?];
const syncEvery = Number(syncText ?? 0);
const count = Number(countText);
const interval = Number(intervalText);
const client = await connect({ socket, name: "bench-pub", reconnect: false });
const payload = Buffer.alloc(Math.max(8, Number(sizeText)));
const cpuStart = process.cpuUsage();
for (let i = 0; i < count; i++) {
  if (interval > 0) await new Promise((r) => setTimeout(r, interval));
  payload.writeBigUInt64LE(process.hrtime.bigint(), 0);
  // The SDK frames the payload before returning, so reusing the buffer is safe.
  await client.publish(subject, payload, { ack: false });
  if (syncEvery > 0 && (i + 1) % syncEvery === 0) await client.request(`${subject}.sync`, null, { timeoutMs: 30_000 });
}
await client.flush();
const cpu = process.cpuUsage(cpuStart);
process.stdout.write(`${JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
await client.close();
