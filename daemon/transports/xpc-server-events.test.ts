// The XPC transport's TypeScript half against a fake native listener, on any
// platform: per-peer order whatever order the listener reports in
// (xpc-peer-events.ts), which reply contexts are kept and which answer goes
// through each (xpc-reply-contexts.ts), and what the transport does for the
// listener's flooded, terminating and refused events. What the addon itself
// does on a Mac (emitting "peer" before activating, the per-peer bound,
// barriers, tags) is type-checked by `npm run check:apple` only.
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { NativeXpcEvent } from "../../native/index.js";
import { Broker } from "../core/index.js";
import type { PeerInbound, PeerLink } from "../core/peer-link.js";
import { MAX_EARLY_EVENTS_PER_PEER } from "./xpc-peer-events.js";
import { MAX_REQUEST_REPLY_CONTEXTS_PER_PEER, XpcReplyContexts } from "./xpc-reply-contexts.js";
import { XpcServerTransport } from "./xpc-server.js";
import { FakeXpcListener as FakeListener, fakeXpcIdentity as identity, fakeXpcNative as fakeNative } from "../test-support/fake-xpc-listener.js";

/** A transport on a broker that only records what it is handed. */
async function recorded(options: { onDrain?: () => void } = {}) {
  const seen: string[] = [];
  const links: PeerLink[] = [];
  const transport = new XpcServerTransport({ service: null, logger: pino({ level: "silent" }), native: fakeNative, ...options });
  await transport.start({
    attach(link: PeerLink): PeerInbound {
      links.push(link);
      seen.push("attach");
      return {
        message: (map) => seen.push(String(map["op"])),
        fault: (code) => seen.push(code),
        ended: () => seen.push("ended"),
      };
    },
  });
  return { transport, listener: FakeListener.last!, seen, links };
}

