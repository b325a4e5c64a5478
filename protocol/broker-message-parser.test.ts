// The broker → client parser: every op of docs/PROTOCOL.md §6 read as the
// broker sends it (through the codec, 8-byte integers included), unknown keys
// ignored, unknown ops told apart from ill-formed ones, each `ok` read per the
// op it answers (§6.3), and no input that makes it throw.
import { describe, expect, it } from "vitest";
import { parseBrokerMessage, readAnswer, type BrokerMessage } from "./broker-message-parser.js";
import { decodeFrameBody, encodeFrame } from "./frame-codec.js";
import type { OkMsg } from "./messages.js";
import { EXAMPLE_LIMITS as LIMITS } from "./test-support/examples.js";

/** As a client receives it: encoded by the broker's codec and decoded again. */
function wire(map: Record<string, unknown>): Record<string, unknown> {
  const decoded = decodeFrameBody(encodeFrame(map).subarray(4));
  if (!("message" in decoded)) throw new Error(decoded.fault.reason);
  return decoded.message;
}

function message(map: Record<string, unknown>): BrokerMessage {
  const parsed = parseBrokerMessage(wire(map));
  if (!("message" in parsed)) throw new Error(`fault: ${parsed.fault.reason}`);
  return parsed.message;
}

function ok(map: Record<string, unknown>): OkMsg {
  const read = message({ op: "ok", ...map });
  if (read.op !== "ok") throw new Error("not ok");
  return read;
}

const TABLE = { mechanism: "table", prefix: "io.xpcbus.broker", table: "/run/user/1000/xpcbus/broker.sock.notify", slots: 4096, instance: 12751207339398457117n };
const BIG_SEQ = 1795613115069003;

describe("broker messages, well-formed (§6)", () => {
  it("welcome, with the table's 64-bit instance and the hello's id", () => {
    expect(message({ op: "welcome", v: 1, peer: 7, server: "xpcbus/0.1.0", limits: LIMITS, notify: TABLE, id: 0 })).toEqual({
      op: "welcome",
      v: 1,
      peer: 7,
      server: "xpcbus/0.1.0",
      limits: LIMITS,
      notify: TABLE,
      id: 0,
    });
  });

  it("welcome without notify, and with notify(3)", () => {
    expect(message({ op: "welcome", v: 1, peer: 1, server: "s", limits: LIMITS })).toMatchObject({ notify: undefined });
    const darwin = { mechanism: "notify(3)", prefix: "user.uid.501.io.xpcbus.broker" };
    expect(message({ op: "welcome", v: 1, peer: 1, server: "s", limits: LIMITS, notify: darwin })).toMatchObject({ notify: darwin });
  });

  it("welcome with a notify mechanism this version does not know: no notifications (§6.1)", () => {
    const read = message({ op: "welcome", v: 1, peer: 1, server: "s", limits: LIMITS, notify: { mechanism: "kqueue", prefix: "p" } });
    expect(read).toMatchObject({ op: "welcome", peer: 1 });
    expect((read as { notify?: unknown }).notify).toBeUndefined();
  });

  it("msg: every delivery of the §6.2 table, with a sequence number above 2^32", () => {
    const p = Buffer.from([1, 2]); // the codec hands byte strings over as Buffers
    expect(message({ op: "msg", subject: "a.b", p, seq: BigInt(BIG_SEQ) })).toEqual({ op: "msg", subject: "a.b", p, seq: BIG_SEQ });
    expect(message({ op: "msg", subject: "a.b", p, seq: 3, queue: "workers", reply: "r.x", enc: "json" })).toEqual({
      op: "msg",
      subject: "a.b",
      p,
      seq: 3,
      queue: "workers",
      reply: "r.x",
      enc: "json",
    });
    expect(message({ op: "msg", subject: "a.b", p, seq: 0, sid: 4, reply: "_INBOX.1.2" })).toEqual({
      op: "msg",
      subject: "a.b",
      p,
      seq: 0,
      sid: 4,
      reply: "_INBOX.1.2",
    });
  });

  it("err (with an unknown code kept as text), pong, bye, dropped", () => {
    expect(message({ op: "err", code: "no_responders", reason: "nobody", id: 3, subject: "x" })).toEqual({
      op: "err",
      code: "no_responders",
      reason: "nobody",
      id: 3,
      subject: "x",
    });
    expect(message({ op: "err", code: "brand_new_code", reason: "r" })).toEqual({ op: "err", code: "brand_new_code", reason: "r" });
    expect(message({ op: "pong" })).toEqual({ op: "pong" });
    expect(message({ op: "pong", id: 6 })).toEqual({ op: "pong", id: 6 });
    expect(message({ op: "bye", code: "shutdown", reason: "stopping" })).toEqual({ op: "bye", code: "shutdown", reason: "stopping" });
    expect(message({ op: "dropped", count: 5, total: 12 })).toEqual({ op: "dropped", count: 5, total: 12 });
  });

  it("ignores keys it does not know (§3)", () => {
    expect(message({ op: "pong", id: 1, later: "field", 9: true })).toEqual({ op: "pong", id: 1 });
    expect(message({ op: "dropped", count: 1, total: 1, since: 4 })).toEqual({ op: "dropped", count: 1, total: 1 });
  });
});

