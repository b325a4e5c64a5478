// `npm run soak`: the churn and slow-consumer loads of daemon/churn.test.ts
// and daemon/abuse.test.ts, for longer (SOAK_SECONDS, default 60), printing
// the daemon's open fds, RSS and heap (after a collection) after every round.
// A leak shows as a column that keeps growing.

import { join } from "node:path";
import { connect } from "../client-sdk/index.js";
import { RawPeer } from "../daemon/test-support/raw-peer.js";
import { scratchDir, CLI } from "./support/processes.js";
import { spawn } from "node:child_process";

const seconds = Number(process.env["SOAK_SECONDS"] ?? 60);
const dir = scratchDir();
const socket = join(dir.path, "soak.sock");
const daemon = spawn(process.execPath, ["--expose-gc", CLI, "daemon", "--socket", socket, "--log-level", "error"], { stdio: ["ignore", "ignore", "inherit"] });
const { socketIsLive } = await import("../daemon/index.js");
while (!(await socketIsLive(socket))) await new Promise((r) => setTimeout(r, 50));

const observer = await connect({ socket, name: "soak-observer", reconnect: false });
const mib = (n: number): string => (n / 1048576).toFixed(1);
const report = async (round: number, what: string): Promise<void> => {
  const s = await observer.status();
  const p = s.process!;
  process.stdout.write(
    `${String(round).padStart(4)}  ${what.padEnd(14)} fds ${String(p["fds"]).padStart(4)}  rss ${mib(p["rss"]!).padStart(7)} MiB  heap ${mib(p["heapUsed"]!).padStart(6)} MiB  peers ${s.peers.length}  subjects ${s.subjectCount}\n`,
  );
};

await report(0, "start");
const started = Date.now();
const payload = Buffer.alloc(64 * 1024, 1);
for (let round = 1; (Date.now() - started) / 1000 < seconds; round++) {
  // Churn: 2,000 connect/subscribe/disconnect cycles, 50 at a time.
  for (let n = 0; n < 2000; n += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, k) => {
        const peer = await RawPeer.connect(socket);
        peer.send({ op: "hello", v: 1, id: 0 });
        peer.send({ op: "sub", sid: 1, subject: `soak.${round}.${n + k}`, id: 1 });
        await peer.next((m) => m["id"] === 1);
        peer.socket.destroy();
      }),
    );
  }
  await report(round, "after churn");
  // Slow consumer: 32 MiB past a subscriber that never reads, then it leaves.
  const slow = await RawPeer.greeted(socket);
  slow.send({ op: "sub", sid: 1, subject: "soak.flood", id: 1 });
  await slow.next((m) => m["id"] === 1);
  slow.socket.pause();
  const publisher = await connect({ socket, name: "soak-publisher", reconnect: false });
  for (let i = 0; i < 512; i++) {
    await publisher.publish("soak.flood", payload, { ack: false });
    if (i % 64 === 63) await publisher.flush();
  }
  await report(round, "slow reader");
  slow.socket.destroy();
  await publisher.close();
}
await new Promise((r) => setTimeout(r, 500));
await report(-1, "end");
await observer.close();
daemon.kill("SIGTERM");
dir.remove();
