// The SDK against the real daemon: options, errors, reconnect buffering,
// after-close behaviour, slow iterators, drain, and peer identity.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "./connect.js";
import type { Client } from "./client.js";
import { BufferFullError, ClosedError, ConnectionError, InvalidArgumentError, InvalidSubjectError, XpcbusError } from "./errors.js";
import { loadNative } from "../native/index.js";
import { cleanup, spawnClient, startBroker, tempDir } from "../daemon/test-support/harness.js";

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  cleanup();
});

async function client(socket: string, options: Parameters<typeof connect>[0] = {}): Promise<Client> {
  const c = await connect({ socket, ...options });
  clients.push(c);
  return c;
}

function once<T>(c: Client, event: "disconnected" | "reconnected" | "slowConsumer" | "reconnecting"): Promise<T> {
  return new Promise((resolve) => c.once(event, ((info: T) => resolve(info)) as never));
}

describe("connect()", () => {
  it("rejects unknown and ill-typed options by name", async () => {
    await expect(connect({ sokcet: "/x" } as never)).rejects.toThrow(/unknown connect option "sokcet"/);
    await expect(connect({ reconnect: { maxDelay: 5 } as never })).rejects.toThrow(/unknown reconnect option "maxDelay"/);
    await expect(connect({ reconnect: { initialDelayMs: -1 } })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connect({ requestTimeoutMs: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it.skipIf(process.platform === "darwin")("refuses the xpc transport off macOS, naming the unix transport", async () => {
    await expect(connect({ transport: "xpc" })).rejects.toMatchObject({ code: "transport_unavailable", message: expect.stringMatching(/unix/) });
    await expect(connect({ service: "io.xpcbus.broker" })).rejects.toMatchObject({ code: "transport_unavailable" });
    await expect(connect({ transport: "unix", service: "x" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connect({ transport: "carrier-pigeon" as never })).rejects.toThrow(/"unix", "xpc"/);
  });

  it("fails with ConnectionError when no broker listens", async () => {
    const error = await connect({ socket: join(tempDir(), "none.sock") }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as XpcbusError).code).toBe("connection_failed");
  });
});

describe("refused connections", () => {
  it("report the broker's reason, not a bare disconnect", async () => {
    const broker = await startBroker({ args: ["--limit", "maxPeers=1"] });
    await client(broker.socket);
    const error = await connect({ socket: broker.socket }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "BrokerError", code: "too_many_peers" });
  });
});

describe("client calls", () => {
  it("validate subjects and payload size before sending", async () => {
    const broker = await startBroker({ args: ["--limit", "maxPayloadBytes=100"] });
    const c = await client(broker.socket);
    await expect(c.publish("a.*", 1)).rejects.toBeInstanceOf(InvalidSubjectError);
    await expect(c.subscribe("a..b")).rejects.toBeInstanceOf(InvalidSubjectError);
    await expect(c.subscribe("a", { queue: "x.y" })).rejects.toMatchObject({ name: "InvalidQueueError", code: "invalid_queue" });
    await expect(c.publish("a", Buffer.alloc(101))).rejects.toMatchObject({ code: "payload_too_large" });
    expect(c.limits?.maxPayloadBytes).toBe(100);
    await expect(c.publish("a", Buffer.alloc(100))).resolves.toMatchObject({ seq: expect.any(Number) });
  });

  it("all fail with ClosedError after close(), and subscriptions end", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket);
    const sub = await c.subscribe("x");
    const iterating = (async () => {
      const got = [];
      for await (const m of sub) got.push(m);
      return got;
    })();
    await c.close();
    expect(await c.closed()).toBeUndefined();
    expect(await iterating).toEqual([]);
    for (const call of [() => c.publish("x", 1), () => c.subscribe("x"), () => c.get("x"), () => c.request("x"), () => c.status(), () => c.flush()]) {
      await expect(call()).rejects.toBeInstanceOf(ClosedError);
    }
    await c.close(); // idempotent
  });

  it("drops the oldest messages of an iterator that does not keep up, and says so", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket);
    const sub = await c.subscribe("flood", { maxPending: 5 });
    const slow = once<{ dropped: number }>(c, "slowConsumer");
    for (let i = 1; i <= 20; i++) await c.publish("flood", i);
    await slow;
    expect(sub.dropped).toBe(15);
    const it = sub[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.data).toBe(16);
  });

  it("drain() waits for an outstanding request's reply before closing", async () => {
    const broker = await startBroker();
    const responder = spawnClient(
      broker.socket,
      `const c = await connect({ socket }); await c.respond("slow", async (r) => { await new Promise((ok) => setTimeout(ok, 200)); return "late"; }); emit("ready");`,
    );
    await responder.event("ready");
    const c = await client(broker.socket);
    const reply = c.request("slow", 1);
    await c.drain();
    expect((await reply).data).toBe("late");
    expect(c.isClosed).toBe(true);
  });
});

describe("reconnecting", () => {
  it("buffers publishes made while disconnected and sends them once reconnected", async () => {
    const socket = join(tempDir(), "b.sock");
    let broker = await startBroker({ socket });
    const subscriber = spawnClient(
      socket,
      `const c = await connect({ socket, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
c.on("reconnected", () => emit("reconnected"));
const s = await c.subscribe("buffered"); emit("ready");
for await (const m of s) emit("msg", { data: m.data });`,
    );
    await subscriber.event("ready");
    const c = await client(socket, { reconnect: { initialDelayMs: 20, maxDelayMs: 100, bufferBytes: 4096 } });
    const lost = once(c, "disconnected");
    await broker.kill("SIGKILL");
    await lost;
    expect(c.isConnected).toBe(false);
    const acks = [c.publish("buffered", "while-down-1"), c.publish("buffered", "while-down-2")];
    // Past the buffer bound, a publish fails at once instead of growing memory.
    await expect(c.publish("buffered", Buffer.alloc(5000))).rejects.toBeInstanceOf(BufferFullError);
    const back = once(c, "reconnected");
    broker = await startBroker({ socket });
    await back;
    const [a, b] = await Promise.all(acks);
    expect(b!.seq).toBeGreaterThan(a!.seq!);
    await subscriber.event("reconnected");
    // The subscriber resubscribed on its own; the buffered messages reached the
    // broker before or after that, so publish one more to see delivery resume.
    await subscriberSees(c, subscriber, "after");
  });

  it("with reconnect disabled, closes with a ConnectionError when the broker goes", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket, { reconnect: false });
    const pending = c.request("never.answered", 1).catch((e: unknown) => e);
    await broker.kill("SIGKILL");
    const error = await c.closed();
    expect(error).toBeInstanceOf(ConnectionError);
    expect(await pending).toBeInstanceOf(XpcbusError);
  });

  it("fails an in-flight request with `disconnected` when the broker is lost, and keeps the client", async () => {
    const socket = join(tempDir(), "b.sock");
    const broker = await startBroker({ socket });
    const responder = spawnClient(socket, `const c = await connect({ socket, reconnect: false }); await c.subscribe("hang", { queue: "q", callback: () => emit("got") }); emit("ready");`);
    await responder.event("ready");
    const c = await client(socket, { reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    const pending = c.request("hang", 1, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    await responder.event("got");
    await broker.kill("SIGKILL");
    expect(await pending).toMatchObject({ code: "disconnected" });
    expect(c.isClosed).toBe(false);
  });
});

describe("peer identity", () => {
  it("the broker knows this process by pid, uid, gid and executable, through a pidfd", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket, { name: "identity-test" });
    const me = (await c.status()).peers.find((p) => p.name === "identity-test");
    expect(me).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!(), exe: process.execPath });
    expect(["so_peerpidfd", "pidfd_open"]).toContain(me?.identityMethod);
  });

  it("the native call rejects bad descriptors clearly", () => {
    const native = loadNative();
    expect(native.platform).toBe(process.platform === "darwin" ? "apple" : "linux");
    expect(() => native.peerCredentials(-1)).toThrow(TypeError);
    expect(() => native.peerCredentials("3" as never)).toThrow(TypeError);
    expect(() => native.peerCredentials(0x7ffffff0)).toThrow(/cannot read peer credentials/);
  });
});

/** Publishes `marker` until the subscriber process reports it (it may still be resubscribing). */
async function subscriberSees(c: Client, subscriber: ReturnType<typeof spawnClient>, marker: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await c.publish("buffered", marker);
    const seen = await subscriber.event("msg", (e) => e["data"] === marker, 200).then(() => true, () => false);
    if (seen) return;
  }
  throw new Error(`the subscriber never received "${marker}"`);
}