describe("broker messages, not readable", () => {
  it("an unknown op is unknown_op, with its id when usable (to be ignored, §3)", () => {
    expect(parseBrokerMessage({ op: "hint", id: 4 })).toEqual({ fault: { code: "unknown_op", reason: expect.stringContaining("hint"), op: "hint", id: 4 } });
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["no op", { id: 1 }, /"op"/],
    ["op not text", { op: 3 }, /"op"/],
    ["welcome without limits", { op: "welcome", v: 1, peer: 1, server: "s" }, /"limits" as a map/],
    ["welcome with a limit missing", { op: "welcome", v: 1, peer: 1, server: "s", limits: { ...LIMITS, maxWatchesPerPeer: undefined } }, /maxWatchesPerPeer/],
    ["welcome with peer as text", { op: "welcome", v: 1, peer: "7", server: "s", limits: LIMITS }, /"peer".*got string/],
    ["welcome, table without instance", { op: "welcome", v: 1, peer: 1, server: "s", limits: LIMITS, notify: { ...TABLE, instance: undefined } }, /instance/],
    ["welcome, notify not a map", { op: "welcome", v: 1, peer: 1, server: "s", limits: LIMITS, notify: "table" }, /"notify" as a map/],
    ["msg without subject", { op: "msg", p: new Uint8Array(0), seq: 1 }, /"subject"/],
    ["msg with p as text", { op: "msg", subject: "a", p: "x", seq: 1 }, /"p" as a byte string/],
    ["msg with an unknown enc", { op: "msg", subject: "a", p: new Uint8Array(0), seq: 1, enc: "cbor" }, /"enc"/],
    ["msg with a negative seq", { op: "msg", subject: "a", p: new Uint8Array(0), seq: -1 }, /"seq"/],
    ["msg with sid null", { op: "msg", subject: "a", p: new Uint8Array(0), seq: 1, sid: null }, /"sid".*null/],
    ["ok without id", { op: "ok" }, /"id"/],
    ["ok with an id over 2^32-1", { op: "ok", id: 2 ** 32 }, /"id"/],
    ["err without code", { op: "err", reason: "r", id: 2 }, /"code"/],
    ["err without reason", { op: "err", code: "internal" }, /"reason"/],
    ["pong with a fractional id", { op: "pong", id: 1.5 }, /"id"/],
    ["dropped without total", { op: "dropped", count: 1 }, /"total"/],
    ["bye without code", { op: "bye", reason: "r" }, /"code"/],
  ];
  it.each(bad)("%s is bad_field, naming the field", (_, map, reason) => {
    const parsed = parseBrokerMessage(map);
    expect(parsed).toMatchObject({ fault: { code: "bad_field" } });
    if ("fault" in parsed) expect(parsed.fault.reason).toMatch(reason);
  });

  it("keeps a usable id in the fault, so the call it answers can fail instead of waiting", () => {
    expect(parseBrokerMessage({ op: "err", code: 7, reason: "r", id: 9 })).toMatchObject({ fault: { code: "bad_field", op: "err", id: 9 } });
    expect(parseBrokerMessage({ op: "err", code: 7, reason: "r", id: "9" })).toEqual({ fault: expect.not.objectContaining({ id: expect.anything() }) });
  });

  it("never throws, whatever the values", () => {
    const values: unknown[] = [undefined, null, true, 0, -1, 1.5, 2 ** 53, 2n ** 64n, -1n, "", "x", new Uint8Array(1), [], {}, [1], { a: 1 }, NaN, Infinity];
    const fields = ["op", "id", "v", "peer", "server", "limits", "notify", "subject", "p", "enc", "seq", "reply", "sid", "queue", "code", "reason", "count", "total"];
    const ops = ["welcome", "msg", "ok", "err", "pong", "bye", "dropped", "other"];
    let state = 1;
    const pick = <T>(list: readonly T[]): T => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return list[state % list.length]!;
    };
    for (let i = 0; i < 5000; i++) {
      const map: Record<string, unknown> = { op: pick(ops) };
      for (const field of fields) if (pick([true, false])) map[field] = pick(values);
      expect(() => parseBrokerMessage(map)).not.toThrow();
      for (const op of ["pub", "get", "req", "status", "watch", "state", "sub", "ping"] as const) {
        expect(() => readAnswer(op, { ...map, op: "ok", id: 1 })).not.toThrow();
      }
    }
  });
});

