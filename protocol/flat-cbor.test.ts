// The flat-map fast path must give exactly what cbor-x (+ normalise) gives,
// and fall back to it for everything else: checked on random maps, on the
// edges of each integer width, and on frames cut anywhere across chunks.

import { describe, expect, it } from "vitest";
import { Encoder, type Options } from "cbor-x";
import { decodeFlatMap, encodeFlatFrame, pubFrameBytes, writePubFrame } from "./flat-cbor.js";
import type { PubOp } from "./messages.js";
import { decodeFrameBody, encodeFrame, FrameDecoder } from "./frame-codec.js";

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, variableMapSize: true } as Options);

/** A tiny deterministic generator, so a failure reproduces. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

const EDGE_UINTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];

function randomValue(next: () => number): unknown {
  const pick = Math.floor(next() * 12);
  switch (pick) {
    case 0:
      return EDGE_UINTS[Math.floor(next() * EDGE_UINTS.length)];
    case 1:
      return -Math.floor(next() * 2 ** 40);
    case 2:
      return Buffer.from(Array.from({ length: Math.floor(next() * 40) }, () => Math.floor(next() * 256)));
    case 3:
      return "x".repeat(Math.floor(next() * 70));
    case 4:
      return "héllo ✓";
    case 5:
      return next() < 0.5;
    case 6:
      return null;
    case 7:
      return 2n ** 60n + BigInt(Math.floor(next() * 1000));
    case 8:
      return 1.5;
    case 9:
      return { nested: 1 };
    case 10:
      return [1, "a"];
    default:
      return `subject.${Math.floor(next() * 5)}`;
  }
}

/** cbor-x's reading, as the codec gave it before the fast path. */
function viaCborX(body: Uint8Array): unknown {
  const decoded = decodeFrameBody(body);
  return "message" in decoded ? decoded.message : decoded.fault;
}

describe("flat CBOR maps", () => {
  it("reads what cbor-x writes exactly as cbor-x reads it, or leaves it to cbor-x", () => {
    const next = random(7);
    let fast = 0;
    for (let n = 0; n < 2000; n++) {
      const map: Record<string, unknown> = {};
      const fields = Math.floor(next() * 8);
      for (let i = 0; i < fields; i++) map[["op", "subject", "p", "seq", "id", "ké", "x".repeat(60)][Math.floor(next() * 7)]!] = randomValue(next);
      const body = cbor.encode(map);
      const read = decodeFlatMap(body, 0, body.length);
      if (read !== undefined) {
        fast++;
        expect(read).toEqual(viaCborX(body));
      }
    }
    // Most random maps are flat and ASCII: the fast path must actually be taken.
    expect(fast).toBeGreaterThan(200);
  });

  it("writes frames that cbor-x reads back as the message, and declines what is not flat", () => {
    const next = random(11);
    for (let n = 0; n < 2000; n++) {
      const map: Record<string, unknown> = {};
      for (let i = 0; i < 6; i++) map[`k${i}`] = randomValue(next);
      const flat = encodeFlatFrame(map);
      const nested = Object.values(map).some((v) => typeof v === "object" && v !== null && !(v instanceof Uint8Array));
      if (nested) {
        expect(flat).toBeUndefined();
        continue;
      }
      expect(flat).toBeDefined();
      expect(flat!.readUInt32BE(0)).toBe(flat!.length - 4);
      const expected = viaCborX(cbor.encode(map));
      expect(viaCborX(flat!.subarray(4))).toEqual(expected);
      // And the fast reader agrees on what the fast writer wrote.
      const fastRead = decodeFlatMap(flat!, 4, flat!.length);
      if (fastRead !== undefined) expect(fastRead).toEqual(expected);
    }
  });

  it("writes each integer in its shortest form and 64-bit values above 2^53 exactly", () => {
    const hex = (v: unknown): string => encodeFlatFrame({ v })!.subarray(4).toString("hex");
    expect(hex(23)).toBe("a1617617");
    expect(hex(24)).toBe("a161761818");
    expect(hex(65536)).toBe("a161761a00010000");
    expect(hex(2 ** 40)).toBe("a161761b0000010000000000");
    expect(hex(-1)).toBe("a1617620");
    expect(hex(2n ** 64n - 1n)).toBe("a161761bffffffffffffffff");
    expect(hex(undefined)).toBe("a16176f7");
    const frame = encodeFlatFrame({ state: 2n ** 64n - 1n })!;
    expect(decodeFlatMap(frame, 4, frame.length)).toEqual({ state: 2n ** 64n - 1n });
  });

  it("gives byte strings as views of the frame, and falls back on trailing bytes, floats, tags and non-ASCII text", () => {
    const frame = encodeFrame({ op: "msg", p: Buffer.from("abc") });
    const read = decodeFlatMap(frame, 4, frame.length)!;
    expect((read["p"] as Buffer).buffer).toBe(frame.buffer);
    const withExtra = Buffer.concat([frame.subarray(4), Buffer.from([0x00])]);
    expect(decodeFlatMap(withExtra, 0, withExtra.length)).toBeUndefined();
    for (const map of [{ f: 1.5 }, { t: new Date(0) }, { s: "é" }, { ["__proto__"]: 1 }]) {
      const body = cbor.encode(map);
      expect(decodeFlatMap(body, 0, body.length)).toBeUndefined();
    }
    // A truncated map is never read past its end.
    const body = cbor.encode({ op: "pub", subject: "a.b", p: Buffer.alloc(10) });
    for (let cut = 0; cut < body.length; cut++) expect(decodeFlatMap(body, 0, cut)).toBeUndefined();
  });

  it("splits frames cut anywhere, across any number of chunks", () => {
    const messages = [
      { op: "msg", subject: "a.b", p: Buffer.alloc(300, 7), seq: 70000 },
      { op: "ok", id: 3, status: { peers: [1, 2] } },
      { op: "dropped", count: 1, total: 2 },
    ];
    const bytes = Buffer.concat(messages.map((m) => encodeFrame(m)));
    for (const size of [1, 2, 3, 5, 7, 64, 301]) {
      const decoder = new FrameDecoder(1024);
      const got: unknown[] = [];
      const sizes: number[] = [];
      for (let at = 0; at < bytes.length; at += size) {
        expect(decoder.push(bytes.subarray(at, at + size), (m, frameBytes) => (got.push(m), sizes.push(frameBytes)))).toBeUndefined();
      }
      expect(got).toEqual(messages);
      expect(sizes.reduce((a, b) => a + b)).toBe(bytes.length);
      expect(decoder.end()).toBeUndefined();
    }
  });

  it("refuses an oversize length whose header is cut between chunks", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(5000);
    const decoder = new FrameDecoder(1024);
    expect(decoder.push(header.subarray(0, 2), () => {})).toBeUndefined();
    expect(decoder.push(header.subarray(2), () => {})?.code).toBe("frame_too_large");
  });
});

