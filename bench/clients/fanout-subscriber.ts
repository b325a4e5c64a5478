// Benchmark subscriber for any of the compared systems: receives `count`
// messages whose first 8 bytes are the publisher's send time and bytes 8..12
// the message index; prints the latency of each index (ns) as one JSON line.
import { createInterface } from "node:readline";

const [system, address, subject, countText] = process.argv.slice(2) as [string, string, string, string];
const count = Number(countText);
const latencies: number[] = new Array(count).fill(-1);
let received = 0;
let finish!: () => void;
const done = new Promise<void>((resolve) => (finish = resolve));

function onPayload(payload: Uint8Array): void {
  const now = process.hrtime.bigint();
  const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const index = buffer.readUInt32LE(8);
  if (index < count && latencies[index] === -1) {
    latencies[index] = Number(now - buffer.readBigUInt64LE(0));
    if (++received === count) finish();
  }
}

let close: () => Promise<void>;
if (system === "xpcbus") {
  const { connect } = await import("../../client-sdk/index.js");
  const client = await connect({ socket: address, name: "bench-client-fanout", reconnect: false });
  await client.subscribe(subject, { callback: (m) => onPayload(m.raw) });
  close = () => client.close();
} else if (system === "redis") {
  const { createClient } = await import("redis");
  const client = createClient({ socket: { host: "127.0.0.1", port: Number(address) } });
  await client.connect();
  await client.subscribe(subject, (message: Buffer) => onPayload(message), true);
  close = async () => void (await client.quit());
} else if (system === "mosquitto") {
  const mqtt = await import("mqtt");
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${address}`);
  client.on("message", (_topic, message) => onPayload(message));
  await client.subscribeAsync(subject.replace(/\./g, "/"), { qos: 0 });
  close = async () => void (await client.endAsync());
} else {
  const nats = await import("nats");
  const nc = await nats.connect({ servers: `127.0.0.1:${address}` });
  nc.subscribe(subject, { callback: (_err, m) => onPayload(m.data) });
  await nc.flush();
  close = async () => void (await nc.close());
}
process.stdout.write("ready\n");
// The harness ends a run early by closing stdin (a system that lost messages).
createInterface({ input: process.stdin }).on("close", () => finish());
await done;
process.stdout.write(`${JSON.stringify({ latencies, received })}\n`, () => {
  void close().finally(() => process.exit(0));
});