/** A transport on the real broker core, so answers are the broker's own. */
async function onBroker() {
  const broker = new Broker({ logger: pino({ level: "silent" }) });
  const transport = new XpcServerTransport({ service: null, logger: pino({ level: "silent" }), native: fakeNative });
  await transport.start(broker);
  return { broker, transport, listener: FakeListener.last! };
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

const peerEvent = (peer: number): NativeXpcEvent => ({ kind: "peer", peer, identity: identity(100 + peer) });
const message = (peer: number, op: string, fields: Record<string, unknown> = {}, replyToken?: number): NativeXpcEvent => ({
  kind: "message",
  peer,
  message: { op, ...fields },
  ...(replyToken === undefined ? {} : { replyToken }),
});
const gone = (peer: number): NativeXpcEvent => ({ kind: "gone", peer, reason: "the peer's connection was invalidated" });

describe("XPC peer events, in any order", () => {
  const events = [peerEvent(1), message(1, "hello", { v: 1 }), message(1, "pub"), gone(1)];

  for (const order of permutations(events)) {
    const name = order.map((e) => (e.kind === "message" ? String(e.message!["op"]) : e.kind)).join(", ");
    it(`${name}: attached once, what it sent before its end in order, then ended`, async () => {
      const { transport, listener, seen } = await recorded();
      for (const event of order) listener.emit(event);
      // What the peer sent before its "gone" (in the listener's order) reaches the broker; anything after is stray.
      const sent = order
        .slice(0, order.findIndex((e) => e.kind === "gone"))
        .filter((e) => e.kind === "message")
        .map((e) => String(e.message!["op"]));
      expect(seen).toEqual(["attach", ...sent, "ended"]);
      await transport.drained();
      expect(listener.calls).toEqual([]);
    });
  }

  it("keeps peers apart when their events interleave, each in its own order", async () => {
    const { listener, seen, links } = await recorded();
    listener.emit(message(2, "hello", { v: 1 }));
    listener.emit(peerEvent(1));
    listener.emit(gone(2));
    listener.emit(message(1, "ping"));
    listener.emit(peerEvent(2));
    listener.emit(gone(1));
    expect(seen).toEqual(["attach", "ping", "attach", "hello", "ended", "ended"]);
    expect(links.map((l) => l.identity.pid)).toEqual([101, 102]);
  });

  for (const order of permutations([peerEvent(7), message(7, "hello", { v: 1 }, 70), gone(7)])) {
    const name = order.map((e) => e.kind).join(", ");
    it(`refused by code signing (${name}): err then cancel, never attached, no context left held`, async () => {
      const transport = new XpcServerTransport({
        service: null,
        codeSigningRequirement: "anchor apple",
        logger: pino({ level: "silent" }),
        native: fakeNative,
      });
      const seen: string[] = [];
      await transport.start({ attach: () => (seen.push("attach"), { message: () => {}, fault: () => {}, ended: () => {} }) });
      const listener = FakeListener.last!;
      for (const event of order) listener.emit(event);
      // The peer's reply context is the listener's to free with the peer ("gone"); none is used.
      expect(seen).toEqual([]);
      expect(listener.calls.filter((c) => c.op !== "reply")).toEqual([
        { op: "send", peer: 7, message: { op: "err", code: "code_signing_failed", reason: expect.any(String) } },
        { op: "cancel", peer: 7 },
      ]);
      // Its stray events after all this are dropped, not held as early.
      listener.emit(message(7, "pub"));
      listener.emit(gone(7));
      expect(seen).toEqual([]);
    });
  }

  it("drops a peer whose events pile up before it is announced: cancelled, its contexts handed back", async () => {
    const { listener, seen } = await recorded();
    for (let i = 0; i <= MAX_EARLY_EVENTS_PER_PEER; i++) listener.emit(message(9, "pub", {}, 1000 + i));
    expect(listener.calls.at(-1)).toEqual({ op: "cancel", peer: 9 });
    expect(listener.calls.filter((c) => c.op === "reply")).toHaveLength(MAX_EARLY_EVENTS_PER_PEER + 1);
    expect(listener.contexts.size).toBe(0);
    // Its late "peer" and "gone" change nothing.
    listener.emit(peerEvent(9));
    listener.emit(gone(9));
    expect(seen).toEqual([]);
  });
});

describe("XPC peer events the transport acts on", () => {
  it("flooded: err slow_consumer with the listener's reason, a cancel after it, then the broker sees the end", async () => {
    const { listener, seen } = await recorded();
    listener.emit(peerEvent(1));
    listener.emit({ kind: "flooded", peer: 1, reason: "the peer sent more than 16384 messages or 64 MiB that the broker had not yet read" });
    expect(listener.calls).toEqual([
      {
        op: "send",
        peer: 1,
        message: { op: "err", code: "slow_consumer", reason: "the peer sent more than 16384 messages or 64 MiB that the broker had not yet read" },
      },
      { op: "cancel", peer: 1 },
    ]);
    listener.emit(gone(1));
    expect(seen).toEqual(["attach", "ended"]);
  });

  it("terminating: onDrain once for the job, and each peer told bye shutdown, then cancelled", async () => {
    let drains = 0;
    const { listener } = await recorded({ onDrain: () => drains++ });
    listener.emit(peerEvent(1));
    listener.emit(peerEvent(2));
    listener.emit({ kind: "terminating", peer: 1, reason: "launchd is terminating the broker's job" });
    listener.emit({ kind: "terminating", peer: 2, reason: "launchd is terminating the broker's job" });
    expect(drains).toBe(1);
    expect(listener.calls).toEqual([
      { op: "send", peer: 1, message: { op: "bye", code: "shutdown", reason: "launchd is terminating the broker" } },
      { op: "cancel", peer: 1 },
      { op: "send", peer: 2, message: { op: "bye", code: "shutdown", reason: "launchd is terminating the broker" } },
      { op: "cancel", peer: 2 },
    ]);
  });

  it("fault: the broker is told (bad_frame) and closes the peer", async () => {
    const { listener, seen } = await recorded();
    listener.emit(peerEvent(1));
    listener.emit({ kind: "fault", peer: 1, reason: "an XPC value of a type the protocol does not carry" });
    expect(seen).toEqual(["attach", "bad_frame"]);
  });

  it("close(): every attached peer ends for the broker, drained() resolves, later events are ignored", async () => {
    const { transport, listener, seen } = await recorded();
    listener.emit(peerEvent(1));
    const drained = transport.drained();
    transport.close();
    await drained;
    expect(seen).toEqual(["attach", "ended"]);
    // Events the listener had queued before close are dropped without calling it (it would throw).
    listener.emit(message(1, "pub", {}, 5));
    listener.emit(peerEvent(2));
    expect(seen).toEqual(["attach", "ended"]);
    expect(listener.calls).toEqual([]);
    transport.close();
  });
});

describe("XPC reply contexts (on the broker core)", () => {
  const hello = (peer: number, token?: number) => message(peer, "hello", { v: 1, id: 0 }, token);
  const replies = (listener: FakeListener) => listener.calls.filter((c) => c.op === "reply");
  const sends = (listener: FakeListener) => listener.calls.filter((c) => c.op === "send");

  it("answers hello, ping and sub sent with a reply handler through it: welcome, pong, ok", async () => {
    const { broker, listener } = await onBroker();
    listener.emit(peerEvent(1));
    listener.emit(hello(1, 10));
    listener.emit(message(1, "ping", { id: 2 }, 11));
    listener.emit(message(1, "sub", { subject: "a.b", sid: 1, id: 3 }, 12));
    expect(replies(listener).map((c) => c.op === "reply" && [c.token, c.message?.["op"], c.message?.["id"]])).toEqual([
      [10, "welcome", 0],
      [11, "pong", 2],
      [12, "ok", 3],
    ]);
    expect(sends(listener)).toEqual([]);
    expect(listener.contexts.size).toBe(0);
    broker.close();
  });

  it("hands back at once a context nothing can be matched to: no id, a bad id, an err without id", async () => {
    const { broker, listener } = await onBroker();
    listener.emit(peerEvent(1));
    listener.emit(hello(1));
    listener.emit(message(1, "pub", { subject: "a", p: new Uint8Array(1) }, 20));
    listener.emit(message(1, "ping", { id: -1 }, 21));
    listener.emit(message(1, "ping", {}, 22));
    expect(replies(listener)).toEqual([
      { op: "reply", peer: 1, token: 20, message: null },
      { op: "reply", peer: 1, token: 21, message: null },
      { op: "reply", peer: 1, token: 22, message: null },
    ]);
    // The bad id's err and the id-less pong went to the event handler.
    expect(sends(listener).map((c) => c.op === "send" && c.message["op"])).toEqual(["welcome", "err", "pong"]);
    expect(listener.contexts.size).toBe(0);
    broker.close();
  });

  it("keeps a req's context until the request settles; ops read meanwhile with its id never take it", async () => {
    const { broker, listener } = await onBroker();
    listener.emit(peerEvent(1));
    listener.emit(peerEvent(2));
    listener.emit(hello(1));
    listener.emit(hello(2));
    listener.emit(message(2, "sub", { subject: "svc", sid: 1 }));
    listener.emit(message(1, "req", { subject: "svc", p: new Uint8Array([1]), id: 7 }, 70));
    const request = sends(listener).find((c) => c.peer === 2 && c.op === "send" && c.message["op"] === "msg");
    expect(request).toBeDefined();
    // The same id again, against the protocol's advice (§4): its answers do not take the req's context.
    listener.emit(message(1, "ping", { id: 7 }, 71));
    listener.emit(message(1, "sub", { subject: "x", sid: 9, id: 7 }));
    listener.emit(message(1, "req", { subject: "svc", p: new Uint8Array([2]), id: 7 }, 72));
    expect(replies(listener)).toEqual([
      { op: "reply", peer: 1, token: 71, message: { op: "pong", id: 7 } },
      { op: "reply", peer: 1, token: 72, message: null },
    ]);
    const reply = (request as { message: Record<string, unknown> }).message["reply"];
    listener.emit(message(2, "pub", { subject: reply, p: new Uint8Array([42]) }));
    const answer = replies(listener).find((c) => c.op === "reply" && c.token === 70);
    expect(answer).toMatchObject({ peer: 1, message: { op: "ok", id: 7 } });
    broker.close();
  });

  it("a req refused at once is answered through its context", async () => {
    const { broker, listener } = await onBroker();
    listener.emit(peerEvent(1));
    listener.emit(hello(1));
    listener.emit(message(1, "req", { subject: "nobody", p: new Uint8Array(0), id: 4 }, 40));
    expect(replies(listener)).toEqual([{ op: "reply", peer: 1, token: 40, message: expect.objectContaining({ op: "err", code: "no_responders", id: 4 }) }]);
    expect(listener.contexts.size).toBe(0);
    broker.close();
  });

  it("holds at most MAX_REQUEST_REPLY_CONTEXTS_PER_PEER req contexts; past it a req is answered in the event handler", () => {
    const released: number[] = [];
    const contexts = new XpcReplyContexts((token) => released.push(token));
    for (let id = 0; id < MAX_REQUEST_REPLY_CONTEXTS_PER_PEER; id++) {
      contexts.begin({ op: "req", id }, id + 1);
      contexts.end();
    }
    expect(contexts.pendingRequests).toBe(MAX_REQUEST_REPLY_CONTEXTS_PER_PEER);
    expect(released).toEqual([]);
    contexts.begin({ op: "req", id: 1_000_000 }, 5);
    contexts.end();
    expect(released).toEqual([5]);
    expect(contexts.take({ op: "ok", id: 1_000_000 })).toBeUndefined();
    expect(contexts.take({ op: "ok", id: 3 })).toBe(4);
    expect(contexts.take({ op: "ok", id: 3 })).toBeUndefined();
  });

  it("the peer's gone drops what was held: the listener freed those contexts", async () => {
    const { broker, listener } = await onBroker();
    listener.emit(peerEvent(1));
    listener.emit(peerEvent(2));
    listener.emit(hello(1));
    listener.emit(hello(2));
    listener.emit(message(2, "sub", { subject: "svc", sid: 1 }));
    listener.emit(message(1, "req", { subject: "svc", p: new Uint8Array([1]), id: 8 }, 80));
    listener.emit(gone(1));
    listener.contexts.delete(80); // what the addon does at "gone"
    const before = listener.calls.length;
    const request = sends(listener).find((c) => c.peer === 2 && c.op === "send" && c.message["op"] === "msg") as { message: Record<string, unknown> };
    listener.emit(message(2, "pub", { subject: request.message["reply"], p: new Uint8Array([1]) }));
    expect(listener.calls.slice(before).filter((c) => c.peer === 1)).toEqual([]);
    broker.close();
  });
});
