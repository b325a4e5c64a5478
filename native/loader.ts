// The one place the C++ addon is loaded. Everything native goes through the
// typed surface below; a missing or broken build fails with one clear error.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NativeError } from "./native-error.js";

export interface NativePeerCredentials {
  pid: number | null;
  uid: number | null;
  gid: number | null;
  exe: string | null;
  /**
   * True when `exe` is known to be the connecting process's (a pidfd on
   * Linux, the audit token on macOS); false when it was read by pid alone,
   * which a recycled pid could fool, or is null.
   */
  exeVerified: boolean;
  /** Why `exe` is null or not verified; null when it is verified. */
  exeError: string | null;
  method: string;
}

/** Linux: the broker's read-write mapping of the notify table. */
export interface NativeNotifyTableWriter {
  readonly slotCount: number;
  readonly instance: bigint;
  /** Gives `slot` to the name with `nameHash` (0 frees it) and publishes `state`. */
  assign(slot: number, nameHash: number, state: bigint): void;
  /** Sets the state, bumps the generation, wakes waiters. */
  post(slot: number, state: bigint): void;
  state(slot: number): bigint;
  generation(slot: number): number;
  close(): void;
}

/** Linux: a client's read-only mapping of the notify table. */
export interface NativeNotifyTableReader {
  readonly slotCount: number;
  readonly instance: bigint | null;
  state(slot: number): bigint;
  generation(slot: number): number;
  nameHash(slot: number): number;
  /** errno of an attempt to make the mapping writable (EACCES: it cannot be). */
  writableErrno(): number;
  close(): void;
}

/** Linux: a thread sleeping on slots' generations; `onWake` runs on the JS thread, coalesced. */
export interface NativeNotifyWaiter {
  readonly method: "futex_waitv" | "futex_wait" | null;
  setSlots(slots: number[]): void;
  close(): void;
}

/** macOS: notify(3) as the broker uses it. */
export interface NativeNotifyPoster {
  /** notify_set_state (when `state` is given), then notify_post; notify_post alone takes no registration. */
  post(name: string, state?: bigint): void;
  /** notify_set_state without posting. */
  setState(name: string, state: bigint): void;
  state(name: string): bigint;
  forget(name: string): void;
  close(): void;
}

/** macOS: notify_register_dispatch; `onWake` runs on the JS thread, coalesced. */
export interface NativeNotifyDispatchWatcher {
  add(name: string): number;
  remove(token: number): void;
  drainChanged(): number[];
  close(): void;
}

/**
 * An XPC object held by JS (an encoded message, an endpoint); released when
 * collected. Each is tagged with its kind: one passed where the other is
 * expected throws a TypeError.
 */
export type NativeXpcObject = { readonly __xpcObject: unique symbol };

/**
 * An XPC peer's identity, read from its audit token when the listener
 * accepted it (`method` "xpc_audit_token"; `exeVerified` when the path came
 * through the token, macOS 11+).
 */
export interface NativeXpcIdentity extends NativePeerCredentials {
  teamId: string | null;
  auditToken: Uint8Array;
}

/**
 * What the listener's code-signing check found for a new peer (only when it
 * has a codeSigningRequirement). Data only: the native side refuses nobody;
 * daemon/core/policy.ts's codeSigningRefusal() decides.
 */
export interface NativeXpcCodeSigning {
  /** The requirement checked: the listener's codeSigningRequirement. */
  requirement: string;
  /** False when the requirement itself did not parse (SecRequirementCreateWithString). */
  requirementParsed: boolean;
  /** Whether the peer's code satisfies it (SecCodeCheckValidity through its audit token). */
  satisfied: boolean;
  /** The Security framework's OSStatus: 0 when satisfied, else the first failing call's. */
  osStatus: number;
  /** macOS 12+: XPC enforces the requirement on the peer's later messages (armed only on a peer that passed). */
  enforcedByXpc: boolean;
}

/** What an XPC listener or client reports, on the JS thread. */
export interface NativeXpcEvent {
  /**
   * Listener: peer (accepted; `identity`, and `codeSigning` when there is a
   * requirement; always before any other event of that peer), message (with
   * `replyToken` when it carries a reply context), fault (an unreadable
   * message; the peer's later messages are dropped), gone, refused (XPC
   * refused the peer's message: its code no longer satisfies the requirement,
   * XPC_ERROR_PEER_CODE_SIGNING_REQUIREMENT), flooded (the peer is over its
   * bound of messages not yet taken by JS; its later messages are dropped),
   * terminating (XPC_ERROR_TERMINATION_IMMINENT, delivered per peer: launchd
   * is ending the job), invalid. Client: message, reply, fault, interrupted,
   * invalid.
   */
  kind: "peer" | "message" | "gone" | "refused" | "fault" | "flooded" | "terminating" | "invalid" | "reply" | "interrupted" | "untrusted";
  peer?: number;
  replyToken?: number;
  message?: Record<string, unknown>;
  reason?: string;
  identity?: NativeXpcIdentity;
  codeSigning?: NativeXpcCodeSigning;
}

/**
 * macOS: an XPC listener, for a mach service or anonymous (service null).
 * start() again does nothing; every method but close() throws once closed.
 */
export interface NativeXpcListener {
  start(): void;
  endpoint(): NativeXpcObject;
  send(peer: number, encoded: NativeXpcObject): boolean;
  /**
   * Answers the message that carried `replyToken` through its reply context;
   * with `null`, hands the context back unanswered. Every token must come
   * back one way or the other (or with its peer's "gone"): each holds the
   * peer's message until then. False when there is no such context.
   */
  reply(peer: number, replyToken: number, encoded: NativeXpcObject | null): boolean;
  cancel(peer: number): void;
  close(): void;
}

