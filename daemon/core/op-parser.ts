// Turns a decoded map from a peer into a typed client op, or into the precise
// `err` the peer deserves. Nothing a peer sends can make this throw.
// Unknown fields are ignored so that newer clients can add optional ones
// (docs/PROTOCOL.md, "Versioning").

import type { WireErrorCode, ClientOp, ClientOpName, PayloadEncoding, PubOp } from "../../protocol/index.js";
import { CLIENT_OPS, PAYLOAD_ENCODINGS, INBOX_PREFIX, MAX_CLIENT_NAME_BYTES, MAX_HISTORY_LIMIT, MAX_ID, queueNameProblem, subjectProblem, validSubjectTokens, notifyNameProblem } from "../../protocol/index.js";
import type { BrokerLimitOptions } from "./options.js";

export interface OpFault {
  code: WireErrorCode;
  reason: string;
  /** The op's `id`, when it had a usable one, so the error can be correlated. */
  id?: number;
  subject?: string;
}

export type ParsedOp = { op: ClientOp } | { fault: OpFault };

class Invalid {
  constructor(
    readonly code: WireErrorCode,
    readonly reason: string,
  ) {}
}

function isUint(value: unknown, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

const knownOps: ReadonlySet<string> = new Set(CLIENT_OPS);
const knownEncodings: ReadonlySet<string> = new Set(PAYLOAD_ENCODINGS);

/** Field readers: each returns the typed value or throws Invalid, which parseClientOp catches. */
class Fields {
  constructor(
    readonly map: Record<string, unknown>,
    readonly op: string,
    readonly limits: BrokerLimitOptions,
  ) {}

  #bad(field: string, expected: string): Invalid {
    const value = this.map[field];
    const got = value === undefined ? "nothing" : value === null ? "null" : value instanceof Uint8Array ? "bytes" : typeof value;
    return new Invalid("bad_field", `"${this.op}" needs field "${field}" as ${expected}, got ${got}`);
  }

  uint(field: string, max = MAX_ID, min = 0): number {
    const value = this.map[field];
    if (!isUint(value, max) || value < min) throw this.#bad(field, min === 0 ? `an unsigned integer up to ${max}` : `an unsigned integer from ${min} to ${max}`);
    return value;
  }

  // Absent is `undefined` (the key left out, or CBOR's undefined); `null` is a wrong type (docs/PROTOCOL.md §2).
  optionalUint(field: string, max = MAX_ID, min = 0): number | undefined {
    return this.map[field] === undefined ? undefined : this.uint(field, max, min);
  }

  optionalBool(field: string): boolean | undefined {
    const value = this.map[field];
    if (value === undefined) return undefined;
    if (typeof value !== "boolean") throw this.#bad(field, "a boolean");
    return value;
  }

  optionalText(field: string, maxBytes: number): string | undefined {
    const value = this.map[field];
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw this.#bad(field, "a text string");
    if (Buffer.byteLength(value) > maxBytes) throw new Invalid("bad_field", `field "${field}" is over ${maxBytes} bytes`);
    return value;
  }

  subject(field: string, wildcards: boolean): string {
    const value = this.map[field];
    if (typeof value !== "string") throw this.#bad(field, "a text string");
    const tokens = validSubjectTokens(value, wildcards);
    if (tokens < 0) throw new Invalid("invalid_subject", subjectProblem(value, wildcards) ?? "invalid subject");
    // A broker may be configured tighter than the protocol's own maxima, but
    // its own inboxes (`_INBOX.<peer>.<n>`, three tokens) keep only those: a
    // responder must be able to publish its reply whatever the limits.
    if (value.startsWith(INBOX_PREFIX)) return value;
    if (value.length > this.limits.maxSubjectBytes) {
      throw new Invalid("invalid_subject", `a subject is at most ${this.limits.maxSubjectBytes} bytes on this broker (got ${value.length})`);
    }
    if (tokens > this.limits.maxSubjectTokens) {
      throw new Invalid("invalid_subject", `a subject has at most ${this.limits.maxSubjectTokens} tokens on this broker (got ${tokens})`);
    }
    return value;
  }

  payload(maxBytes: number): Uint8Array {
    const value = this.map["p"];
    if (value === undefined) return new Uint8Array(0);
    if (!(value instanceof Uint8Array)) throw this.#bad("p", "a byte string");
    if (value.byteLength > maxBytes) {
      throw new Invalid("payload_too_large", `payload of ${value.byteLength} bytes is over the limit of ${maxBytes}`);
    }
    return value;
  }

  /** A wrong type (null included) is `bad_field`, as for every field; a text name that breaks the rules is `invalid_queue`. */
  optionalQueue(): string | undefined {
    const value = this.map["queue"];
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw this.#bad("queue", "a text string");
    const problem = queueNameProblem(value);
    if (problem !== undefined) throw new Invalid("invalid_queue", problem);
    return value;
  }

  notifyName(): string {
    const value = this.map["name"];
    if (typeof value !== "string") throw this.#bad("name", "a text string");
    const problem = notifyNameProblem(value);
    if (problem !== undefined) throw new Invalid("invalid_name", problem);
    return value;
  }

  /** A uint64 notification state: any CBOR unsigned integer (decoded as a number, or a bigint above 2^53). */
  optionalState(): bigint | undefined {
    const value = this.map["state"];
    if (value === undefined) return undefined;
    if (typeof value === "bigint" && value >= 0n && value < 1n << 64n) return value;
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
    throw this.#bad("state", "an unsigned 64-bit integer");
  }

  encoding(): PayloadEncoding | undefined {
    const value = this.map["enc"];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || !knownEncodings.has(value)) throw this.#bad("enc", `one of ${PAYLOAD_ENCODINGS.join(", ")}`);
    return value as PayloadEncoding;
  }
}

