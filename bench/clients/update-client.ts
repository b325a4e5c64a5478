// Benchmark client for update delivery: learns of a subject's new values by
// polling (`get` every intervalMs), push (subscribe), notify (watch, wake
// only) or notify-then-fetch (watch + get). Records when it first had each
// sequence number; prints and resets the records at each "dump" on stdin,
// and prints the newest number seen at each "last".
import { createInterface } from "node:readline";
import { connect } from "../../client-sdk/index.js";

const [socket, subject, mode, intervalText] = process.argv.slice(2) as [string, string, string, string];
const client = await connect({ socket, name: `bench-client-${mode}`, reconnect: false });
let records: Array<[number, string]> = [];
let last = 0;
const saw = (seq: number): void => {
  if (seq <= last) return;
  last = seq;
  records.push([seq, String(process.hrtime.bigint())]);
};

if (mode === "poll") {
  const interval = Number(intervalText);
  const poll = async (): Promise<void> => {
    const got = await client.get(subject);
    if (got.found) saw(got.seq);
  };
  setInterval(() => void poll(), interval);
} else if (mode === "push") {
  await client.subscribe(subject, { callback: (m) => saw(m.seq) });
} else if (mode === "notify") {
  await client.watch(subject, { callback: (e) => saw(e.seq) });
} else if (mode === "notify-fetch") {
  await client.watch(subject, { fetch: true, callback: (e) => e.valueSeq !== undefined && saw(e.valueSeq) });
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  // "last": the newest sequence number seen so far, records kept (the scenario asks while it waits for stragglers).
  if (line === "last") process.stdout.write(`${JSON.stringify({ last })}\n`);
  if (line !== "dump") continue;
  process.stdout.write(`${JSON.stringify({ records, last })}\n`);
  records = [];
}
await client.close();
process.exit(0);
