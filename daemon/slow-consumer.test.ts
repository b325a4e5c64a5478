// Slow consumers (docs/PROTOCOL.md §9.7): a reader that stops costs the
// others nothing, the broker's memory stays within its bound, under "drop" a
// peer is never cut off whatever the limit, and what it lost adds up exactly.
// The queue's logic in process; the rest with the real daemon and real
// clients (the CLI's `sub` and `pub --stdin`, raw sockets for the stalled one).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/connect.js";
import { encodeFrame, FrameDecoder } from "../client-sdk/protocol/frame-codec.js";
import { run as slowConsumerScenario } from "../bench/slow-consumer.bench.js";
import { OutboundQueue } from "./transports/outbound-queue.js";
import { cleanup, startBroker } from "./test-support/harness.js";
import { RawPeer } from "./test-support/raw-peer.js";

afterEach(cleanup);

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const msg = (n: number, size = 8): Buffer => encodeFrame({ op: "msg", subject: "s", p: Buffer.alloc(size, n % 256), seq: n });
const answer = (id: number): Buffer => encodeFrame({ op: "ok", id });
const dropped = (count: number, total: number): Buffer => encodeFrame({ op: "dropped", count, total });

/** Everything the queue hands out, decoded. */
function drain(queue: OutboundQueue, maxBytes = 1 << 20): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const decoder = new FrameDecoder(1 << 24);
  for (let bytes = queue.take(maxBytes); bytes !== undefined; bytes = queue.take(maxBytes)) {
    expect(decoder.push(Buffer.from(bytes), (m) => out.push(m))).toBeUndefined();
  }
  return out;
}

describe("the outbound queue", () => {
  it("hands out answers and messages in the order they were queued", () => {
    const queue = new OutboundQueue(dropped);
    queue.push(msg(1), true);
    queue.push(answer(10), false);
    queue.push(msg(2), true);
    queue.push(msg(3), true);
    queue.push(answer(11), false);
    const out = drain(queue);
    expect(out.map((m) => m["seq"] ?? `ok${m["id"]}`)).toEqual([1, "ok10", 2, 3, "ok11"]);
    expect(queue.isEmpty).toBe(true);
    expect(queue.messageBytes + queue.answerBytes).toBe(0);
  });

  it("drops only the oldest messages, never answers, and tells of all the drops in one notice first", () => {
    const queue = new OutboundQueue(dropped);
    for (let i = 1; i <= 100; i++) {
      queue.push(msg(i), true);
      if (i % 10 === 0) queue.push(answer(i), false);
    }
    const before = queue.messageBytes;
    const frame = msg(41).length;
    let total = 0;
    // Forty separate drops of one message each: still one notice.
    for (let i = 0; i < 40; i++) total += queue.dropOldest(1);
    expect(total).toBe(40);
    expect(queue.messageBytes).toBe(before - Array.from({ length: 40 }, (_, i) => msg(i + 1).length).reduce((a, b) => a + b));
    expect(queue.dropOldest(frame * 5 + 1)).toBe(6);
    const out = drain(queue);
    expect(out[0]).toEqual({ op: "dropped", count: 46, total: 46 });
    expect(out.filter((m) => m["op"] === "dropped")).toHaveLength(1);
    expect(out.filter((m) => m["op"] === "ok").map((m) => m["id"])).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    const seqs = out.filter((m) => m["op"] === "msg").map((m) => m["seq"]);
    expect(seqs).toEqual(Array.from({ length: 54 }, (_, i) => i + 47));
    // Later drops start a new count; the total runs on.
    queue.push(msg(200), true);
    queue.push(msg(201), true);
    expect(queue.dropOldest(1)).toBe(1);
    expect(drain(queue)).toEqual([{ op: "dropped", count: 1, total: 47 }, expect.objectContaining({ seq: 201 })]);
  });

  it("writes runs of queued frames at once, within the size asked for", () => {
    const queue = new OutboundQueue(dropped);
    for (let i = 0; i < 1000; i++) queue.push(msg(i, 100), true);
    const first = queue.take(4096)!;
    expect(first.length).toBeLessThanOrEqual(4096);
    expect(first.length).toBeGreaterThan(4096 - msg(0, 100).length);
    // A frame larger than the size asked for still goes out, alone.
    const big = new OutboundQueue(dropped);
    big.push(msg(1, 10_000), true);
    expect(big.take(4096)!.length).toBe(msg(1, 10_000).length);
  });

  it("holds in memory about what it counts, even for tiny frames", () => {
    gc();
    const before = process.memoryUsage();
    const queue = new OutboundQueue(dropped);
    const frame = msg(1, 1); // about 30 bytes: one Buffer each would cost ~10x that
    const count = 200_000;
    for (let i = 0; i < count; i++) queue.push(frame, true);
    gc();
    const after = process.memoryUsage();
    const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    expect(queue.messageBytes).toBe(count * frame.length);
    // Frame bytes plus 16 bytes of bookkeeping a frame, with room for slack.
    expect(grown).toBeLessThan(count * (frame.length + 16) * 1.5 + (1 << 20));
    expect(queue.dropOldest(Infinity)).toBe(count);
    expect(queue.messageBytes).toBe(0);
  });
});