export function parseClientOp(map: Record<string, unknown>, limits: BrokerLimitOptions): ParsedOp {
  const name = map["op"];
  if (name === "pub") {
    const pub = wellFormedPub(map, limits);
    if (pub !== undefined) return { op: pub };
    // Ill-formed: the general reader below says which field and why.
  }
  const rawId = map["id"];
  const id = isUint(rawId, MAX_ID) ? rawId : undefined;
  if (typeof name !== "string") return { fault: { code: "bad_field", reason: 'every frame needs field "op" as a text string', id } };
  if (!knownOps.has(name)) return { fault: { code: "unknown_op", reason: `unknown op "${name.slice(0, 32)}"`, id } };
  const f = new Fields(map, name, limits);
  try {
    return { op: readOp(name as ClientOpName, f, limits) };
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    const subject = typeof map["subject"] === "string" ? (map["subject"] as string).slice(0, 300) : undefined;
    return { fault: { code: error.code, reason: error.reason, id, subject } };
  }
}

const NO_PAYLOAD = new Uint8Array(0);

/** Whether `subject` passes Fields.subject(false) (the same rules and limits, inboxes exempt from the tighter ones). */
function acceptableSubject(subject: unknown, limits: BrokerLimitOptions): subject is string {
  if (typeof subject !== "string") return false;
  const tokens = validSubjectTokens(subject, false);
  if (tokens < 0) return false;
  return subject.startsWith(INBOX_PREFIX) || (subject.length <= limits.maxSubjectBytes && tokens <= limits.maxSubjectTokens);
}

/**
 * Publishes are the hot path (one per message in): the checks of readOp()'s
 * "pub", inline, and the decoded map itself is the op; undefined when any
 * check fails, and readOp() then names the fault.
 */
