// Subjects, framing and payload encodings: table-driven unit tests.
import { describe, expect, it } from "vitest";
import { subjectMatches, subjectProblem, queueNameProblem, validSubjectTokens } from "./subject.js";
import { encodeFrame, FrameDecoder } from "./frame-codec.js";
import { decodePayload, encodePayload } from "./payload.js";
import { MAX_SUBJECT_BYTES, MAX_SUBJECT_TOKENS } from "./limits.js";

describe("subject validation", () => {
  const valid: Array<[string, boolean]> = [
    ["a", false],
    ["battery.level", false],
    ["A-Z_09:x.y", false],
    ["a.*", true],
    ["*", true],
    [">", true],
    ["a.*.c.>", true],
    ["*.*", true],
    [Array(MAX_SUBJECT_TOKENS).fill("t").join("."), false],
    ["x".repeat(MAX_SUBJECT_BYTES), false],
  ];
  it.each(valid)("accepts %j (wildcards allowed: %s)", (subject, wildcards) => {
    expect(subjectProblem(subject, wildcards)).toBeUndefined();
  });

  const invalid: Array<[unknown, boolean, RegExp]> = [
    ["", true, /empty/],
    [".", true, /empty token/],
    ["a.", true, /empty token/],
    [".a", true, /empty token/],
    ["a..b", true, /empty token/],
    ["a b", true, /character/],
    ["a.b\n", true, /character/],
    ["é", true, /character/],
    ["a/b", true, /character/],
    ["a*", true, /character/],
    ["a.>b", true, /character/],
    ["a.*", false, /wildcard/],
    ["a.>", false, /wildcard/],
    [">.a", true, /last token/],
    ["a.>.>", true, /last token/],
    ["x".repeat(MAX_SUBJECT_BYTES + 1), true, /at most/],
    [Array(MAX_SUBJECT_TOKENS + 1).fill("t").join("."), true, /tokens/],
    [42, true, /string/],
    [null, true, /string/],
  ];
  it.each(invalid)("rejects %j (wildcards allowed: %s)", (subject, wildcards, why) => {
    expect(subjectProblem(subject, wildcards)).toMatch(why);
  });

  it("checks queue group names", () => {
    expect(queueNameProblem("workers")).toBeUndefined();
    expect(queueNameProblem("")).toMatch(/1 to/);
    expect(queueNameProblem("a.b")).toMatch(/character/);
    expect(queueNameProblem("x".repeat(65))).toMatch(/1 to/);
    expect(queueNameProblem(7)).toMatch(/string/);
  });
});

describe("the one-pass subject check", () => {
  /** The rules as written in docs/PROTOCOL.md, the slow way: what the fast check must agree with. */
  function reference(subject: string, wildcards: boolean): number {
    if (subject.length === 0 || subject.length > MAX_SUBJECT_BYTES) return -1;
    const tokens = subject.split(".");
    if (tokens.length > MAX_SUBJECT_TOKENS) return -1;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === "*" || t === ">") {
        if (!wildcards || (t === ">" && i !== tokens.length - 1)) return -1;
      } else if (!/^[A-Za-z0-9_:-]+$/.test(t)) return -1;
    }
    return tokens.length;
  }

  it("agrees with the rules on random subjects", () => {
    const alphabet = ["a", "Z", "0", "_", "-", ":", ".", ".", "*", ">", "é", " ", "/"];
    let seed = 1;
    const next = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let valid = 0;
    for (let n = 0; n < 20000; n++) {
      const length = Math.floor(next() * 12);
      let subject = "";
      for (let i = 0; i < length; i++) subject += alphabet[Math.floor(next() * alphabet.length)];
      for (const wildcards of [false, true]) {
        const expected = reference(subject, wildcards);
        expect(validSubjectTokens(subject, wildcards), JSON.stringify([subject, wildcards])).toBe(expected);
        expect(subjectProblem(subject, wildcards) === undefined).toBe(expected >= 0);
        if (expected >= 0) valid++;
      }
    }
    expect(valid).toBeGreaterThan(1000);
    expect(validSubjectTokens("a.".repeat(MAX_SUBJECT_TOKENS) + "a", false)).toBe(-1);
    expect(validSubjectTokens("a.".repeat(MAX_SUBJECT_TOKENS - 1) + "a", false)).toBe(MAX_SUBJECT_TOKENS);
  });
});

