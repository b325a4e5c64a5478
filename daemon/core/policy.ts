// Who may do what: a policy maps peer identities to rights. Rules are tried
// in order and the first whose `match` fits the peer decides (first match
// wins, like a firewall: put narrow rules first). A peer no rule matches gets
// `otherwise`. Identity is what the transport established at connect time
// (SO_PEERCRED + pidfd, or the XPC audit token); it is never re-derived. An
// executable read by pid alone (no pidfd could be had) may be another
// process's, one that got the pid after the peer exited: it never lets an
// allowing rule fit, though it may still let a denying one fit (refusing is
// safe whatever the peer runs).
// Pure: parsing from a file and reloading live in daemon/policy-file.ts.

import type { PeerIdentity } from "./peer-link.js";

/** The rights given on subjects, each as a list of subject patterns. */
export const RIGHTS = ["publish", "subscribe", "request", "watch"] as const;
export type Right = (typeof RIGHTS)[number];

export interface PolicyMatch {
  uid?: number[];
  gid?: number[];
  /** Executable paths: exact, or globs where `*` is any run of characters but `/`, and `**` any run at all. */
  exe?: string[];
  /** macOS: a code-signing requirement the peer's code must satisfy (checked through the audit token of XPC peers). */
  codeSigning?: string;
  /** macOS: the team identifier the peer's code must be signed with (XPC peers). */
  teamId?: string;
  /** true: only the NATS bridge's in-process connection (identity method "bridge"); false: anything but it. */
  bridge?: boolean;
}

export interface PolicyRule {
  name: string;
  match: PolicyMatch;
  connect: "allow" | "deny";
  /** Subject patterns per right; a right left out grants nothing. */
  publish?: string[];
  subscribe?: string[];
  request?: string[];
  watch?: string[];
  /**
   * Whether `status` shows this peer the whole broker (every peer, the
   * subject map, publish counters, retained and process figures) rather than
   * its own connection only. Not about subjects, so a flag: `true` grants it,
   * left out (or `false`) does not.
   */
  monitor?: boolean;
}

export interface Policy {
  rules: PolicyRule[];
  otherwise: "allow" | "deny";
  /** Where it came from, for logs and reasons. */
  source: string;
  /**
   * What a peer that no rule fits is told, in place of "no rule of <source>
   * matches …" (followed by "; you are uid N"). For the built-in policy, which
   * has no file whose rules the peer could look up.
   */
  refusal?: string;
}

export interface Grant {
  allowed: boolean;
  /** The deciding rule's name, or "otherwise". */
  rule: string;
  /** Why, naming the identity attribute that decided. */
  reason: string;
  rights: Record<Right, string[]>;
  /** Whether `status` shows the whole broker, not only the peer's own connection. */
  monitor: boolean;
}

const NOTHING: Record<Right, string[]> = { publish: [], subscribe: [], request: [], watch: [] };
const EVERYTHING: Record<Right, string[]> = { publish: [">"], subscribe: [">"], request: [">"], watch: [">"] };

/** The default of a broker started without --policy: its own uid and root, with every right. */
export function ownerOnlyPolicy(ownerUid: number): Policy {
  const uids = ownerUid === 0 ? [0] : [ownerUid, 0];
  const who = ownerUid === 0 ? "root" : `uid ${ownerUid} and root`;
  return {
    rules: [{ name: "owner", match: { uid: uids }, connect: "allow", ...EVERYTHING, monitor: true }],
    otherwise: "deny",
    source: `the built-in policy (${who} only)`,
    refusal: `only ${who} may use this broker (no --policy given)`,
  };
}

function globToRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      out += ".*";
      i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

/** Checks a code-signing requirement against a peer's audit token (macOS; given by the daemon). */
export type CodeSigningCheck = (auditToken: Uint8Array, requirement: string) => boolean;

/**
 * What a transport's check of a new peer's code against the broker's
 * code-signing requirement found (XPC peers on macOS: the native listener
 * reports it as data and refuses nobody itself).
 */
export interface CodeSigningCheckResult {
  /** The requirement checked. */
  requirement: string;
  /** False when the requirement itself does not parse. */
  requirementParsed: boolean;
  /** Whether the peer's code satisfies it. */
  satisfied: boolean;
  /** The Security framework's OSStatus: 0 when satisfied, else the first failing call's. */
  osStatus: number;
}

/** The refusal of a peer by its code signature: sent as an `err` (no id), then the peer is closed. */
export interface CodeSigningRefusal {
  code: "code_signing_failed";
  reason: string;
}

function codeSigningFailed(reason: string): CodeSigningRefusal {
  return { code: "code_signing_failed", reason };
}

/**
 * The broker's refusal of a new peer whose code fails its code-signing
 * requirement (docs/PROTOCOL.md §14), or undefined when the peer goes on to
 * the rules of the policy. With no requirement (undefined or "", which the
 * listener does not check) nobody is refused here; with one, a peer whose
 * check result is missing is refused rather than let through unchecked.
 */
export function codeSigningRefusal(requirement: string | undefined, result: CodeSigningCheckResult | undefined): CodeSigningRefusal | undefined {
  if (requirement === undefined || requirement === "") return undefined;
  if (result === undefined) return codeSigningFailed(`the peer's code was not checked against the code-signing requirement "${requirement}"`);
  if (!result.requirementParsed) return codeSigningFailed(`the broker's code-signing requirement does not parse (OSStatus ${result.osStatus})`);
  if (!result.satisfied) {
    return codeSigningFailed(`the peer does not satisfy the code-signing requirement "${result.requirement}" (OSStatus ${result.osStatus})`);
  }
  return undefined;
}

/**
 * The refusal of a peer that passed at connect and later stopped satisfying
 * the requirement (macOS 12+: XPC enforces it on every message and reports
 * XPC_ERROR_PEER_CODE_SIGNING_REQUIREMENT).
 */