function wellFormedPub(map: Record<string, unknown>, limits: BrokerLimitOptions): PubOp | undefined {
  const { subject, p, enc, retain, reply, id } = map;
  if (!acceptableSubject(subject, limits)) return undefined;
  if (p !== undefined && (!(p instanceof Uint8Array) || p.byteLength > limits.maxPayloadBytes)) return undefined;
  if (enc !== undefined && (typeof enc !== "string" || !knownEncodings.has(enc))) return undefined;
  if (retain !== undefined && typeof retain !== "boolean") return undefined;
  if (reply !== undefined && !acceptableSubject(reply, limits)) return undefined;
  if (id !== undefined && !isUint(id, MAX_ID)) return undefined;
  if (p === undefined) map["p"] = NO_PAYLOAD;
  return map as unknown as PubOp;
}

function readOp(op: ClientOpName, f: Fields, limits: BrokerLimitOptions): ClientOp {
  switch (op) {
    case "hello":
      return { op, v: f.uint("v"), name: f.optionalText("name", MAX_CLIENT_NAME_BYTES), noEcho: f.optionalBool("noEcho"), id: f.optionalUint("id") };
    case "sub": {
      const subject = f.subject("subject", true);
      if (subject.startsWith(INBOX_PREFIX)) {
        throw new Invalid("reserved_subject", `subjects under "${INBOX_PREFIX}" are the broker's reply inboxes`);
      }
      const queue = f.optionalQueue();
      const replay = f.optionalBool("replay");
      const since = f.optionalUint("since", Number.MAX_SAFE_INTEGER);
      const sinceTime = f.optionalUint("sinceTime", Number.MAX_SAFE_INTEGER);
      if (since !== undefined || sinceTime !== undefined) {
        if (since !== undefined && sinceTime !== undefined) throw new Invalid("bad_field", `"sub" takes "since" or "sinceTime", not both`);
        if (queue !== undefined) throw new Invalid("bad_field", `"sub" with "queue" cannot resume ("since"/"sinceTime"): a queue group's members share the messages, none owns the past`);
        if (replay === true) throw new Invalid("bad_field", `"sub" takes "replay" or a resume point ("since"/"sinceTime"), not both: the resumed history already holds every retained publish after the point`);
      }
      return { op, sid: f.uint("sid"), subject, queue, replay, since, sinceTime, id: f.optionalUint("id") };
    }
    case "unsub":
      return { op, sid: f.uint("sid"), id: f.optionalUint("id") };
    case "pub": {
      const reply = f.map["reply"] === undefined ? undefined : f.subject("reply", false);
      return {
        op,
        subject: f.subject("subject", false),
        p: f.payload(limits.maxPayloadBytes),
        enc: f.encoding(),
        retain: f.optionalBool("retain"),
        reply,
        id: f.optionalUint("id"),
      };
    }
    case "get":
      return { op, subject: f.subject("subject", false), id: f.uint("id") };
    case "req": {
      const subject = f.subject("subject", false);
      if (subject.startsWith(INBOX_PREFIX)) {
        throw new Invalid("reserved_subject", `subjects under "${INBOX_PREFIX}" are the broker's reply inboxes`);
      }
      return {
        op,
        subject,
        p: f.payload(limits.maxPayloadBytes),
        enc: f.encoding(),
        // 1 ms at least: a field check like any other, so it comes before `hello_required` (§5).
        timeout: f.optionalUint("timeout", limits.maxRequestTimeoutMs, 1),
        id: f.uint("id"),
      };
    }
    case "ping":
      return { op, id: f.optionalUint("id") };
    case "status":
      return { op, id: f.uint("id") };
    case "watch":
      return { op, name: f.notifyName(), id: f.uint("id") };
    case "unwatch":
      return { op, name: f.notifyName(), id: f.optionalUint("id") };
    case "post":
      return { op, name: f.notifyName(), state: f.optionalState(), id: f.optionalUint("id") };
    case "state":
      return { op, name: f.notifyName(), id: f.uint("id") };
    case "history":
      return { op, subject: f.subject("subject", true), limit: f.optionalUint("limit", MAX_HISTORY_LIMIT, 1), id: f.uint("id") };
  }
}