describe("subject matching", () => {
  const table: Array<[string, string, boolean]> = [
    ["a", "a", true],
    ["a", "b", false],
    ["a.b", "a.b", true],
    ["a.b", "a", false],
    ["a", "a.b", false],
    ["a.*", "a.b", true],
    ["a.*", "a", false],
    ["a.*", "a.b.c", false],
    ["*.b", "a.b", true],
    ["*.b", "a.c", false],
    ["*", "a", true],
    ["*", "a.b", false],
    ["a.>", "a.b", true],
    ["a.>", "a.b.c.d", true],
    ["a.>", "a", false],
    [">", "a", true],
    [">", "a.b.c", true],
    ["a.*.>", "a.b", false],
    ["a.*.>", "a.b.c", true],
    ["*.*", "a.b", true],
    ["*.*", "a.b.c", false],
    ["a.b.>", "a.c.d", false],
  ];
  it.each(table)("%s matches %s: %s", (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});

describe("frame codec", () => {
  it("round-trips maps split at every byte boundary", () => {
    const messages = [{ op: "hello", v: 1, name: "x" }, { op: "pub", subject: "a.b", p: Buffer.from("hi") }, { op: "ping" }];
    const bytes = Buffer.concat(messages.map((m) => encodeFrame(m)));
    for (let split = 1; split < bytes.length; split++) {
      const decoder = new FrameDecoder(1024);
      const got: unknown[] = [];
      expect(decoder.push(bytes.subarray(0, split), (m) => got.push(m))).toBeUndefined();
      expect(decoder.push(bytes.subarray(split), (m) => got.push(m))).toBeUndefined();
      expect(got).toEqual(messages);
      expect(decoder.end()).toBeUndefined();
    }
  });

  it("encodes integers above 2^32 given as BigInt as CBOR unsigned integers and decodes them as numbers", () => {
    const frame = encodeFrame({ seq: 2n ** 40n });
    expect(frame.subarray(4).toString("hex")).toBe("a16373657a1b0000010000000000".replace("7a", "71"));
    const got: Array<Record<string, unknown>> = [];
    new FrameDecoder(100).push(frame, (m) => got.push(m));
    expect(got[0]?.["seq"]).toBe(2 ** 40);
  });

  it("reports oversize, zero-length, non-CBOR, non-map and truncated frames", () => {
    const header = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    expect(new FrameDecoder(10).push(header(11), () => {})?.code).toBe("frame_too_large");
    expect(new FrameDecoder(10).push(header(0), () => {})?.code).toBe("bad_frame");
    expect(new FrameDecoder(10).push(Buffer.concat([header(1), Buffer.from([0xff])]), () => {})?.code).toBe("bad_frame");
    expect(new FrameDecoder(10).push(Buffer.concat([header(2), Buffer.from([0xa0, 0xa0])]), () => {})?.code).toBe("bad_frame");
    expect(new FrameDecoder(10).push(Buffer.concat([header(1), Buffer.from([0x01])]), () => {})?.code).toBe("bad_frame");
    const d = new FrameDecoder(10);
    expect(d.push(Buffer.concat([header(5), Buffer.from([0xa1])]), () => {})).toBeUndefined();
    expect(d.end()?.code).toBe("truncated_frame");
  });
});

describe("payload encodings", () => {
  it.each([
    [Buffer.from([0, 1, 255]), "bytes"],
    ["héllo", "text"],
    ["", "text"],
    [{ a: [1, true, null], b: "x" }, "json"],
    [42, "json"],
    [null, "json"],
    [false, "json"],
  ] as Array<[unknown, string]>)("round-trips %j as %s", (value, enc) => {
    const encoded = encodePayload(value);
    expect(encoded.enc).toBe(enc);
    const back = decodePayload(encoded.bytes, encoded.enc);
    if (value instanceof Uint8Array) expect(Buffer.from(back as Uint8Array)).toEqual(value);
    else expect(back).toEqual(value);
  });

  it("refuses what JSON cannot carry, and keeps undecodable JSON as text", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(() => encodePayload(cyclic)).toThrow(/JSON/);
    expect(() => encodePayload(() => 1)).toThrow(/JSON/);
    expect(decodePayload(Buffer.from("{nope"), "json")).toBe("{nope");
  });
});
