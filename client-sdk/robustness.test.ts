// The SDK never crashes its host: a respond() handler, subscription or watch
// callback that throws is reported (callbackError) and answered (ResponderError
// at the requester), drain() lets running handlers reply before it closes,
// many unacked publishes share one wait for the socket to drain, and a bad
// queue name is invalid_queue as the broker says. Crashes are only visible
// in real processes, so the clients that might crash are child processes.
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "./connect.js";
import type { Client } from "./client.js";
import { InvalidArgumentError, InvalidQueueError, ResponderError } from "./errors.js";
import { cleanup, eventually, runCli, spawnClient, startBroker, type BrokerProcess, type ClientProcess } from "../daemon/test-support/harness.js";

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  cleanup();
});

async function client(socket: string): Promise<Client> {
  const c = await connect({ socket, reconnect: false, name: "test" });
  clients.push(c);
  return c;
}

/** Reports every callbackError of `c` as {"event":"callbackError", …} on stdout. */
const REPORT_CALLBACK_ERRORS = `c.on("callbackError", (e) => emit("callbackError", { name: e.name, code: e.code, source: e.source, subject: e.subject, cause: e.cause?.message }));`;

/** The process lived through it: still running, and no uncaught exception on stderr. */
async function stillAlive(child: ClientProcess): Promise<void> {
  expect(child.child.exitCode).toBeNull();
  expect(child.err.lines.join("\n")).not.toMatch(/Uncaught|Error: |node:internal/);
}

