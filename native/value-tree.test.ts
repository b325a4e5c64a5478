// The platform-neutral value tree behind the XPC transport: JS -> tree -> JS
// round trips, the limits, and what cannot be sent.
import { describe, expect, it } from "vitest";
import { loadNative } from "./loader.js";

const roundTrip = (value: unknown, limits?: { maxDepth?: number; maxNodes?: number; maxBytes?: number }): unknown =>
  loadNative().valueTreeRoundTrip(value, limits);

// The Dates an XPC date (int64 ns since 1970) can hold, in ms: INT64_MIN/MAX / 10^6.
const FIRST_XPC_DATE_MS = -9_223_372_036_854;
const LAST_XPC_DATE_MS = 9_223_372_036_854;

describe("value tree", () => {
  it.each([
    ["null", null, null],
    ["undefined becomes null", undefined, null],
    ["true", true, true],
    ["uint", 42, 42],
    ["zero", 0, 0],
    ["negative int", -7, -7],
    ["double", 1.5, 1.5],
    ["largest safe integer", Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ["uint64 above 2^53 as bigint", 2n ** 64n - 1n, 2n ** 64n - 1n],
    ["int64 below -2^53 as bigint", -(2n ** 63n), -(2n ** 63n)],
    ["small bigint becomes a number", 5n, 5],
    ["string", "héllo ✓", "héllo ✓"],
    ["empty string", "", ""],
    ["bytes", Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
    ["Uint8Array", new Uint8Array([9, 8]), Buffer.from([9, 8])],
    ["date (ns precision kept to the ms)", new Date(1_700_000_000_123), new Date(1_700_000_000_123)],
    ["uuid", { $uuid: Buffer.alloc(16, 7) }, { $uuid: Buffer.alloc(16, 7) }],
    ["array", [1, "a", null, [true]], [1, "a", null, [true]]],
    ["map", { op: "pub", p: Buffer.from("x"), nested: { deep: [{ k: 1 }] } }, { op: "pub", p: Buffer.from("x"), nested: { deep: [{ k: 1 }] } }],
    ["object without prototype", Object.assign(Object.create(null) as object, { a: 1 }), { a: 1 }],
  ])("round-trips %s", (_name, input, expected) => {
    expect(roundTrip(input)).toEqual(expected);
  });

  it.each([
    ["a function", { f: () => 1 }, /\$\.f: a function or symbol/],
    ["a symbol", [Symbol("s")], /\$\[0\]: a function or symbol/],
    ["a Map", { m: new Map() }, /\$\.m: only plain objects/],
    ["a class instance", new (class Thing {})(), /only plain objects/],
    ["a Float64Array", new Float64Array(2), /only Uint8Array/],
    ["an ArrayBuffer", new ArrayBuffer(2), /as a Uint8Array/],
    ["a bad uuid", { $uuid: Buffer.alloc(3) }, /16 bytes/],
    ["an invalid date", new Date(Number.NaN), /invalid Date/],
    ["a bigint beyond 64 bits", 2n ** 64n, /64-bit range/],
  ])("refuses %s, naming where", (_name, input, message) => {
    expect(() => roundTrip(input)).toThrow(message);
  });

  it("enforces depth, count and byte limits", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => roundTrip(deep)).toThrow(/nested deeper than 32/);
    expect(() => roundTrip([[[1]]], { maxDepth: 2 })).toThrow(/nested deeper than 2/);
    expect(() => roundTrip(Array.from({ length: 11 }, () => 0), { maxNodes: 10 })).toThrow(/more than 10 values/);
    expect(() => roundTrip({ a: "x".repeat(100) }, { maxBytes: 50 })).toThrow(/more than 50 bytes/);
    expect(roundTrip({ a: "x".repeat(40) }, { maxBytes: 50 })).toEqual({ a: "x".repeat(40) });
  });
});

