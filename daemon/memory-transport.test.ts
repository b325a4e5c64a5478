// The memory transport itself: frames through the real codec, delivery in a
// later turn and never inside the sender's call, close from either side, and
// everything refused cleanly after close.
import pino from "pino";
import { describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { encodeFrame } from "../protocol/index.js";
import { Broker, MemoryTransport } from "./index.js";
import { frameHeader, RawPeer } from "./test-support/raw-peer.js";

async function started(options: ConstructorParameters<typeof MemoryTransport>[0] = {}, limits = {}) {
  const broker = new Broker({ logger: pino({ level: "silent" }), limits });
  const transport = new MemoryTransport(options);
  await transport.start(broker);
  return { broker, transport };
}

describe("memory transport", () => {
  it("delivers in a later turn, never inside the call that sent, both ways", async () => {
    const { broker, transport } = await started();
    const got: Array<Record<string, unknown>> = [];
    const connection = await transport.connect({ message: (m) => got.push(m), closed: () => {} });
    connection.send({ op: "hello", v: 1, id: 1 });
    // Nothing reached the broker yet: it has the peer (attached at connect), not its hello.
    expect(broker.status().peers[0]?.msgsIn).toBe(0);
    expect(got).toEqual([]);
    const peer = await RawPeer.greeted(transport);
    expect(got.map((m) => m["op"])).toEqual(["welcome"]);
    // The broker's send to a subscriber returns before the subscriber's handler runs.
    connection.send({ op: "sub", sid: 1, subject: "t", id: 2 });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    peer.send({ op: "pub", subject: "t", p: Buffer.from("x"), id: 3 });
    await peer.next((m) => m["id"] === 3);
    await new Promise((r) => setImmediate(r));
    expect(got.filter((m) => m["op"] === "msg")).toHaveLength(1);
    connection.close();
    peer.destroy();
    await transport.drained();
    broker.close();
  });

  it("a client's close is a half-close: what the broker still sends arrives, then the close, and the peer is gone", async () => {
    const { broker, transport } = await started();
    const peer = await RawPeer.greeted(transport);
    peer.send({ op: "ping", id: 7 });
    peer.end();
    await peer.closed;
    expect(peer.received.some((m) => m["op"] === "pong" && m["id"] === 7)).toBe(true);
    await transport.drained();
    expect(broker.peerCount).toBe(0);
    broker.close();
  });

  it("the broker's close says bye to the client, then ends the connection", async () => {
    const { broker, transport } = await started();
    const raw = await RawPeer.greeted(transport);
    const client = await connect({ transport, reconnect: false, name: "bye" });
    broker.close("test over");
    await raw.closed;
    expect(raw.received.at(-1)).toEqual({ op: "bye", code: "shutdown", reason: "test over" });
    // The SDK takes a bye as the broker going away: the close that follows is a disconnect.
    expect(await client.closed()).toMatchObject({ code: "disconnected" });
    await transport.drained();
    expect(transport.connections).toBe(0);
  });

  it("destroy drops the connection at once: the broker detaches the peer and settles what it was answering", async () => {
    const { broker, transport } = await started();
    const responder = await RawPeer.greeted(transport);
    responder.send({ op: "sub", sid: 1, subject: "svc", queue: "q", id: 1 });
    await responder.next((m) => m["id"] === 1);
    const asker = await RawPeer.greeted(transport);
    asker.send({ op: "req", subject: "svc", p: Buffer.from("?"), id: 5, timeout: 30_000 });
    await responder.next((m) => m["op"] === "msg");
    responder.sendBytes(Buffer.concat([frameHeader(50), Buffer.alloc(5)]));
    responder.destroy();
    expect(await asker.errFor(5)).toMatchObject({ code: "responder_gone" });
    await responder.closed;
    expect(broker.peerCount).toBe(1);
    asker.destroy();
    await transport.drained();
    broker.close();
  });

  it("reads bytes with the real decoder: a bad frame, one over the limit, a truncated one at the end", async () => {
    const { broker, transport } = await started({ maxFrameBytes: 64 });
    const bad = await RawPeer.greeted(transport);
    bad.sendBytes(Buffer.concat([frameHeader(3), Buffer.from([0xff, 0xfe, 0xfd])]));
    expect(await bad.next((m) => m["op"] === "err")).toMatchObject({ code: "bad_frame" });
    await bad.closed;
    const large = await RawPeer.greeted(transport);
    large.sendBytes(encodeFrame({ op: "pub", subject: "a", p: Buffer.alloc(100) }));
    expect(await large.next((m) => m["op"] === "err")).toMatchObject({ code: "frame_too_large" });
    await large.closed;
    const cut = await RawPeer.greeted(transport);
    cut.sendBytes(Buffer.concat([frameHeader(40), Buffer.alloc(10)]));
    cut.end();
    expect(await cut.next((m) => m["op"] === "err")).toMatchObject({ code: "truncated_frame" });
    await cut.closed;
    await transport.drained();
    broker.close();
  });

  it("takes the broker's frame limit by default", async () => {
    const { broker, transport } = await started({}, { maxFrameBytes: 2048, maxPayloadBytes: 1024 });
    const peer = await RawPeer.greeted(transport);
    peer.sendBytes(frameHeader(2049));
    expect(await peer.next((m) => m["op"] === "err")).toMatchObject({ code: "frame_too_large" });
    await peer.closed;
    broker.close();
  });

  it("after close: connect is refused, a closed connection's send is false, drained resolves", async () => {
    const { broker, transport } = await started();
    const connection = await transport.connect({ message: () => {}, closed: () => {} });
    connection.close();
    await transport.drained();
    expect(connection.send({ op: "ping", id: 1 })).toBe(false);
    expect(connection.destroyed).toBe(true);
    await transport.stopAccepting();
    await expect(transport.connect({ message: () => {}, closed: () => {} })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(connect({ transport, reconnect: false })).rejects.toMatchObject({ code: "connection_failed" });
    transport.close();
    await transport.drained();
    broker.close();
    const never = new MemoryTransport();
    await expect(never.connect({ message: () => {}, closed: () => {} })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("rejects unknown and ill-typed options by name", () => {
    expect(() => new MemoryTransport({ maxFrameByte: 1 } as never)).toThrow(/unknown memory transport option "maxFrameByte"/);
    expect(() => new MemoryTransport({ maxFrameBytes: 0 })).toThrow(/"maxFrameBytes" must be a positive integer/);
  });

  it("gives peers this process's identity, or the one asked for", async () => {
    const { broker, transport } = await started();
    const me = await connect({ transport, reconnect: false, name: "me" });
    const other = await connect({ transport: transport.as({ pid: 1, uid: 4242, gid: 4242, exe: null, exeVerified: false, method: "test" }), reconnect: false, name: "other" });
    const peers = (await me.status()).peers;
    expect(peers.find((p) => p.name === "me")).toMatchObject({ transport: "memory", pid: process.pid, uid: process.getuid?.() ?? null, exe: process.execPath });
    expect(peers.find((p) => p.name === "other")).toMatchObject({ uid: 4242 });
    await Promise.all([me.close(), other.close()]);
    await transport.drained();
    broker.close();
  });
});
