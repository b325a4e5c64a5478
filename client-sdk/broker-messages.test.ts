// What the client does with broker messages it cannot read, in process over a
// scripted transport (no daemon): an unknown op or an ill-formed message is
// ignored and the client goes on; an ill-formed answer fails the call it
// answers instead of leaving it waiting; an unreadable welcome fails connect().
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "./connect.js";
import type { Client } from "./client.js";
import type { ClientConnection, ClientConnectionHandlers, ClientTransport } from "./client-transport.js";
import type { ClientOp } from "../protocol/index.js";
import { EXAMPLE_LIMITS as LIMITS } from "../protocol/test-support/examples.js";


/** A broker played by the test: `answer` gets every op the client sends and what to send back with. */
class ScriptedTransport implements ClientTransport {
  readonly address = "scripted";
  handlers: ClientConnectionHandlers | undefined;
  readonly sent: ClientOp[] = [];

  constructor(readonly answer: (op: ClientOp, reply: (map: Record<string, unknown>) => void) => void) {}

  connect(handlers: ClientConnectionHandlers): Promise<ClientConnection> {
    this.handlers = handlers;
    const reply = (map: Record<string, unknown>): void => queueMicrotask(() => handlers.message(map));
    return Promise.resolve({
      send: (op) => {
        this.sent.push(op);
        this.answer(op, reply);
        return true;
      },
      bufferedBytes: 0,
      drained: () => Promise.resolve(),
      close: () => queueMicrotask(() => handlers.closed()),
    });
  }
}

function welcoming(rest: (op: ClientOp, reply: (map: Record<string, unknown>) => void) => void) {
  return (op: ClientOp, reply: (map: Record<string, unknown>) => void): void => {
    if (op.op === "hello") reply({ op: "welcome", v: 1, peer: 3, server: "scripted", limits: LIMITS, id: op.id });
    else rest(op, reply);
  };
}

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function client(transport: ScriptedTransport): Promise<Client> {
  const c = await connect({ transport, reconnect: false, name: "t" });
  clients.push(c);
  return c;
}

describe("broker messages the client cannot read", () => {
  it("ignores unknown ops and ill-formed messages, and goes on", async () => {
    const transport = new ScriptedTransport(
      welcoming((op, reply) => {
        if (op.op === "sub") reply({ op: "ok", id: op.id });
        if (op.op === "ping") {
          reply({ op: "hint", id: op.id }); // unknown op: ignored (§3)
          reply({ op: "msg", subject: "a.b", p: "not bytes", seq: 1 }); // ill-formed delivery: dropped
          reply({ op: "dropped", count: "many" }); // ill-formed notice: dropped
          reply({ op: "msg", subject: "a.b", p: new Uint8Array([1]), seq: 2 });
          reply({ op: "pong", id: op.id });
        }
      }),
    );
    const c = await client(transport);
    const dropped: unknown[] = [];
    c.on("dropped", (info) => dropped.push(info));
    const seqs: number[] = [];
    await c.subscribe("a.>", { callback: (m) => seqs.push(m.seq) });
    await c.flush();
    expect(seqs).toEqual([2]);
    expect(dropped).toEqual([]);
    expect(c.isConnected).toBe(true);
  });

  it("fails the call an ill-formed answer is for, with a BrokerError internal", async () => {
    const transport = new ScriptedTransport(
      welcoming((op, reply) => {
        if (op.op === "get") reply({ op: "ok", id: op.id, found: true, subject: op.subject, seq: 1 }); // no p
        if (op.op === "state") reply({ op: "err", code: 42, reason: "r", id: op.id });
        if (op.op === "pub" && op.id !== undefined) reply({ op: "ok", id: op.id, seq: 9 });
      }),
    );
    const c = await client(transport);
    await expect(c.get("a.b")).rejects.toMatchObject({ name: "BrokerError", code: "internal", message: expect.stringMatching(/"p"/) });
    await expect(c.notifyState("app.x")).rejects.toMatchObject({ name: "BrokerError", code: "internal" });
    await expect(c.publish("a.b", "x")).resolves.toEqual({ seq: 9 });
  });

  it("fails connect() on a welcome it cannot read", async () => {
    const transport = new ScriptedTransport((op, reply) => {
      if (op.op === "hello") reply({ op: "welcome", v: 1, peer: 3, server: "scripted", id: op.id }); // no limits
    });
    await expect(connect({ transport, reconnect: false })).rejects.toMatchObject({
      name: "ConnectionError",
      code: "connection_failed",
      message: expect.stringMatching(/welcome.*"limits"/),
    });
  });
});
