// Frames made in one event-loop turn leave in one write at the turn's end,
// on both sides (issue 13, protocol/turn-writer.ts). Real daemon
// and real sockets, since what is asserted is how bytes cross them: a
// subscriber that gets N messages published in one tick reads them in a few
// chunks, not N, and in order. Unbatched writes on either side show up as
// many reads (the reader wakes while the writer is still writing), which is
// how these tests fail without batching; nothing here waits on a clock.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeFrame } from "../protocol/index.js";
import { cleanup, spawnClient, startBroker, type BrokerProcess } from "./test-support/harness.js";
import { RawPeer } from "./test-support/raw-peer.js";

// About 40 KiB of frames: one read of a Unix socket (Node reads up to 64 KiB).
const N = 1000;
/** Reads allowed for N messages: the kernel may still split a write, never into hundreds. */
const FEW_READS = 10;

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(() => cleanup());

/** A raw subscriber on `subject` that counts the chunks its socket reads. */
async function countingSubscriber(subject: string): Promise<{ peer: RawPeer; id: number; chunks: () => number }> {
  const peer = await RawPeer.greeted(broker.socket);
  const id = peer.received.find((m) => m["op"] === "welcome")!["peer"] as number;
  peer.send({ op: "sub", sid: 1, subject, id: 1 });
  await peer.next((m) => m["op"] === "ok" && m["id"] === 1);
  let chunks = 0;
  peer.socket.on("data", () => chunks++);
  return { peer, id, chunks: () => chunks };
}

const payloads = (peer: RawPeer): number[] =>
  peer.received.filter((m) => m["op"] === "msg").map((m) => Buffer.from(m["p"] as Uint8Array).readUInt32BE(0));

const numbered = (i: number): Buffer => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(i);
  return p;
};

describe("write batching", () => {
  it("the SDK's publishes made in one tick reach a subscriber in a few reads, in order", async () => {
    const { peer, chunks } = await countingSubscriber("batch.sdk");
    // A separate process, so the broker reads the client's socket while the
    // client is still publishing: unbatched writes would arrive as many reads.
    const publisher = spawnClient(
      broker.socket,
      `const client = await connect({ socket, reconnect: false, name: "batcher" });
      const sent = [];
      for (let i = 0; i < ${N}; i++) {
        const p = Buffer.alloc(4);
        p.writeUInt32BE(i);
        sent.push(client.publish("batch.sdk", p, { ack: false }));
      }
      await Promise.all(sent);
      await client.close();
      emit("published");`,
    );
    try {
      await publisher.event("published");
      await peer.next(() => payloads(peer).length === N);
      expect(payloads(peer)).toEqual(Array.from({ length: N }, (_, i) => i));
      // A write or two from the client, as many reads and writes at the broker.
      expect(chunks()).toBeLessThanOrEqual(FEW_READS);
    } finally {
      peer.destroy();
    }
  });

  it("the broker writes what one input chunk makes for a peer in a write or two, counted once", async () => {
    const { peer, id, chunks } = await countingSubscriber("batch.raw");
    const publisher = await RawPeer.greeted(broker.socket);
    try {
      // N publishes and a ping in one write: the broker reads them together.
      const frames = Array.from({ length: N }, (_, i) => encodeFrame({ op: "pub", subject: "batch.raw", p: numbered(i) }));
      publisher.sendBytes(Buffer.concat([...frames, encodeFrame({ op: "ping", id: 9 })]));
      await publisher.next((m) => m["op"] === "pong" && m["id"] === 9);
      await peer.next(() => payloads(peer).length === N);
      expect(payloads(peer)).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(chunks()).toBeLessThanOrEqual(FEW_READS);
      // Every byte written is counted once in status, corked or not.
      publisher.send({ op: "status", id: 10 });
      const status = (await publisher.next((m) => m["op"] === "ok" && m["id"] === 10))["status"] as { peers: Array<{ id: number; bytesOut: number }> };
      expect(status.peers.find((p) => p.id === id)?.bytesOut).toBe(peer.socket.bytesRead);
    } finally {
      publisher.destroy();
      peer.destroy();
    }
  });

  it("what was answered before a peer's end goes out before the broker's end", async () => {
    const peer = await RawPeer.greeted(broker.socket);
    // N pings then a half-close, in one write: every pong is corked when the
    // broker's end comes, and must still precede it.
    peer.socket.end(Buffer.concat(Array.from({ length: N }, (_, i) => encodeFrame({ op: "ping", id: 100 + i }))));
    await peer.closed;
    const pongs = peer.received.filter((m) => m["op"] === "pong").map((m) => m["id"]);
    expect(pongs).toEqual(Array.from({ length: N }, (_, i) => 100 + i));
  });
});
