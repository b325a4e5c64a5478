// Bad input: each gets a precise `err`; framing errors close only the
// offending connection; everyone else keeps receiving; the daemon never exits
// on peer input. Bad ops, limits and refusals are the broker's logic: they run
// over the memory transport (real frames, no socket). Malformed bytes go over
// a raw Unix socket to the real daemon, with a well-behaved pair talking
// throughout, and a smoke test of a bad op there too.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, spawnClient, startBroker, type BrokerProcess, type ClientProcess } from "./test-support/harness.js";
import { startMemoryBroker, type MemoryBroker } from "./test-support/memory-broker.js";
import { frameHeader, RawPeer } from "./test-support/raw-peer.js";

const LIMITS = { maxPayloadBytes: 1024, maxFrameBytes: 4096, helloTimeoutMs: 400, maxSubscriptionsPerPeer: 3 };
let broker: BrokerProcess;
let memory: MemoryBroker;
let steadySub: ClientProcess;
let steadyPub: ClientProcess;

beforeAll(async () => {
  memory = await startMemoryBroker({ limits: LIMITS });
  broker = await startBroker({
    args: ["--limit", "maxPayloadBytes=1024", "--limit", "maxFrameBytes=4096", "--limit", "helloTimeoutMs=400", "--limit", "maxSubscriptionsPerPeer=3"],
  });
  // A well-behaved pair that keeps talking while the bad input flies.
  steadySub = spawnClient(
    broker.socket,
    `const c = await connect({ socket }); const s = await c.subscribe("steady"); emit("ready");
for await (const m of s) emit("msg", { n: m.data });`,
  );
  await steadySub.event("ready");
  steadyPub = spawnClient(
    broker.socket,
    `const c = await connect({ socket }); emit("ready");
let n = 0; let stop = false;
(async () => { for await (const line of commands) if (line === "stop") stop = true; })();
while (!stop) { await c.publish("steady", ++n); await new Promise((r) => setTimeout(r, 5)); }
emit("stopped", { n }); await c.close();`,
  );
  await steadyPub.event("ready");
});

afterAll(async () => {
  await memory.stop();
  cleanup();
});

describe.each([
  ["the real daemon's socket", () => broker.socket],
  ["the memory transport", () => memory.transport],
])("refusing ops before hello (%s)", (_where, target) => {
  it("refuses ops before hello, then serves the same connection after it", async () => {
    const peer = await RawPeer.connect(target());
    peer.send({ op: "sub", sid: 1, subject: "a", id: 7 });
    expect(await peer.errFor(7)).toMatchObject({ code: "hello_required" });
    peer.send({ op: "hello", v: 1, id: 8 });
    expect(await peer.next((m) => m["op"] === "welcome")).toMatchObject({ id: 8, v: 1, limits: { maxPayloadBytes: 1024 } });
    peer.send({ op: "hello", v: 1, id: 9 });
    expect(await peer.errFor(9)).toMatchObject({ code: "already_hello" });
    await peer.alive(10);
    peer.destroy();
  });
});

