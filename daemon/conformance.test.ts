// One conformance suite for every transport: the protocol's behaviour
// (pub/sub, wildcards, retained values, request/reply, unsubscribe, pruning
// on disconnect, bad input) through the SDK and through raw op maps. Unix
// runs everywhere, against the real daemon; memory runs everywhere, the core
// in this process over the real frame codec with no socket; XPC runs on macOS
// against an anonymous listener in this process (TN3113), so it needs no launchd.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type ConnectOptions, UnixClientTransport, XpcClientTransport } from "../client-sdk/index.js";
import type { Client, ClientConnection, ClientConnectionHandlers } from "../client-sdk/index.js";
import type { NativeXpcObject } from "../native/index.js";
import { Broker, MemoryTransport, XpcServerTransport } from "./index.js";
import { cleanup, startBroker } from "./test-support/harness.js";

interface Bench {
  connect(options?: Partial<ConnectOptions>): Promise<Client>;
  raw(handlers: ClientConnectionHandlers): Promise<ClientConnection>;
  stop(): Promise<void>;
}

interface TransportUnderTest {
  name: string;
  /** Why this transport cannot run here, or false. */
  skip: string | false;
  start(): Promise<Bench>;
}

const transports: TransportUnderTest[] = [
  {
    name: "unix",
    skip: false,
    async start() {
      const broker = await startBroker();
      return {
        connect: (options = {}) => connect({ socket: broker.socket, ...options }),
        raw: (handlers) => new UnixClientTransport(broker.socket).connect(handlers),
        stop: async () => {
          await broker.kill();
          cleanup();
        },
      };
    },
  },
  {
    name: "memory",
    skip: false,
    async start() {
      const broker = new Broker({ logger: pino({ level: "silent" }) });
      const transport = new MemoryTransport();
      await transport.start(broker);
      return {
        connect: (options = {}) => connect({ transport, ...options }),
        raw: (handlers) => transport.connect(handlers),
        stop: async () => {
          broker.close();
          await transport.drained();
          transport.close();
        },
      };
    },
  },
  {
    name: "xpc",
    skip: process.platform === "darwin" ? false : "XPC exists only on macOS; apple-check type-checks that code here",
    async start() {
      const broker = new Broker({ logger: pino({ level: "silent" }) });
      const transport = new XpcServerTransport({ service: null, logger: pino({ level: "silent" }) });
      await transport.start(broker);
      const endpoint: NativeXpcObject = transport.endpoint();
      return {
        connect: (options = {}) => connect({ endpoint, ...options }),
        raw: (handlers) => new XpcClientTransport({ target: endpoint }).connect(handlers),
        stop: async () => {
          broker.close();
          await transport.drained();
          transport.close();
        },
      };
    },
  },
];