describe("a respond() handler that fails", () => {
  it("answers the requester at once with a ResponderError carrying its message, and the responder goes on", async () => {
    const broker = await startBroker();
    const responder = spawnClient(
      broker.socket,
      `const c = await connect({ socket, name: "responder" });
${REPORT_CALLBACK_ERRORS}
await c.respond("svc.lookup", async (req) => {
  if (req.data === "throw") throw new Error("no such user: " + req.data);
  if (req.data === "reject") { await Promise.resolve(); throw new TypeError("lookup table missing"); }
  if (req.data === "unsendable") return 10n;
  return "found " + req.data;
});
emit("ready");`,
    );
    await responder.event("ready");
    const c = await client(broker.socket);
    const started = Date.now();
    const thrown = await c.request("svc.lookup", "throw", { timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(thrown).toMatchObject({ code: "responder_error", message: "no such user: throw" });
    expect(thrown).toBeInstanceOf(ResponderError);
    expect(Date.now() - started).toBeLessThan(10_000); // an answer, not the request's timeout
    await expect(c.request("svc.lookup", "reject", { timeoutMs: 20_000 })).rejects.toMatchObject({ name: "ResponderError", message: "lookup table missing" });
    await expect(c.request("svc.lookup", "unsendable", { timeoutMs: 20_000 })).rejects.toMatchObject({ code: "responder_error", message: expect.stringMatching(/JSON|BigInt/) });
    // Still serving.
    expect((await c.request("svc.lookup", "ada")).data).toBe("found ada");
    await responder.event("callbackError", (e) => /BigInt/.test(String(e["cause"])));
    expect(responder.events("callbackError").map((e) => [e["name"], e["code"], e["source"], e["subject"]])).toEqual([
      ["CallbackError", "callback_failed", "responder", "svc.lookup"],
      ["CallbackError", "callback_failed", "responder", "svc.lookup"],
      ["CallbackError", "callback_failed", "responder", "svc.lookup"],
    ]);
    await stillAlive(responder);
  });

  it("with no callbackError listener, writes a warning instead of crashing", async () => {
    const broker = await startBroker();
    const responder = spawnClient(
      broker.socket,
      `const c = await connect({ socket, name: "responder" });
await c.respond("svc.fragile", () => { throw new Error("fragile handler broke"); });
emit("ready");`,
    );
    await responder.event("ready");
    const c = await client(broker.socket);
    await expect(c.request("svc.fragile", 1, { timeoutMs: 20_000 })).rejects.toMatchObject({ code: "responder_error", message: "fragile handler broke" });
    await responder.err.waitFor((l) => l.includes("CallbackError"), 10_000, "the warning");
    expect(responder.err.lines.join("\n")).toMatch(/CallbackError: a responder callback on "svc\.fragile" threw: fragile handler broke/);
    expect(responder.child.exitCode).toBeNull();
    await c.request("svc.fragile", 2, { timeoutMs: 20_000 }).catch(() => {});
    expect(responder.child.exitCode).toBeNull();
  });
});

describe("a subscription or watch callback that throws", () => {
  it("is reported as a callbackError and the subscription keeps delivering", async () => {
    const broker = await startBroker();
    const sub = spawnClient(
      broker.socket,
      `const c = await connect({ socket, name: "sub" });
${REPORT_CALLBACK_ERRORS}
await c.subscribe("feed.*", { callback: (m) => { emit("msg", { data: m.data }); throw new Error("bad message " + m.data); } });
await c.subscribe("feed.async", { callback: async (m) => { await Promise.resolve(); throw new Error("async bad " + m.data); } });
await c.watch("feed.watched", { callback: (e) => { emit("wake", { seq: e.seq }); throw new Error("watch broke"); } });
emit("ready");`,
    );
    await sub.event("ready");
    const c = await client(broker.socket);
    await c.publish("feed.one", 1);
    await c.publish("feed.two", 2);
    await c.publish("feed.async", 3);
    await c.publish("feed.watched", 4);
    await sub.event("msg", (e) => e["data"] === 2);
    await sub.event("callbackError", (e) => e["source"] === "watch");
    await sub.event("callbackError", (e) => e["cause"] === "async bad 3");
    const first = await sub.event("wake");
    await c.publish("feed.watched", 5);
    await sub.event("wake", (e) => (e["seq"] as number) > (first["seq"] as number));
    const errors = sub.events("callbackError");
    expect(errors).toEqual(
      expect.arrayContaining([
        { event: "callbackError", name: "CallbackError", code: "callback_failed", source: "subscription", subject: "feed.*", cause: "bad message 1" },
        { event: "callbackError", name: "CallbackError", code: "callback_failed", source: "subscription", subject: "feed.*", cause: "bad message 2" },
        { event: "callbackError", name: "CallbackError", code: "callback_failed", source: "subscription", subject: "feed.async", cause: "async bad 3" },
        expect.objectContaining({ source: "watch", subject: expect.stringMatching(/\.feed\.watched$/), cause: "watch broke" }),
      ]),
    );
    await stillAlive(sub);
  });
});

describe("drain() with a respond() handler still running", () => {
  /** A responder whose handler waits for "finish" on stdin; "drain <json options>" drains it. */
  function slowResponder(broker: BrokerProcess): ClientProcess {
    return spawnClient(
      broker.socket,
      `const c = await connect({ socket, name: "slow-responder" });
let finish;
const finished = new Promise((resolve) => (finish = resolve));
await c.respond("svc.slow", async (req) => { emit("handling"); await finished; emit("handler-returns"); return "late " + req.data; });
emit("ready");
for await (const line of commands) {
  const [command, arg] = line.split(" ");
  if (command === "drain") c.drain(JSON.parse(arg)).then(() => emit("drained"), (e) => emit("drain-failed", { name: e.name, code: e.code, message: e.message }));
  if (command === "finish") finish();
}`,
    );
  }

  async function responderPeer(observer: Client) {
    return (await observer.status()).peers.find((p) => p.name === "slow-responder");
  }

  it("lets the handler reply before closing, and closes cleanly", async () => {
    const broker = await startBroker();
    const responder = slowResponder(broker);
    await responder.event("ready");
    const c = await client(broker.socket);
    let settled = false;
    const reply = c.request("svc.slow", "answer", { timeoutMs: 20_000 }).then(
      (message) => message,
      (error: unknown) => error,
    );
    void reply.then(() => (settled = true));
    await responder.event("handling");
    responder.send("drain {}");
    // The drain has unsubscribed, so no new request can reach the handler; the connection stays for the running one.
    const seen = await eventually(async () => {
      const peer = await responderPeer(c);
      if (peer === undefined || settled) return "closed before its handler replied";
      return peer.subscriptionCount === 0 ? "unsubscribed, still connected" : undefined;
    }, 10_000, "the drain to unsubscribe");
    expect(seen).toBe("unsubscribed, still connected");
    responder.send("finish");
    expect(await reply).toMatchObject({ data: "late answer" });
    await responder.event("drained");
    responder.child.stdin!.end();
    expect(await responder.exited).toEqual({ code: 0, signal: null });
    expect(responder.err.lines.join("\n")).not.toMatch(/ClosedError|Error: /);
  });

  it("past its timeoutMs, closes anyway and rejects with DrainTimeoutError; the late handler crashes nothing", async () => {
    const broker = await startBroker();
    const responder = slowResponder(broker);
    await responder.event("ready");
    const c = await client(broker.socket);
    const reply = c.request("svc.slow", "never", { timeoutMs: 20_000 }).catch((e: unknown) => e);
    await responder.event("handling");
    responder.send('drain {"timeoutMs":100}');
    const drain = await responder.out.waitForJson((e) => e["event"] === "drained" || e["event"] === "drain-failed", 10_000, "the drain to end");
    expect(drain).toMatchObject({ event: "drain-failed", name: "DrainTimeoutError", code: "drain_timeout", message: expect.stringMatching(/100 ms/) });
    expect(await reply).toMatchObject({ code: "responder_gone" });
    responder.send("finish");
    await responder.event("handler-returns");
    responder.child.stdin!.end();
    expect(await responder.exited).toEqual({ code: 0, signal: null });
    expect(responder.err.lines.join("\n")).not.toMatch(/ClosedError|Error: /);
  });

  it("rejects unknown and ill-typed options by name", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket);
    await expect(c.drain({ timeout: 5 } as never)).rejects.toThrow(/unknown drain option "timeout"/);
    await expect(c.drain({ timeoutMs: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(c.isClosed).toBe(false);
  });
});

describe("fire-and-forget publishes", () => {
  it("500 unacked publishes of large payloads in one tick share one drain wait: no MaxListenersExceededWarning", async () => {
    const broker = await startBroker();
    const publisher = spawnClient(
      broker.socket,
      `const c = await connect({ socket, name: "flood" });
const big = new Uint8Array(64 * 1024);
await Promise.all(Array.from({ length: 500 }, (_, i) => c.publish("flood." + (i % 7), big, { ack: false })));
await c.flush();
const me = (await c.status()).peers.find((p) => p.name === "flood");
emit("done", { msgsIn: me.msgsIn });
await c.close();`,
    );
    const done = await publisher.event("done", () => true, 20_000);
    expect(done["msgsIn"]).toBeGreaterThanOrEqual(502); // hello + 500 pub + ping
    expect(await publisher.exited).toEqual({ code: 0, signal: null });
    await publisher.err.ended();
    expect(publisher.err.lines.join("\n")).not.toMatch(/MaxListenersExceededWarning|Warning/);
  });
});

describe("queue group names", () => {
  it("a bad one is invalid_queue (InvalidQueueError), as the broker says, in the SDK and the CLI", async () => {
    const broker = await startBroker();
    const c = await client(broker.socket);
    const error = await c.subscribe("a", { queue: "x.y" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "invalid_queue", name: "InvalidQueueError" });
    expect(error).toBeInstanceOf(InvalidQueueError);
    await expect(c.respond("a", () => 1, { queue: "has space" })).rejects.toMatchObject({ code: "invalid_queue" });
    const cli = await runCli(["sub", "a", "--queue", "x.y", "--socket", broker.socket]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/\[invalid_queue\]/);
  });
});