describe("errors that keep the connection (memory transport)", () => {
  it.each([
    ["unknown op", { op: "frobnicate", id: 1 }, "unknown_op"],
    ["op not text", { op: 5, id: 1 }, "bad_field"],
    ["no op", { id: 1 }, "bad_field"],
    ["pub without subject", { op: "pub", p: Buffer.from("x"), id: 1 }, "bad_field"],
    ["pub subject not text", { op: "pub", subject: 12, id: 1 }, "bad_field"],
    ["pub payload as text", { op: "pub", subject: "a", p: "text", id: 1 }, "bad_field"],
    ["pub unknown encoding", { op: "pub", subject: "a", p: Buffer.from("x"), enc: "utf16", id: 1 }, "bad_field"],
    ["pub retain not bool", { op: "pub", subject: "a", retain: 1, id: 1 }, "bad_field"],
    ["sub sid as text", { op: "sub", sid: "1", subject: "a", id: 1 }, "bad_field"],
    ["sub negative sid", { op: "sub", sid: -1, subject: "a", id: 1 }, "bad_field"],
    ["get without id", { op: "get", subject: "a" }, "bad_field"],
    ["req timeout too long", { op: "req", subject: "a", timeout: 10_000_000, id: 1 }, "bad_field"],
    ["req timeout zero", { op: "req", subject: "a", timeout: 0, id: 1 }, "bad_field"],
    ["pub empty token", { op: "pub", subject: "a..b", id: 1 }, "invalid_subject"],
    ["pub wildcard", { op: "pub", subject: "a.*", id: 1 }, "invalid_subject"],
    ["pub bad character", { op: "pub", subject: "a b", id: 1 }, "invalid_subject"],
    ["sub > not last", { op: "sub", sid: 1, subject: "a.>.b", id: 1 }, "invalid_subject"],
    ["sub too long", { op: "sub", sid: 1, subject: "x".repeat(300), id: 1 }, "invalid_subject"],
    ["sub bad queue", { op: "sub", sid: 1, subject: "a", queue: "a.b", id: 1 }, "invalid_queue"],
    ["sub empty queue", { op: "sub", sid: 1, subject: "a", queue: "", id: 1 }, "invalid_queue"],
    ["sub queue over 64 bytes", { op: "sub", sid: 1, subject: "a", queue: "q".repeat(65), id: 1 }, "invalid_queue"],
    // A queue of the wrong type is a wrong type, as for every field (PROTOCOL.md §2, §5.2).
    ["sub queue null", { op: "sub", sid: 1, subject: "a", queue: null, id: 1 }, "bad_field"],
    ["sub queue number", { op: "sub", sid: 1, subject: "a", queue: 5, id: 1 }, "bad_field"],
    ["sub queue bytes", { op: "sub", sid: 1, subject: "a", queue: Buffer.from("q"), id: 1 }, "bad_field"],
    ["sub on inboxes", { op: "sub", sid: 1, subject: "_INBOX.>", id: 1 }, "reserved_subject"],
    ["sub since negative", { op: "sub", sid: 1, subject: "a", since: -1, id: 1 }, "bad_field"],
    ["sub since text", { op: "sub", sid: 1, subject: "a", since: "5m", id: 1 }, "bad_field"],
    ["history limit 0", { op: "history", subject: "a", limit: 0, id: 1 }, "bad_field"],
    ["history invalid subject", { op: "history", subject: "a..b", id: 1 }, "invalid_subject"],
    ["req on inboxes", { op: "req", subject: "_INBOX.1.2", id: 1 }, "reserved_subject"],
    ["payload over the limit", { op: "pub", subject: "a", p: Buffer.alloc(1025), id: 1 }, "payload_too_large"],
    ["unsub unknown sid", { op: "unsub", sid: 99, id: 1 }, "unknown_sid"],
  ])("%s → %s, connection kept", async (_name, frame, code) => {
    const peer = await memory.greeted();
    peer.send(frame);
    const err = await peer.next((m) => m["op"] === "err");
    expect(err).toMatchObject({ code, reason: expect.any(String) });
    if (typeof (frame as { id?: unknown }).id === "number") expect(err["id"]).toBe(1);
    await peer.alive(2);
    peer.destroy();
  });

  it("refuses null in place of any optional field with bad_field, and reads CBOR undefined as absent", async () => {
    const peer = await memory.greeted();
    const nulls: Array<[string, Record<string, unknown>]> = [
      ["queue", { op: "sub", sid: 1, subject: "n", queue: null }],
      ["replay", { op: "sub", sid: 1, subject: "n", replay: null }],
      ["since", { op: "sub", sid: 1, subject: "n", since: null }],
      ["sinceTime", { op: "sub", sid: 1, subject: "n", sinceTime: null }],
      ["limit", { op: "history", subject: "n", limit: null, id: 9 }],
      ["reply", { op: "pub", subject: "n", reply: null }],
      ["p", { op: "pub", subject: "n", p: null }],
      ["enc", { op: "pub", subject: "n", enc: null }],
      ["retain", { op: "pub", subject: "n", retain: null }],
      ["timeout", { op: "req", subject: "n", timeout: null, id: 1 }],
      ["state", { op: "post", name: "app.n", state: null }],
      ["id", { op: "ping", id: null }],
    ];
    const errs = () => peer.received.filter((m) => m["op"] === "err");
    for (const [i, [field, frame]] of nulls.entries()) {
      peer.send(frame);
      await peer.next(() => errs().length > i);
      expect(errs()[i], field).toMatchObject({ code: "bad_field", reason: expect.stringMatching(new RegExp(`"${field}" .*got null`)) });
    }
    await peer.alive(1);
    expect(errs()).toHaveLength(nulls.length);
    // cbor-x writes undefined as CBOR undefined (0xf7): the broker takes it as the field left out.
    peer.send({ op: "sub", sid: 2, subject: "n", queue: undefined, replay: undefined, id: 2 });
    expect(await peer.next((m) => m["id"] === 2)).toEqual({ op: "ok", id: 2, seq: 0 });
    peer.destroy();
  });

  it("checks req's timeout ≥ 1 with the other fields, before hello_required", async () => {
    const peer = await memory.raw();
    peer.send({ op: "req", subject: "a", timeout: 0, id: 4 });
    expect(await peer.errFor(4)).toMatchObject({ code: "bad_field", subject: "a", reason: expect.stringContaining('"timeout"') });
    peer.send({ op: "req", subject: "a", timeout: 1, id: 5 });
    expect(await peer.errFor(5)).toMatchObject({ code: "hello_required" });
    peer.destroy();
  });

  it("refuses a duplicate sid and subscriptions past the per-peer limit", async () => {
    const peer = await memory.greeted();
    peer.send({ op: "sub", sid: 1, subject: "a", id: 1 });
    peer.send({ op: "sub", sid: 1, subject: "b", id: 2 });
    expect(await peer.errFor(2)).toMatchObject({ code: "duplicate_sid" });
    peer.send({ op: "sub", sid: 2, subject: "b", id: 3 });
    peer.send({ op: "sub", sid: 3, subject: "c", id: 4 });
    peer.send({ op: "sub", sid: 4, subject: "d", id: 5 });
    expect(await peer.errFor(5)).toMatchObject({ code: "too_many_subscriptions" });
    await peer.alive(6);
    peer.destroy();
  });

  it("reports an error without id for a fire-and-forget op, naming the subject", async () => {
    const peer = await memory.greeted();
    peer.send({ op: "pub", subject: "bad..subject" });
    const err = await peer.next((m) => m["op"] === "err");
    expect(err).toMatchObject({ code: "invalid_subject", subject: "bad..subject" });
    expect(err["id"]).toBeUndefined();
    await peer.alive(1);
    peer.destroy();
  });
});

