// The XPC transport's TypeScript half, in process on any platform: the native
// listener is replaced by a fake with the NativeXpcListener interface, fed the
// events the addon reports (docs/PROTOCOL.md §14). What the addon itself does
// on a Mac is type-checked by `npm run check:apple`; this checks the one place
// that decides: a peer whose code-signing check failed gets the broker's
// `code_signing_failed` err with the reason, then is cancelled, and never
// reaches the broker.
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { NativeXpcCodeSigning } from "../native/index.js";
import type { PeerInbound, PeerLink } from "./core/peer-link.js";
import { CODE_SIGNING_LOST, codeSigningRefusal } from "./core/policy.js";
import { XpcServerTransport } from "./transports/xpc-server.js";
import { FakeXpcListener as FakeListener, fakeXpcIdentity, fakeXpcNative as fakeNative } from "./test-support/fake-xpc-listener.js";

const REQUIREMENT = 'anchor apple generic and certificate leaf[subject.OU] = "TEAMID"';

describe("codeSigningRefusal", () => {
  const result = (over: Partial<NativeXpcCodeSigning>): NativeXpcCodeSigning => ({
    requirement: REQUIREMENT,
    requirementParsed: true,
    satisfied: true,
    osStatus: 0,
    enforcedByXpc: true,
    ...over,
  });

  it("refuses nobody without a requirement (none, or empty, which the listener does not check)", () => {
    expect(codeSigningRefusal(undefined, undefined)).toBeUndefined();
    expect(codeSigningRefusal("", undefined)).toBeUndefined();
    expect(codeSigningRefusal(undefined, result({ satisfied: false, osStatus: -67050 }))).toBeUndefined();
  });

  it("lets a peer that satisfies the requirement through", () => {
    expect(codeSigningRefusal(REQUIREMENT, result({}))).toBeUndefined();
  });

  it("refuses a peer that does not satisfy it, naming the requirement and the OSStatus", () => {
    expect(codeSigningRefusal(REQUIREMENT, result({ satisfied: false, osStatus: -67050 }))).toEqual({
      code: "code_signing_failed",
      reason: `the peer does not satisfy the code-signing requirement "${REQUIREMENT}" (OSStatus -67050)`,
    });
  });

  it("refuses every peer when the requirement does not parse, and says it is the broker's", () => {
    expect(codeSigningRefusal("nonsense(", result({ requirement: "nonsense(", requirementParsed: false, satisfied: false, osStatus: -67052 }))).toEqual({
      code: "code_signing_failed",
      reason: "the broker's code-signing requirement does not parse (OSStatus -67052)",
    });
  });

  it("refuses a peer whose check is missing rather than letting it through unchecked", () => {
    expect(codeSigningRefusal(REQUIREMENT, undefined)).toEqual({
      code: "code_signing_failed",
      reason: `the peer's code was not checked against the code-signing requirement "${REQUIREMENT}"`,
    });
  });
});

const identity = (pid: number) => fakeXpcIdentity(pid, { exe: "/Applications/App.app/Contents/MacOS/App", teamId: "TEAMID" });

async function started(codeSigningRequirement?: string) {
  const attached: PeerLink[] = [];
  const inbound: Array<{ kind: string; map?: Record<string, unknown> }> = [];
  const transport = new XpcServerTransport({ service: null, codeSigningRequirement, logger: pino({ level: "silent" }), native: fakeNative });
  await transport.start({
    attach(link: PeerLink): PeerInbound {
      attached.push(link);
      return {
        message: (map) => inbound.push({ kind: "message", map }),
        fault: (code) => inbound.push({ kind: code }),
        ended: () => inbound.push({ kind: "ended" }),
      };
    },
  });
  const listener = FakeListener.last!;
  return { transport, listener, attached, inbound };
}

const check = (satisfied: boolean): NativeXpcCodeSigning => ({
  requirement: REQUIREMENT,
  requirementParsed: true,
  satisfied,
  osStatus: satisfied ? 0 : -67050,
  enforcedByXpc: satisfied,
});

