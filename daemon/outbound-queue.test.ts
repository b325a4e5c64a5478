// The outbound queue of a stream peer (docs/PROTOCOL.md §9.7), in process:
// order across messages and answers, O(1) drops of the oldest messages, one
// coalesced `dropped` notice, and memory that matches what is counted. The
// same queue under real slow readers: bench/slow-consumer.test.ts.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { encodeFrame, FrameDecoder } from "../protocol/index.js";
import { OutboundQueue } from "./transports/outbound-queue.js";

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