// Found under ASan/UBSan (issue 11): every bound is checked before memory is
// reserved or a double is cast to an integer, and nothing aborts the process.
describe("value tree bounds", () => {
  it("refuses an array whose length alone passes maxNodes, before allocating for it", () => {
    // A sparse array: claiming 2^32 - 1 elements costs V8 nothing, but
    // reserving them would be ~500 GiB. The count used to wrap in 32 bits.
    const huge = new Array<unknown>(2 ** 32 - 1);
    expect(() => roundTrip(huge)).toThrow(/^cannot convert to an XPC value: \$: more than 100000 values$/);
    expect(() => roundTrip(huge, { maxNodes: 2 ** 32 - 1 })).toThrow(/\$: more than 4294967295 values/);
    expect(() => roundTrip({ a: [0, new Array<unknown>(2 ** 32 - 2)] }, { maxNodes: 2 ** 32 - 1 })).toThrow(
      /\$\.a\[1\]: more than 4294967295 values/,
    );
  });

  it("refuses an object with more properties than maxNodes before reading any of them", () => {
    const wide = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 0]));
    // The path is the object itself, not its 10th property: the count is checked first.
    expect(() => roundTrip(wide, { maxNodes: 10 })).toThrow(/^cannot convert to an XPC value: \$: more than 10 values$/);
    expect(roundTrip({ a: 1, b: 2 }, { maxNodes: 3 })).toEqual({ a: 1, b: 2 });
  });

  it("refuses Dates an XPC date cannot hold (int64 nanoseconds: years 1677 to 2262)", () => {
    expect(roundTrip(new Date(LAST_XPC_DATE_MS))).toEqual(new Date(LAST_XPC_DATE_MS));
    expect(roundTrip(new Date(FIRST_XPC_DATE_MS))).toEqual(new Date(FIRST_XPC_DATE_MS));
    for (const ms of [LAST_XPC_DATE_MS + 1, FIRST_XPC_DATE_MS - 1, 8.64e15, -8.64e15]) {
      expect(() => roundTrip({ when: new Date(ms) }), String(ms)).toThrow(
        /\$\.when: a Date outside 1677-09-21T00:12:43\.146Z \.\. 2262-04-11T23:47:16\.854Z/,
      );
    }
  });

  it("checks the limits: an integer in range (RangeError), a number (TypeError), an object", () => {
    const range: Array<[Record<string, unknown>, RegExp]> = [
      [{ maxDepth: Number.POSITIVE_INFINITY }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxDepth: 1e300 }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxDepth: 1001 }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxDepth: 0 }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxDepth: 2.5 }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxDepth: Number.NaN }, /limits\.maxDepth must be an integer from 1 to 1000/],
      [{ maxNodes: 2 ** 32 }, /limits\.maxNodes must be an integer from 1 to 4294967295/],
      [{ maxNodes: -1 }, /limits\.maxNodes must be an integer from 1 to 4294967295/],
      [{ maxBytes: Number.POSITIVE_INFINITY }, /limits\.maxBytes must be an integer from 1 to 9007199254740991/],
      [{ maxBytes: 2 ** 64 }, /limits\.maxBytes must be an integer from 1 to 9007199254740991/],
    ];
    for (const [limits, message] of range) {
      const label = Object.entries(limits).map(([k, v]) => `${k}: ${String(v)}`).join();
      expect(() => roundTrip(1, limits), label).toThrow(RangeError);
      expect(() => roundTrip(1, limits), label).toThrow(message);
    }
    expect(() => roundTrip(1, { maxDepth: "5" } as never)).toThrow(new TypeError("limits.maxDepth must be a number"));
    expect(() => roundTrip(1, null as never)).toThrow(new TypeError("limits must be an object"));
    expect(() => roundTrip(1, { get maxNodes(): number { throw new Error("from a getter"); } })).toThrow("from a getter");
    // The extremes themselves are accepted.
    expect(roundTrip([1], { maxDepth: 1000, maxNodes: 2 ** 32 - 1, maxBytes: Number.MAX_SAFE_INTEGER })).toEqual([1]);
    let deep: unknown = 1;
    for (let i = 0; i < 1000; i++) deep = [deep];
    expect(roundTrip(deep, { maxDepth: 1000 })).toEqual(deep);
    expect(() => roundTrip([deep], { maxDepth: 1000 })).toThrow(/nested deeper than 1000$/);
  });

  it("reports a throwing getter or Proxy trap as a TypeError naming where, instead of aborting", () => {
    const element = [1];
    Object.defineProperty(element, 0, { get: () => { throw new Error("bad element"); }, enumerable: true });
    const cases: Array<[unknown, RegExp]> = [
      [{ ok: 1, get bad(): number { throw new Error("bad getter"); } }, /\$\.bad: reading it threw: bad getter$/],
      [{ list: element }, /\$\.list\[0\]: reading it threw: bad element$/],
      [new Proxy({}, { get: () => { throw new Error("bad trap"); } }), /\$: reading \$uuid threw: bad trap$/],
      [new Proxy({}, { ownKeys: () => { throw new Error("bad keys"); } }), /\$: listing its properties threw: bad keys$/],
      [{ a: { get constructor(): unknown { throw new RangeError("bad constructor"); } } }, /\$\.a: reading its constructor threw: bad constructor$/],
      // A thrown value whose own message getter throws as well.
      [{ get x(): number { throw { get message(): string { throw new Error("twice"); } }; } }, /\$\.x: reading it threw: an exception$/],
    ];
    for (const [input, message] of cases) {
      expect(() => roundTrip(input)).toThrow(TypeError);
      expect(() => roundTrip(input)).toThrow(message);
    }
    // Nothing is left pending: the next call works.
    expect(roundTrip({ fine: true })).toEqual({ fine: true });
  });
});

describe("value tree to JS", () => {
  it("makes a peer's keys own data properties: a \"__proto__\" key stays a key, and no setter runs", () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1, "plain": "x"}') as Record<string, unknown>;
    const calls: string[] = [];
    Object.defineProperty(Object.prototype, "trap", { set: () => calls.push("setter"), configurable: true });
    try {
      const out = roundTrip({ ...input, trap: 2 }) as Record<string, unknown>;
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect((out as { polluted?: unknown }).polluted).toBeUndefined();
      expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).toEqual({ polluted: true });
      expect(Object.getOwnPropertyDescriptor(out, "trap")?.value).toBe(2);
      expect(out["constructor"]).toBe(1);
      expect(calls).toEqual([]);
    } finally {
      delete (Object.prototype as { trap?: unknown }).trap;
    }
  });
});