describe("the traffic frames", () => {
  it("write msg and pub exactly as cbor-x reads them, with every combination of optional fields", () => {
    const p = Buffer.from("payload");
    const optional = { enc: "text", reply: "_INBOX.1.2", sid: 70_000, queue: "workers", retained: true };
    const keys = Object.keys(optional) as Array<keyof typeof optional>;
    for (let mask = 0; mask < 1 << keys.length; mask++) {
      for (const seq of [0, 23, 2 ** 32 - 1, 2n ** 40n, 2n ** 63n]) {
        const msg: Record<string, unknown> = { op: "msg", subject: "a.b.c", p, seq };
        keys.forEach((k, i) => mask & (1 << i) && (msg[k] = optional[k]));
        const frame = encodeFrame(msg);
        const expected = { ...msg, seq: typeof seq === "bigint" && seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seq) : seq };
        expect(viaCborX(frame.subarray(4))).toEqual(expected);
        expect(decodeFlatMap(frame, 4, frame.length)).toEqual(expected);
      }
    }
    const pubOptional = { enc: "json", retain: true, reply: "r.s", id: 4_000_000_000 };
    const pubKeys = Object.keys(pubOptional) as Array<keyof typeof pubOptional>;
    for (let mask = 0; mask < 1 << pubKeys.length; mask++) {
      const pub: Record<string, unknown> = { op: "pub", subject: "ü.x", p };
      pubKeys.forEach((k, i) => mask & (1 << i) && (pub[k] = pubOptional[k]));
      const frame = encodeFrame(pub);
      expect(viaCborX(frame.subarray(4))).toEqual(pub);
      const written = Buffer.alloc(pubFrameBytes(pub as unknown as PubOp) + 3);
      writePubFrame(pub as unknown as PubOp, written, 3, written.length - 3);
      expect(written.subarray(3)).toEqual(frame);
    }
  });

  it("leaves a msg or pub with a field of another type, or an unknown field, to the generic writer", () => {
    const odd = [
      { op: "msg", subject: "a", p: Buffer.alloc(1), seq: 1, extra: [1] },
      { op: "msg", subject: "a", p: Buffer.alloc(1) },
      { op: "pub", subject: "a", p: "not bytes" },
      { op: "pub", subject: "a", p: Buffer.alloc(1), retain: "yes" },
      { op: "msg", subject: "a", p: Buffer.alloc(1), seq: 1, timeout: 5 },
    ];
    for (const message of odd) {
      const body = encodeFrame(message).subarray(4);
      expect(viaCborX(body)).toEqual(viaCborX(cbor.encode(message)));
      // And the reader gives each field under its own name.
      const read = decodeFlatMap(body, 0, body.length);
      if (read !== undefined) expect(read).toEqual(viaCborX(body));
    }
  });
});
