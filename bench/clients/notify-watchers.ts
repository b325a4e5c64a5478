// Benchmark watchers: `connections` SDK clients in this process, each
// watching `subject`; records (seq, wake time) per wake-up and prints them
// as one JSON line when stdin closes.
import { connect } from "../../client-sdk/index.js";

const [socket, subject, connectionsText] = process.argv.slice(2) as [string, string, string];
const wakes: Array<[number, string]> = [];
const clients = await Promise.all(Array.from({ length: Number(connectionsText) }, () => connect({ socket, name: "bench-watcher", reconnect: false })));
for (const client of clients) {
  await client.watch(subject, { callback: (e) => wakes.push([e.seq, String(process.hrtime.bigint())]) });
}
process.stdout.write("ready\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await Promise.all(clients.map((c) => c.close()));
  // A pipe takes large writes in parts: exit only once all of it is out.
  process.stdout.write(`${JSON.stringify({ wakes })}\n`, () => process.exit(0));
});