describe("errors that close the connection", () => {
  async function expectClosedWith(peer: RawPeer, code: string): Promise<void> {
    const err = await peer.next((m) => m["op"] === "err");
    expect(err).toMatchObject({ code, reason: expect.any(String) });
    await peer.closed;
  }

  it("a frame that is not CBOR", async () => {
    const peer = await RawPeer.greeted(broker.socket);
    peer.sendBytes(Buffer.concat([frameHeader(3), Buffer.from([0xff, 0xfe, 0xfd])]));
    await expectClosedWith(peer, "bad_frame");
  });

  it("a frame that is CBOR but not a map", async () => {
    const peer = await RawPeer.greeted(broker.socket);
    peer.sendBytes(Buffer.concat([frameHeader(3), Buffer.from([0x82, 0x01, 0x02])]));
    await expectClosedWith(peer, "bad_frame");
  });

  it("a frame with trailing bytes after its map", async () => {
    const peer = await RawPeer.connect(broker.socket);
    peer.sendBytes(Buffer.concat([frameHeader(2), Buffer.from([0xa0, 0x00])]));
    await expectClosedWith(peer, "bad_frame");
  });

  it("a zero-length frame", async () => {
    const peer = await RawPeer.connect(broker.socket);
    peer.sendBytes(frameHeader(0));
    await expectClosedWith(peer, "bad_frame");
  });

  it("a frame over the limit, announced by its header alone", async () => {
    const peer = await RawPeer.greeted(broker.socket);
    peer.sendBytes(frameHeader(4097));
    await expectClosedWith(peer, "frame_too_large");
  });

  it("a truncated frame at end of stream", async () => {
    const peer = await RawPeer.greeted(broker.socket);
    peer.sendBytes(Buffer.concat([frameHeader(100), Buffer.alloc(10)]));
    peer.socket.end();
    await expectClosedWith(peer, "truncated_frame");
  });

  it("an unsupported protocol version", async () => {
    const peer = await RawPeer.connect(broker.socket);
    peer.send({ op: "hello", v: 99, id: 0 });
    await expectClosedWith(peer, "unsupported_version");
  });

  it("no hello in time", async () => {
    const peer = await RawPeer.connect(broker.socket);
    await expectClosedWith(peer, "hello_timeout");
  });

  it("a peer vanishing mid-frame and mid-request", async () => {
    const responder = await RawPeer.greeted(broker.socket);
    responder.send({ op: "sub", sid: 1, subject: "svc", queue: "q", id: 1 });
    await responder.next((m) => m["op"] === "ok" && m["id"] === 1);
    const requester = await RawPeer.greeted(broker.socket);
    requester.send({ op: "req", subject: "svc", p: Buffer.from("hi"), id: 5, timeout: 30_000 });
    await responder.next((m) => m["op"] === "msg");
    responder.sendBytes(Buffer.concat([frameHeader(50), Buffer.alloc(5)]));
    responder.socket.destroy();
    expect(await requester.errFor(5)).toMatchObject({ code: "responder_gone" });
    await requester.alive(6);
  });
});