describe("a reader that stops", () => {
  it("is never disconnected under drop, even with a small limit, and is told what it lost in one notice", async () => {
    const broker = await startBroker({ args: ["--limit", "maxOutboundBytesPerPeer=65536"] });
    const slow = await RawPeer.greeted(broker.socket);
    slow.send({ op: "sub", sid: 1, subject: "burst", id: 1 });
    await slow.next((m) => m["op"] === "ok" && m["id"] === 1);
    slow.socket.pause();
    const publisher = await connect({ socket: broker.socket, name: "publisher", reconnect: false });
    const total = 3000; // 3 MB: far past the socket buffers and the 64 KiB bound
    const payload = Buffer.alloc(1024, 1);
    for (let i = 0; i < total; i++) await publisher.publish("burst", payload, { ack: i % 100 === 99 });
    await publisher.flush();
    const peer = (await publisher.status()).peers.find((p) => p.name === "raw");
    expect(peer, "the slow reader is still connected").toBeDefined();
    expect(peer!.dropped).toBeGreaterThan(0);
    slow.socket.resume();
    await slow.next((m) => m["op"] === "dropped");
    await slow.next(() => slow.received.filter((m) => m["op"] === "msg").length + peer!.dropped >= total, 10_000);
    const notices = slow.received.filter((m) => m["op"] === "dropped");
    expect(notices).toEqual([{ op: "dropped", count: peer!.dropped, total: peer!.dropped }]);
    expect(slow.received.filter((m) => m["op"] === "msg").length + peer!.dropped).toBe(total);
    await slow.alive(2);
    await publisher.close();
  });

  it("is still disconnected as a slow consumer under --slow-consumer disconnect", async () => {
    const broker = await startBroker({ args: ["--limit", "maxOutboundBytesPerPeer=65536", "--slow-consumer", "disconnect"] });
    const slow = await RawPeer.greeted(broker.socket);
    slow.send({ op: "sub", sid: 1, subject: "burst", id: 1 });
    await slow.next((m) => m["op"] === "ok" && m["id"] === 1);
    slow.socket.pause();
    const publisher = await connect({ socket: broker.socket, name: "publisher", reconnect: false });
    for (let i = 0; i < 3000; i++) await publisher.publish("burst", Buffer.alloc(1024, 1), { ack: i % 100 === 99 });
    await publisher.flush();
    expect((await publisher.status()).peers.some((p) => p.name === "raw")).toBe(false);
    slow.socket.resume();
    await slow.closed;
    expect(slow.received.find((m) => m["op"] === "err")).toMatchObject({ code: "slow_consumer", reason: expect.stringMatching(/over the limit of 65536/) });
    await publisher.close();
  });

  it("stops being read, not cut off, when it sends ops without reading the answers", async () => {
    const broker = await startBroker({ args: ["--limit", "maxOutboundBytesPerPeer=65536"] });
    const greedy = await RawPeer.greeted(broker.socket);
    greedy.socket.pause();
    // 200,000 pings: about 4 MB of pongs it does not read, past MAX_QUEUED_ANSWER_BYTES.
    for (let id = 1; id <= 200_000; id++) greedy.send({ op: "ping", id });
    const other = await connect({ socket: broker.socket, name: "other", reconnect: false });
    await other.flush();
    expect((await other.status()).peers.some((p) => p.name === "raw")).toBe(true);
    greedy.socket.resume();
    const last = await greedy.next((m) => m["op"] === "pong" && m["id"] === 200_000, 20_000);
    expect(last).toBeDefined();
    expect(greedy.received.filter((m) => m["op"] === "pong")).toHaveLength(200_000);
    await other.close();
  }, 30_000);

  it("costs the fast subscriber little and the broker under 150 MB while 50,000 messages of 4 KiB pass (CLI sub stopped with SIGSTOP)", async () => {
    const result = await slowConsumerScenario({ messages: 50_000 });
    // Printed for the record: the figures docs/PROTOCOL.md §9.7 and the bench report quote.
    process.stderr.write(`slow-consumer scenario: ${JSON.stringify(result)}\n`);
    const stopped = result.withStopped.stopped!;
    expect(stopped.caughtUp).toBe(true);
    expect(stopped.messages + stopped.droppedTotal).toBe(50_000);
    expect(stopped.droppedTotal).toBeGreaterThan(0);
    expect(result.withStopped.brokerPeakRssMiB).toBeLessThan(150);
    expect(result.slowdown).toBeLessThan(1.5);
  }, 120_000);
});