/** macOS: a client connection to a mach service or an endpoint. */
export interface NativeXpcClient {
  send(message: object): void;
  sendWithReply(message: object): void;
  cancel(): void;
}

export interface NativeAddon {
  /** "linux" or "apple": which half of native/src was compiled in. */
  readonly platform: string;
  peerCredentials(fd: number): NativePeerCredentials;
  // Linux half
  NotifyTableWriter?: new (path: string, slots: number, readerUid?: number) => NativeNotifyTableWriter;
  NotifyTableReader?: new (path: string) => NativeNotifyTableReader;
  NotifyWaiter?: new (reader: NativeNotifyTableReader, onWake: () => void, options?: { perSlot?: boolean }) => NativeNotifyWaiter;
  /** JS -> value tree -> JS, for tests of the shared conversion code. */
  valueTreeRoundTrip(value: unknown, limits?: { maxDepth?: number; maxNodes?: number; maxBytes?: number }): unknown;
  // Apple half
  xpcEncode?: (message: object) => NativeXpcObject;
  /** Whether the code behind an audit token satisfies a code-signing requirement. */
  codeSatisfies?: (auditToken: Uint8Array, requirement: string) => boolean;
  /** A running process's effective uid and gid and its executable (proc_pidinfo, proc_pidpath); null when there is no such process. */
  processIdentity?: (pid: number) => { uid: number; gid: number; exe: string | null } | null;
  XpcListener?: new (
    service: string | null,
    onEvent: (event: NativeXpcEvent) => void,
    options?: { codeSigningRequirement?: string },
  ) => NativeXpcListener;
  /**
   * With `brokerRequirement`, a broker whose code does not satisfy it is
   * never heard: its messages are dropped and one { kind: "untrusted" } event
   * says so (XPC enforces it from macOS 12; before, the first message's
   * audit token is checked). An invalid requirement throws (macOS 12+) or is
   * reported as "untrusted" (macOS 11).
   */
  XpcClient?: new (target: string | NativeXpcObject, onEvent: (event: NativeXpcEvent) => void, options?: { privileged?: boolean; brokerRequirement?: string }) => NativeXpcClient;
  NotifyPoster?: new () => NativeNotifyPoster;
  NotifyDispatchWatcher?: new (onWake: () => void) => NativeNotifyDispatchWatcher;
  DarwinNotify?: {
    registerCheck(name: string): number;
    check(token: number): boolean;
    getState(token: number): bigint;
    cancel(token: number): void;
  };
}

// Works from native/ (tests run the .ts sources) and from dist/native/ (built).
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "native", "binding.gyp"))) return dir;
    dir = resolve(dir, "..");
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "..");
}

const NATIVE_DIR = join(findPackageRoot(), "native");
const BUILT_ADDON_PATH = join(NATIVE_DIR, "build", "Release", "xpcbus_native.node");

// node-gyp-build (CommonJS) finds the addon the standard way: native/build/Release
// first (a build from source: a checkout's, or an install where no prebuild
// fitted), then native/prebuilds/<platform>-<arch>/ (what `npm pack` ships,
// made by prebuildify). A build from source wins, so a checkout's tests load
// the addon `npm install` or `npm run build` just compiled, never a prebuild.
const nodeGypBuild = createRequire(import.meta.url)("node-gyp-build") as { path(dir: string): string };

/** The addon node-gyp-build picks in native/, or native/build's path (missing) when none fits. */
function foundAddonPath(): string {
  try {
    return nodeGypBuild.path(NATIVE_DIR);
  } catch {
    return BUILT_ADDON_PATH; // "No native build was found": reported below as not built
  }
}

/**
 * Names another build of the addon to load instead of native/build's, e.g. the
 * one `npm run test:sanitize` builds with -fsanitize=address,undefined. An
 * absolute path; read from the environment, so the daemon, clients and worker
 * threads a test starts load the same build as the test itself.
 */
export const NATIVE_ADDON_ENV = "XPCBUS_NATIVE_ADDON";

/**
 * The addon file loadNative() loads: $XPCBUS_NATIVE_ADDON when set, else
 * native/build's, else the prebuild for this platform.
 */
export function nativeAddonPath(): string {
  const chosen = process.env[NATIVE_ADDON_ENV];
  if (chosen === undefined || chosen === "") return foundAddonPath();
  if (!isAbsolute(chosen)) {
    throw new NativeError("native_unavailable", `$${NATIVE_ADDON_ENV} must be an absolute path to an xpcbus_native.node, not "${chosen}"`);
  }
  return chosen;
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached !== undefined) return cached;
  const path = nativeAddonPath();
  const env = process.env[NATIVE_ADDON_ENV];
  const chosen = env === undefined || env === "" ? "" : ` (chosen by $${NATIVE_ADDON_ENV})`;
  if (!existsSync(path)) {
    throw new NativeError(
      "native_unavailable",
      chosen === ""
        ? `the xpcbus native addon is not built (${path} is missing); run "npm install" or "npm run build" in the package`
        : `the xpcbus native addon ${path}${chosen} is missing`,
    );
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (cause) {
    throw new NativeError(
      "native_unavailable",
      `the xpcbus native addon at ${path}${chosen} failed to load: ${(cause as Error).message}; rebuild it with "npm run build"`,
      { cause },
    );
  }
  return cached;
}