export const CODE_SIGNING_LOST: Readonly<CodeSigningRefusal> = Object.freeze(codeSigningFailed("the peer no longer satisfies the code-signing requirement"));

/** What mismatch() says of a rule that would fit but for an executable that could not be verified. */
const UNVERIFIED_EXE = "unverified exe";

/**
 * Which attribute of `identity` fails `match`, or undefined when it fits.
 * With `trustExe` false, an exe that fits but is not verified fails as UNVERIFIED_EXE.
 */
/** The identity method of the bridge's in-process connection (daemon/bridge/bridge-identity.ts). */
export const BRIDGE_METHOD = "bridge";

function mismatch(match: PolicyMatch, identity: PeerIdentity, check: CodeSigningCheck | undefined, trustExe: boolean): string | undefined {
  if (match.bridge !== undefined && (identity.method === BRIDGE_METHOD) !== match.bridge) return "bridge";
  if (match.uid !== undefined && (identity.uid === null || !match.uid.includes(identity.uid))) return "uid";
  if (match.gid !== undefined && (identity.gid === null || !match.gid.includes(identity.gid))) return "gid";
  if (match.exe !== undefined && (identity.exe === null || !match.exe.some((g) => globToRegExp(g).test(identity.exe as string)))) return "exe";
  // Checked last, so that it names only rules that nothing else rules out.
  if (match.exe !== undefined && !trustExe && identity.exeVerified !== true) return UNVERIFIED_EXE;
  // Known only for XPC peers on macOS (docs/SECURITY.md): elsewhere a rule that asks for them never fits.
  if (match.teamId !== undefined && (identity.teamId ?? null) !== match.teamId) return "teamId";
  if (match.codeSigning !== undefined) {
    if (identity.auditToken === undefined || check === undefined || !check(identity.auditToken, match.codeSigning)) return "codeSigning";
  }
  return undefined;
}

/** The executable as reasons and logs show it: "unknown", or the path, marked when it is not verified. */
export function describeExe(identity: PeerIdentity): string {
  if (identity.exe === null) return "unknown";
  return identity.exeVerified === true ? identity.exe : `${identity.exe} (not verified)`;
}

/** The identity as reasons show it. */
export function describeIdentity(identity: PeerIdentity): string {
  if (identity.method === BRIDGE_METHOD) return "the NATS bridge (identity \"bridge\")";
  return `uid ${identity.uid ?? "?"}, gid ${identity.gid ?? "?"}, exe ${describeExe(identity)}`;
}

function matchedOn(match: PolicyMatch): string {
  const keys = Object.keys(match);
  return keys.length === 0 ? "any peer" : keys.join(" and ");
}

export function evaluate(policy: Policy, identity: PeerIdentity, check?: CodeSigningCheck): Grant {
  // The first allowing rule that only an unverified exe kept from fitting: the reason names it.
  let skipped: string | undefined;
  for (const rule of policy.rules) {
    const miss = mismatch(rule.match, identity, check, rule.connect === "deny");
    if (miss === UNVERIFIED_EXE) skipped ??= rule.name;
    if (miss !== undefined) continue;
    const allowed = rule.connect === "allow";
    return {
      allowed,
      rule: rule.name,
      reason: `rule "${rule.name}" (matching ${matchedOn(rule.match)}) ${allowed ? "admits" : "denies"} ${describeIdentity(identity)}${unverifiedNote(skipped)}`,
      rights: allowed ? { publish: rule.publish ?? [], subscribe: rule.subscribe ?? [], request: rule.request ?? [], watch: rule.watch ?? [] } : NOTHING,
      monitor: allowed && rule.monitor === true,
    };
  }
  const allowed = policy.otherwise === "allow";
  const reason =
    policy.refusal !== undefined && !allowed
      ? `${policy.refusal}; you are ${identity.uid === null ? "of an unknown uid" : `uid ${identity.uid}`}`
      : `no rule of ${policy.source} matches ${describeIdentity(identity)}; the default is ${policy.otherwise}`;
  return {
    allowed,
    rule: "otherwise",
    reason: `${reason}${unverifiedNote(skipped)}`,
    rights: allowed ? EVERYTHING : NOTHING,
    // `otherwise: "allow"` is every right, this one included.
    monitor: allowed,
  };
}

function unverifiedNote(skipped: string | undefined): string {
  if (skipped === undefined) return "";
  return `; rule "${skipped}" was not applied: it matches on exe, and the executable could not be verified (it was read by pid only, without a pidfd, so another process that got a recycled pid could pass for the peer)`;
}

/**
 * Whether the right pattern `right` covers every subject `requested` (itself
 * possibly a pattern) can name. `a.>` covers `a.b` and `a.*.c`; `a.*`
 * covers `a.b` but not `a.>`; `>` covers everything.
 */
export function covers(right: string, requested: string): boolean {
  // The common grants, without splitting: everything, or exactly this subject.
  if (right === ">" || right === requested) return true;
  const r = right.split(".");
  const s = requested.split(".");
  for (let i = 0; i < r.length; i++) {
    const token = r[i];
    if (token === ">") return i < s.length;
    if (i >= s.length) return false;
    const want = s[i];
    if (want === ">") return false;
    if (token === "*") continue;
    if (want === "*" || want !== token) return false;
  }
  return r.length === s.length;
}

export function permits(grant: Grant, right: Right, subject: string): boolean {
  return grant.rights[right].some((pattern) => covers(pattern, subject));
}

/** Whether `status` shows this peer the whole broker; a peer judged by no policy (grant undefined) may do everything. */
export function mayMonitor(grant: Grant | undefined): boolean {
  return grant === undefined || grant.monitor;
}
