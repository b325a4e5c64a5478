// Fuzzing with fast-check: random and mutated frames (from valid ones) into
// the frame decoder and every op handler. No crash, no hang, a clean `err` or
// close, and the broker serves a good client afterwards. In-process against
// the real core over the memory transport (real frames, no socket) for
// thousands of cases; then over raw sockets against the real daemon. `npm run fuzz` runs many more (FUZZ_RUNS).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, FrameDecoder, CLIENT_OPS } from "../protocol/index.js";
import { connect } from "../client-sdk/index.js";
import { cleanup, startBroker } from "./test-support/harness.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";
import { RawPeer } from "./test-support/raw-peer.js";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 3000);

/** Valid ops to mutate from: every op, with plausible fields. */
const validOps: Array<Record<string, unknown>> = [
  { op: "hello", v: 1, name: "fuzz", id: 0 },
  { op: "sub", sid: 1, subject: "a.*", id: 1 },
  { op: "sub", sid: 2, subject: "q.>", queue: "g", replay: true, id: 2 },
  { op: "unsub", sid: 1, id: 3 },
  { op: "pub", subject: "a.b", p: Buffer.from("x"), enc: "text", retain: true, id: 4 },
  { op: "pub", subject: "q.r", p: Buffer.alloc(3), reply: "a.b" },
  { op: "get", subject: "a.b", id: 5 },
  { op: "req", subject: "q.r", p: Buffer.from("?"), timeout: 50, id: 6 },
  { op: "ping", id: 7 },
  { op: "status", id: 8 },
  { op: "watch", name: "io.xpcbus.broker.a.b", id: 9 },
  { op: "unwatch", name: "io.xpcbus.broker.a.b", id: 10 },
  { op: "post", name: "fuzz.name", state: 5n, id: 11 },
  { op: "state", name: "fuzz.name", id: 12 },
];

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -1, max: 2 ** 32 + 1 }),
  fc.double(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.constantFrom("a.b", "a.*", ">", "_INBOX.1.1", "", "..", "a b", "io.xpcbus.broker.x", "com.apple.x", ...CLIENT_OPS),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

/** A valid op with some fields replaced, removed or added. */
const mutatedOp: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(fc.constantFrom(...validOps), fc.array(fc.tuple(fc.constantFrom("op", "id", "sid", "subject", "p", "enc", "queue", "replay", "retain", "reply", "timeout", "v", "name", "state", "x"), fc.option(anyValue)), { maxLength: 4 }))
  .map(([base, edits]) => {
    const op: Record<string, unknown> = { ...base };
    for (const [key, value] of edits) {
      if (value === null) delete op[key];
      else op[key] = value;
    }
    return op;
  });

/** Raw bytes for the stream: mutated frames, truncated or bit-flipped encodings, and noise. */
const rawBytes: fc.Arbitrary<Buffer> = fc.oneof(
  mutatedOp.map((op) => encodeFrame(op)),
  fc.tuple(mutatedOp, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([op, at, bits]) => {
    const frame = Buffer.from(encodeFrame(op));
    const i = at % frame.length;
    frame[i] = (frame[i] as number) ^ bits;
    return frame;
  }),
  fc.tuple(mutatedOp, fc.nat()).map(([op, cut]) => {
    const frame = encodeFrame(op);
    return frame.subarray(0, cut % frame.length);
  }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
);

describe("fuzzing", () => {
  it(`feeds ${RUNS} mutated op sequences to the broker core over the memory transport: every answer is well-formed, nothing throws`, async () => {
    // Through the real codec (frames both ways), in this process: what a peer can send is what arrives.
    const memory = await startMemoryBroker({ limits: { helloTimeoutMs: 60_000 } });
    // The last op of every run: its pong is the last answer (the broker answers in order), unless an op closed the connection.
    const SENTINEL = 0x7fff_fff7;
    await fc.assert(
      fc.asyncProperty(fc.array(mutatedOp, { minLength: 1, maxLength: 12 }), async (ops) => {
        const peer = await memory.raw();
        peer.send({ op: "hello", v: 1 });
        for (const op of ops) peer.send(op);
        peer.send({ op: "ping", id: SENTINEL });
        await Promise.race([peer.next((m) => m["op"] === "pong" && m["id"] === SENTINEL).catch(() => undefined), peer.closed]);
        for (const answer of peer.received) {
          expect(["welcome", "ok", "err", "pong", "msg", "bye", "dropped"]).toContain(answer["op"]);
          if (answer["op"] === "err") expect(typeof answer["code"]).toBe("string");
        }
        // Gone in the next turn; the broker detaches it then (checked once at the end: no peer is left).
        peer.destroy();
      }),
      { numRuns: RUNS },
    );
    await memory.transport.drained();
    expect(memory.broker.peerCount).toBe(0);
    await memory.stop();
  }, 120_000);

  it(`feeds ${RUNS} random byte streams to the frame decoder: frames or one clean fault, in bounded work`, () => {
    fc.assert(
      fc.property(fc.array(rawBytes, { maxLength: 6 }), fc.array(fc.nat({ max: 64 }), { maxLength: 6 }), (chunks, splits) => {
        const decoder = new FrameDecoder(4096);
        const stream = Buffer.concat(chunks);
        let offset = 0;
        let fault;
        for (const split of [...splits, stream.length]) {
          const piece = stream.subarray(offset, Math.min(stream.length, offset + split + 1));
          offset += piece.length;
          fault = decoder.push(piece, (map) => expect(typeof map).toBe("object"));
          if (fault !== undefined || offset >= stream.length) break;
        }
        if (fault !== undefined) expect(["bad_frame", "frame_too_large", "truncated_frame"]).toContain(fault.code);
      }),
      { numRuns: RUNS },
    );
  });

  it("sends fuzzed streams to the real daemon over raw sockets; it answers or closes, and still serves a good client", async () => {
    const broker = await startBroker({ args: ["--limit", "maxFrameBytes=65536", "--limit", "maxPayloadBytes=32768"] });
    try {
      const good = await connect({ socket: broker.socket, name: "good", reconnect: false });
      const sub = await good.subscribe("alive");
      const samples = fc.sample(fc.array(rawBytes, { minLength: 1, maxLength: 5 }), Math.max(100, Math.floor(RUNS / 10)));
      for (let i = 0; i < samples.length; i += 20) {
        await Promise.all(
          samples.slice(i, i + 20).map(async (chunks) => {
            const peer = await RawPeer.connect(broker.socket);
            peer.send({ op: "hello", v: 1, id: 0 });
            for (const chunk of chunks) peer.sendBytes(chunk);
            // Half-close: the broker must answer what it got and close, or
            // report the fault (a truncated frame included) and close. A hang
            // here fails the test by its timeout.
            peer.send({ op: "ping", id: 4242 });
            peer.socket.end();
            await peer.closed;
            const last = peer.received.at(-1);
            if (last !== undefined) expect(["pong", "err", "ok", "welcome", "msg", "dropped"]).toContain(last["op"]);
          }),
        );
      }
      const got = sub[Symbol.asyncIterator]().next();
      await good.publish("alive", "still");
      expect((await got).value?.data).toBe("still");
      expect(broker.child.exitCode).toBeNull();
      await good.close();
    } finally {
      cleanup();
    }
  }, 120_000);
});