/** A raw connection that collects what the broker sends. */
async function rawPeer(bench: Bench): Promise<{ send(op: object): void; next(test: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>; close(): void }> {
  const received: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const connection = await bench.raw({
    message: (map) => {
      received.push(map);
      for (const w of waiters.splice(0)) w();
    },
    closed: () => {
      for (const w of waiters.splice(0)) w();
    },
  });
  return {
    send: (op) => connection.send(op as never),
    close: () => connection.close(),
    next: async (test) => {
      for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
        const found = received.find(test);
        if (found !== undefined) return found;
        await new Promise<void>((r) => {
          const t = setTimeout(r, 100);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      throw new Error(`no matching message; got ${JSON.stringify(received)}`);
    },
  };
}

function collect<T>(iterable: AsyncIterable<T>, count: number): Promise<T[]> {
  return (async () => {
    const out: T[] = [];
    if (count === 0) return out;
    for await (const item of iterable) {
      out.push(item);
      if (out.length >= count) break;
    }
    return out;
  })();
}

// The macOS CI jobs (.github/workflows/ci.yml) set XPCBUS_REQUIRE_XPC=1:
// there a skipped XPC suite is a failure, not a quiet pass.
const xpcRequired = process.env["XPCBUS_REQUIRE_XPC"] === "1";

for (const transport of transports) {
  if (xpcRequired && transport.name === "xpc" && transport.skip !== false) {
    it("the XPC conformance suite runs (XPCBUS_REQUIRE_XPC=1)", () => {
      throw new Error(`the XPC suite would be skipped: ${transport.skip}`);
    });
    continue;
  }
  describe.skipIf(transport.skip !== false)(`conformance: ${transport.name}${transport.skip ? ` (skipped: ${transport.skip})` : ""}`, () => {
    let bench: Bench;
    const clients: Client[] = [];
    const client = async (options: Partial<ConnectOptions> = {}): Promise<Client> => {
      const c = await bench.connect(options);
      clients.push(c);
      return c;
    };
    beforeAll(async () => {
      bench = await transport.start();
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await bench.stop();
    });

    it("delivers publishes to exact and wildcard subscribers, and not to others", async () => {
      const [a, b] = [await client(), await client()];
      const exact = await a.subscribe("c.kitchen.temp");
      const star = await a.subscribe("c.*.temp");
      const rest = await b.subscribe("c.>");
      const other = await b.subscribe("d.>");
      const got = Promise.all([collect(exact, 1), collect(star, 2), collect(rest, 3)]);
      await b.publish("c.kitchen.temp", { v: 1 });
      await b.publish("c.hall.temp", "two");
      await b.publish("c.deep.er.still", Buffer.from([1, 2]));
      const [e, s, r] = await got;
      expect(e.map((m) => m.data)).toEqual([{ v: 1 }]);
      expect(s.map((m) => m.subject)).toEqual(["c.kitchen.temp", "c.hall.temp"]);
      expect(r.map((m) => m.subject)).toEqual(["c.kitchen.temp", "c.hall.temp", "c.deep.er.still"]);
      expect(Buffer.from(r[2]!.data as Uint8Array)).toEqual(Buffer.from([1, 2]));
      expect(other.received).toBe(0);
    });

    it("keeps retained values for get and replay, and clears them", async () => {
      const c = await client();
      const { seq } = await c.publish("r.mode", "dark", { retain: true });
      expect(await c.get("r.mode")).toMatchObject({ found: true, data: "dark", seq });
      expect(await c.get("r.none")).toEqual({ found: false, subject: "r.none", seq: 0 });
      const replayed = await collect(await c.subscribe("r.*", { replay: true }), 1);
      expect(replayed[0]).toMatchObject({ subject: "r.mode", data: "dark", seq });
      await c.publish("r.mode", "", { retain: true });
      expect((await c.get("r.mode")).found).toBe(false);
    });

    it("routes requests to one responder, round-robin in a queue group, with no_responders and timeout", async () => {
      const [r1, r2, asker] = [await client(), await client(), await client()];
      await r1.respond("q.work", () => "r1", { queue: "w" });
      await r2.respond("q.work", () => "r2", { queue: "w" });
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push((await asker.request("q.work", i)).data);
      expect(answers.sort()).toEqual(["r1", "r1", "r2", "r2"]);
      await expect(asker.request("q.nobody", 1)).rejects.toMatchObject({ code: "no_responders" });
      await r1.subscribe("q.silent", { queue: "s", callback: () => {} });
      await expect(asker.request("q.silent", 1, { timeoutMs: 100 })).rejects.toMatchObject({ code: "timeout" });
    });

    it.skipIf(transport.name !== "xpc")("xpc: a broker whose code does not satisfy brokerRequirement is never heard: connect fails with untrusted_broker", async () => {
      // The broker here is this very node process, which Apple did not sign.
      await expect(bench.connect({ brokerRequirement: "anchor apple", reconnect: false })).rejects.toMatchObject({ code: "untrusted_broker" });
    });

    it("stops delivering after unsubscribe", async () => {
      const c = await client();
      const seen: unknown[] = [];
      const sub = await c.subscribe("u.x", { callback: (m) => seen.push(m.data) });
      await c.publish("u.x", 1);
      await c.flush();
      await sub.unsubscribe();
      await c.publish("u.x", 2);
      await c.flush();
      expect(seen).toEqual([1]);
    });

    it("prunes a peer that disconnects: its subscriptions, and requests it was answering", async () => {
      const [gone, asker, observer] = [await client({ name: "leaving" }), await client(), await client()];
      await gone.subscribe("p.rpc", { queue: "svc", callback: () => {} });
      const pending = asker.request("p.rpc", 1, { timeoutMs: 30_000 });
      // Let the request reach the responder, then drop it.
      await asker.flush();
      await gone.flush();
      await gone.close();
      await expect(pending).rejects.toMatchObject({ code: "responder_gone" });
      const status = await observer.status();
      expect(status.peers.some((p) => p.name === "leaving")).toBe(false);
      expect(status.subjects.map((s) => s.subject)).not.toContain("p.rpc");
    });

    it("answers bad input with precise errors and keeps serving the connection", async () => {
      const raw = await rawPeer(bench);
      raw.send({ op: "pub", subject: "a", id: 1 });
      expect(await raw.next((m) => m["id"] === 1)).toMatchObject({ op: "err", code: "hello_required" });
      raw.send({ op: "hello", v: 1, id: 2 });
      await raw.next((m) => m["op"] === "welcome");
      raw.send({ op: "frobnicate", id: 3 });
      raw.send({ op: "sub", sid: "x", subject: "a", id: 4 });
      raw.send({ op: "pub", subject: "a..b", id: 5 });
      raw.send({ op: "sub", sid: 1, subject: "_INBOX.>", id: 6 });
      raw.send({ op: "ping", id: 7 });
      expect(await raw.next((m) => m["id"] === 3)).toMatchObject({ code: "unknown_op" });
      expect(await raw.next((m) => m["id"] === 4)).toMatchObject({ code: "bad_field" });
      expect(await raw.next((m) => m["id"] === 5)).toMatchObject({ code: "invalid_subject" });
      expect(await raw.next((m) => m["id"] === 6)).toMatchObject({ code: "reserved_subject" });
      expect(await raw.next((m) => m["id"] === 7)).toMatchObject({ op: "pong" });
      raw.close();
    });
  });
}
