// What it takes to break the broker: a subscriber that stops reading while
// 100 MB are published, per-uid limits, and a flood of connections that never
// say hello. Real daemon, real client processes, raw sockets for the abusers.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { cleanup, spawnClient, startBroker } from "./test-support/harness.js";
import { RawPeer } from "./test-support/raw-peer.js";

afterEach(cleanup);

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.replace(/\D+/g, "")) * 1024;
}

const MiB = 1024 * 1024;
/**
 * What the broker may keep (heap + buffers, after a collection) while 100 MB
 * pass a reader that never reads: its 8 MiB queue for that peer, the socket
 * high-water marks, and buffer pools (measured: 32–39 MiB in all, the same at
 * 300 MB, so it does not grow with the volume). Unbounded, it would keep the
 * whole 100 MB backlog.
 */
const RETAINED_GROWTH_BOUND = 48 * MiB;
/** RSS may grow more: the allocator keeps the pages the flood's garbage used (measured: 63–68 MiB). */
const RSS_GROWTH_BOUND = 96 * MiB;

async function flood(slowConsumer: "drop" | "disconnect") {
  // --expose-gc: status then reports heap and buffers after a collection.
  const broker = await startBroker({ args: ["--slow-consumer", slowConsumer], nodeArgs: ["--expose-gc"] });
  const slow = await RawPeer.greeted(broker.socket);
  slow.send({ op: "sub", sid: 1, subject: "flood", id: 1 });
  await slow.next((m) => m["op"] === "ok" && m["id"] === 1);
  slow.socket.pause(); // from here on it reads nothing
  const fast = spawnClient(
    broker.socket,
    `const c = await connect({ socket, name: "fast" });
let n = 0;
await c.subscribe("flood", { callback: () => n++ });
await c.respond("flood.sync", () => n);
emit("ready");`,
  );
  await fast.event("ready");
  const publisher = await connect({ socket: broker.socket, name: "publisher", reconnect: false });
  const payload = Buffer.alloc(64 * 1024, 7);
  const total = 1600; // 100 MiB
  const retained = async (): Promise<number> => {
    const p = (await publisher.status()).process!;
    return p["heapUsed"]! + p["arrayBuffers"]!;
  };
  const baseline = rssBytes(broker.pid);
  let peak = baseline;
  const retainedBaseline = await retained();
  let retainedPeak = retainedBaseline;
  for (let i = 1; i <= total; i++) {
    await publisher.publish("flood", payload, { ack: false });
    // Paced by the fast subscriber (end to end), never by the slow one.
    if (i % 16 === 0) {
      const seen = (await publisher.request("flood.sync", null, { timeoutMs: 30_000 })).data as number;
      expect(seen).toBe(i);
      peak = Math.max(peak, rssBytes(broker.pid));
      if (i % 160 === 0) retainedPeak = Math.max(retainedPeak, await retained());
    }
  }
  return { broker, slow, fast, publisher, baseline, peak, total, retainedGrowth: retainedPeak - retainedBaseline };
}

describe("a subscriber that stops reading", () => {
  it("costs bounded memory while 100 MB are published; the fast subscriber gets everything; the slow one learns what it lost", async () => {
    const { broker, slow, publisher, baseline, peak, total, retainedGrowth } = await flood("drop");
    expect(retainedGrowth).toBeLessThan(RETAINED_GROWTH_BOUND);
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND);
    // The slow reader resumes: among what it gets are `dropped` frames adding up to what it lost.
    slow.socket.resume();
    await publisher.flush();
    const status = await publisher.status();
    const slowPeer = status.peers.find((p) => p.name === "raw")!;
    expect(slowPeer.dropped).toBeGreaterThan(total / 2);
    // One notice, written before what was still queued; then the rest.
    const drops = await slow.next((m) => m["op"] === "dropped" && m["total"] === slowPeer.dropped, 20_000);
    expect(drops["total"]).toBe(slowPeer.dropped);
    const delivered = (): number => slow.received.filter((m) => m["op"] === "msg").length;
    await slow.next(() => delivered() + (drops["total"] as number) >= total, 20_000);
    expect(delivered() + (drops["total"] as number)).toBe(total);
    expect(slow.received.filter((m) => m["op"] === "dropped")).toHaveLength(1);
    await publisher.close();
    expect(broker.child.exitCode).toBeNull();
  }, 120_000);

  it("is disconnected instead when the daemon says --slow-consumer disconnect", async () => {
    const { slow, publisher, baseline, peak, retainedGrowth } = await flood("disconnect");
    expect(retainedGrowth).toBeLessThan(RETAINED_GROWTH_BOUND);
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND);
    slow.socket.resume();
    await slow.closed;
    const status = await publisher.status();
    expect(status.peers.some((p) => p.name === "raw")).toBe(false);
    await publisher.close();
  }, 120_000);
});

describe("limits per uid and hello floods", () => {
  it("refuses a uid's connection past maxPeersPerUid, and serves the others", async () => {
    const broker = await startBroker({ args: ["--limit", "maxPeersPerUid=3"] });
    const peers = await Promise.all([1, 2, 3].map(() => RawPeer.greeted(broker.socket)));
    const refused = await RawPeer.connect(broker.socket);
    expect(await refused.next((m) => m["op"] === "err")).toMatchObject({ code: "too_many_peers", reason: expect.stringMatching(/uid \d+/) });
    await refused.closed;
    for (const [i, p] of peers.entries()) await p.alive(i + 1);
  });

  it("refuses requests past maxPendingRequestsPerPeer with too_many_requests, and keeps the connection", async () => {
    const broker = await startBroker({ args: ["--limit", "maxPendingRequestsPerPeer=2"] });
    const responder = await RawPeer.greeted(broker.socket);
    responder.send({ op: "sub", sid: 1, subject: "slow", queue: "q", id: 1 });
    await responder.next((m) => m["id"] === 1);
    const asker = await RawPeer.greeted(broker.socket);
    for (const id of [10, 11, 12]) asker.send({ op: "req", subject: "slow", id, timeout: 60_000 });
    expect(await asker.errFor(12)).toMatchObject({ code: "too_many_requests" });
    await asker.alive(13);
    // Answering one frees a place.
    const first = await responder.next((m) => m["op"] === "msg");
    responder.send({ op: "pub", subject: first["reply"] as string, p: Buffer.from("done") });
    expect(await asker.next((m) => m["op"] === "ok" && m["id"] === 10)).toMatchObject({ p: Buffer.from("done") });
    asker.send({ op: "req", subject: "slow", id: 14, timeout: 60_000 });
    await responder.next((m) => m["op"] === "msg" && m["reply"] !== first["reply"] && responder.received.filter((x) => x["op"] === "msg").length === 3);
  });

  it("closes hundreds of connections that never say hello, while a good client keeps working", async () => {
    const broker = await startBroker({ args: ["--limit", "helloTimeoutMs=500"] });
    const good = await connect({ socket: broker.socket, name: "good", reconnect: false });
    const sub = await good.subscribe("still.here");
    const silent = await Promise.all(Array.from({ length: 300 }, () => RawPeer.connect(broker.socket)));
    const got = sub[Symbol.asyncIterator]().next();
    await good.publish("still.here", "yes");
    expect((await got).value?.data).toBe("yes");
    await Promise.all(silent.map((p) => p.closed));
    for (const p of silent.slice(0, 5)) expect(p.received[0]).toMatchObject({ op: "err", code: "hello_timeout" });
    const status = await good.status();
    expect(status.peers.map((p) => p.name)).toEqual(["good"]);
    await good.close();
  });
});