describe("everyone else", () => {
  it("kept receiving every message throughout, and the daemon is still up", async () => {
    steadyPub.send("stop");
    const { n } = (await steadyPub.event("stopped")) as { n: number };
    expect(n).toBeGreaterThan(10);
    await steadySub.event("msg", (e) => e["n"] === n);
    expect(steadySub.events("msg").map((e) => e["n"])).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(broker.child.exitCode).toBeNull();
  });
});

describe("subject limits set tighter than the protocol's (memory transport)", () => {
  let tight: MemoryBroker;
  beforeAll(async () => {
    tight = await startMemoryBroker({ limits: { maxSubjectBytes: 10, maxSubjectTokens: 2 } });
  });
  afterAll(() => tight.stop());

  it("announces them in welcome and refuses longer or deeper subjects with invalid_subject, naming the broker's limit", async () => {
    const peer = await tight.raw();
    peer.send({ op: "hello", v: 1, id: 0 });
    expect(await peer.next((m) => m["op"] === "welcome")).toMatchObject({ limits: { maxSubjectBytes: 10, maxSubjectTokens: 2 } });
    peer.send({ op: "pub", subject: "a.b.c", id: 1 });
    expect(await peer.errFor(1)).toMatchObject({ code: "invalid_subject", reason: expect.stringMatching(/at most 2 tokens on this broker/) });
    peer.send({ op: "sub", sid: 1, subject: "abcdefghijk", id: 2 });
    expect(await peer.errFor(2)).toMatchObject({ code: "invalid_subject", reason: expect.stringMatching(/at most 10 bytes on this broker/) });
    peer.send({ op: "pub", subject: "a.b", id: 3 });
    expect(await peer.next((m) => m["id"] === 3)).toMatchObject({ op: "ok" });
    peer.destroy();
  });

  // Each op that takes a subject, over the limit and then just within it.
  it.each([
    ["sub, bytes", { op: "sub", sid: 1, subject: "abcdefghijk" }, { op: "sub", sid: 1, subject: "abcdefghij" }],
    ["sub, tokens", { op: "sub", sid: 1, subject: "a.b.>" }, { op: "sub", sid: 1, subject: "a.>" }],
    ["pub, bytes", { op: "pub", subject: "abcdefghijk" }, { op: "pub", subject: "abcdefghij" }],
    ["pub, tokens", { op: "pub", subject: "a.b.c" }, { op: "pub", subject: "a.b" }],
    ["pub reply, bytes", { op: "pub", subject: "a", reply: "abcdefghijk" }, { op: "pub", subject: "a", reply: "abcdefghij" }],
    ["pub reply, tokens", { op: "pub", subject: "a", reply: "r.s.t" }, { op: "pub", subject: "a", reply: "r.s" }],
    ["get, bytes", { op: "get", subject: "abcdefghijk" }, { op: "get", subject: "abcdefghij" }],
    ["get, tokens", { op: "get", subject: "a.b.c" }, { op: "get", subject: "a.b" }],
    ["req, bytes", { op: "req", subject: "abcdefghijk" }, { op: "req", subject: "abcdefghij" }],
    ["req, tokens", { op: "req", subject: "a.b.c" }, { op: "req", subject: "a.b" }],
  ])("enforces them on %s", async (_name, over, within) => {
    const peer = await tight.greeted();
    peer.send({ ...over, id: 7 });
    expect(await peer.errFor(7)).toMatchObject({ code: "invalid_subject", reason: expect.stringMatching(/on this broker/) });
    peer.send({ ...within, id: 8 });
    const answer = await peer.next((m) => m["id"] === 8);
    // Within the limits the op is taken; a req then fails only for want of a responder.
    expect(within.op === "req" ? answer["code"] : answer["op"]).toBe(within.op === "req" ? "no_responders" : "ok");
    peer.destroy();
  });

  it("still lets a responder reply to the broker's inbox, which has three tokens", async () => {
    const responder = await tight.greeted();
    responder.send({ op: "sub", sid: 1, subject: "svc", queue: "q", id: 1 });
    await responder.next((m) => m["op"] === "ok" && m["id"] === 1);
    const requester = await tight.greeted();
    requester.send({ op: "req", subject: "svc", p: Buffer.from("hi"), id: 5 });
    const request = await responder.next((m) => m["op"] === "msg");
    expect(String(request["reply"]).split(".").length).toBe(3);
    responder.send({ op: "pub", subject: request["reply"], p: Buffer.from("yes"), id: 2 });
    expect(await responder.next((m) => m["id"] === 2)).toMatchObject({ op: "ok", delivered: true });
    expect(await requester.next((m) => m["id"] === 5)).toMatchObject({ op: "ok", subject: "svc" });
    responder.destroy();
    requester.destroy();
  });
});

describe("peer limit (memory transport)", () => {
  it("refuses the peer past maxPeers with too_many_peers, and serves the others", async () => {
    const small = await startMemoryBroker({ limits: { maxPeers: 2 } });
    const a = await small.greeted();
    const b = await small.greeted();
    const c = await small.raw();
    expect(await c.next((m) => m["op"] === "err")).toMatchObject({ code: "too_many_peers" });
    await c.closed;
    await a.alive(1);
    await b.alive(1);
    a.destroy();
    // Once the broker has seen a go (b can ask it), the freed place is taken again.
    for (let id = 10; ; id++) {
      b.send({ op: "status", id });
      const ok = await b.next((m) => m["op"] === "ok" && m["id"] === id);
      if ((ok["status"] as { peers: unknown[] }).peers.length === 1) break;
    }
    const d = await small.greeted();
    await d.alive(1);
    await small.stop();
  });
});
