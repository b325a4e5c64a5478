// The platform-neutral value tree behind the XPC transport: JS -> tree -> JS
// round trips, the limits, and what cannot be sent.
import { describe, expect, it } from "vitest";
import { loadNative } from "./loader.js";

const roundTrip = (value: unknown, limits?: { maxDepth?: number; maxNodes?: number; maxBytes?: number }): unknown =>
  loadNative().valueTreeRoundTrip(value, limits);

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