describe("answers, per the op they answer (§6.3)", () => {
  it("pub: seq; a reply to an inbox: seq 0 and delivered", () => {
    expect(readAnswer("pub", ok({ id: 1, seq: BigInt(BIG_SEQ) }))).toEqual({ answer: { seq: BIG_SEQ } });
    expect(readAnswer("pub", ok({ id: 1, seq: 0, delivered: false }))).toEqual({ answer: { seq: 0, delivered: false } });
    expect(readAnswer("pub", ok({ id: 1 }))).toMatchObject({ fault: { code: "bad_field", id: 1, reason: expect.stringMatching(/"seq"/) } });
  });

  it("get: found with value and encoding, or not found", () => {
    const p = Buffer.from([0x7b, 0x7d]);
    expect(readAnswer("get", ok({ id: 4, found: true, subject: "demo.cfg", seq: BIG_SEQ, p, enc: "json" }))).toEqual({
      answer: { found: true, subject: "demo.cfg", seq: BIG_SEQ, p, enc: "json" },
    });
    expect(readAnswer("get", ok({ id: 4, found: true, subject: "s", seq: 1, p }))).toEqual({ answer: { found: true, subject: "s", seq: 1, p, enc: undefined } });
    expect(readAnswer("get", ok({ id: 5, found: false, subject: "demo.none", seq: 0 }))).toEqual({ answer: { found: false, subject: "demo.none", seq: 0 } });
    expect(readAnswer("get", ok({ id: 5, found: true, subject: "s", seq: 1 }))).toMatchObject({ fault: { reason: expect.stringMatching(/"p"/) } });
    expect(readAnswer("get", ok({ id: 5, subject: "s", seq: 0 }))).toMatchObject({ fault: { reason: expect.stringMatching(/"found"/) } });
  });

  it("req: the reply's subject, payload and encoding", () => {
    const p = Buffer.from([1]);
    expect(readAnswer("req", ok({ id: 2, subject: "svc", p, enc: "text" }))).toEqual({ answer: { subject: "svc", p, enc: "text" } });
    expect(readAnswer("req", ok({ id: 2, subject: "svc" }))).toMatchObject({ fault: { code: "bad_field" } });
  });

  it("status: a map, handed on", () => {
    const status = { server: "xpcbus/0.1.0", pid: 1, peers: [], msgsIn: 1.5e10 };
    expect(readAnswer("status", ok({ id: 8, status }))).toEqual({ answer: status });
    expect(readAnswer("status", ok({ id: 8, status: [] }))).toMatchObject({ fault: { reason: expect.stringMatching(/"status" as a map/) } });
  });

  it("watch and state: the 64-bit state, whatever its width; slot and hash with the table only", () => {
    expect(readAnswer("watch", ok({ id: 5, name: "n", slot: 0, hash: 1036283580, state: 2n ** 64n - 1n }))).toEqual({
      answer: { name: "n", slot: 0, hash: 1036283580, state: 2n ** 64n - 1n },
    });
    expect(readAnswer("watch", ok({ id: 5, name: "n", state: 0n }))).toEqual({ answer: { name: "n", state: 0n } });
    expect(readAnswer("state", ok({ id: 10, name: "app.reload", state: 7 }))).toEqual({ answer: { name: "app.reload", state: 7n } });
    expect(readAnswer("state", ok({ id: 10, name: "n" }))).toMatchObject({ fault: { reason: expect.stringMatching(/"state"/) } });
    expect(readAnswer("watch", ok({ id: 10, name: "n", state: 1, slot: "0" }))).toMatchObject({ fault: { reason: expect.stringMatching(/"slot"/) } });
  });

  it("ops answered by a bare ok (or pong) read as empty, extra fields ignored", () => {
    for (const op of ["sub", "unsub", "unwatch", "post"] as const) expect(readAnswer(op, ok({ id: 1, extra: 1 }))).toEqual({ answer: {} });
    expect(readAnswer("ping", { op: "pong", id: 3 })).toEqual({ answer: {} });
  });
});