describe("XPC server transport (fake native listener)", () => {
  it("passes the requirement to the listener, which checks each peer at accept", async () => {
    const { listener } = await started(REQUIREMENT);
    expect(listener.options).toEqual({ codeSigningRequirement: REQUIREMENT });
    expect(listener.started).toBe(true);
  });

  it("refuses a peer whose check failed: err code_signing_failed with the reason, then cancel; the broker never sees it", async () => {
    const { listener, attached } = await started(REQUIREMENT);
    listener.emit({ kind: "peer", peer: 7, identity: identity(4242), codeSigning: check(false) });
    expect(listener.calls).toEqual([
      {
        op: "send",
        peer: 7,
        message: {
          op: "err",
          code: "code_signing_failed",
          reason: `the peer does not satisfy the code-signing requirement "${REQUIREMENT}" (OSStatus -67050)`,
        },
      },
      { op: "cancel", peer: 7 },
    ]);
    expect(attached).toEqual([]);
    // What it sent before the refusal reached JS, and its end, are dropped.
    listener.emit({ kind: "message", peer: 7, message: { op: "hello", v: 1, id: 0 } });
    listener.emit({ kind: "gone", peer: 7, reason: "the peer's connection was invalidated" });
    expect(attached).toEqual([]);
  });

  it("tells a failing peer why even once the broker stops accepting", async () => {
    const { transport, listener } = await started(REQUIREMENT);
    await transport.stopAccepting();
    listener.emit({ kind: "peer", peer: 3, identity: identity(1), codeSigning: check(false) });
    expect(listener.calls.map((c) => c.op)).toEqual(["send", "cancel"]);
    listener.emit({ kind: "peer", peer: 4, identity: identity(2), codeSigning: check(true) });
    expect(listener.calls.slice(2)).toEqual([{ op: "cancel", peer: 4 }]);
  });

  it("refuses a peer the listener reports without a check when there is a requirement", async () => {
    const { listener, attached } = await started(REQUIREMENT);
    listener.emit({ kind: "peer", peer: 5, identity: identity(1) });
    expect(listener.calls[0]).toMatchObject({ op: "send", peer: 5, message: { op: "err", code: "code_signing_failed" } });
    expect(listener.calls[1]).toEqual({ op: "cancel", peer: 5 });
    expect(attached).toEqual([]);
  });

  it("attaches a peer that passed, with the identity the addon read from its audit token", async () => {
    const { listener, attached, inbound } = await started(REQUIREMENT);
    listener.emit({ kind: "peer", peer: 1, identity: identity(4242), codeSigning: check(true) });
    expect(listener.calls).toEqual([]);
    expect(attached).toHaveLength(1);
    expect(attached[0]!.transport).toBe("xpc");
    expect(attached[0]!.identity).toEqual({
      pid: 4242,
      uid: 501,
      gid: 20,
      exe: "/Applications/App.app/Contents/MacOS/App",
      exeVerified: true,
      method: "xpc_audit_token",
      teamId: "TEAMID",
      auditToken: new Uint8Array(32),
    });
    listener.emit({ kind: "message", peer: 1, message: { op: "hello", v: 1, id: 0 } });
    expect(inbound).toEqual([{ kind: "message", map: { op: "hello", v: 1, id: 0 } }]);
  });

  it("refuses an attached peer that XPC later finds unsigned (refused): err, one cancel, then the broker sees it end", async () => {
    const { listener, attached, inbound } = await started(REQUIREMENT);
    listener.emit({ kind: "peer", peer: 2, identity: identity(9), codeSigning: check(true) });
    listener.emit({ kind: "refused", peer: 2 });
    expect(listener.calls).toEqual([
      { op: "send", peer: 2, message: { op: "err", code: CODE_SIGNING_LOST.code, reason: CODE_SIGNING_LOST.reason } },
      { op: "cancel", peer: 2 },
    ]);
    // The broker's own close of the link later cancels nothing twice.
    attached[0]!.close();
    expect(listener.calls).toHaveLength(2);
    listener.emit({ kind: "gone", peer: 2, reason: "the peer's connection was invalidated" });
    expect(inbound).toEqual([{ kind: "ended" }]);
  });

  it("checks nothing without a requirement: every peer is attached", async () => {
    const { listener, attached } = await started(undefined);
    expect(listener.options).toEqual({ codeSigningRequirement: undefined });
    listener.emit({ kind: "peer", peer: 1, identity: identity(1) });
    expect(listener.calls).toEqual([]);
    expect(attached).toHaveLength(1);
  });

  it("does not trust an executable the addon did not read through the audit token", async () => {
    const { listener, attached } = await started(undefined);
    listener.emit({ kind: "peer", peer: 1, identity: { ...identity(1), exeVerified: false, exeError: "read by pid only, without the audit token" } });
    expect(attached[0]!.identity.exeVerified).toBe(false);
  });
});
