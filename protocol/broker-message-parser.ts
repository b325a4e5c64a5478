// Turns a decoded map from the broker into a typed message, or into a fault
// naming what was wrong: the client-side mirror of daemon/core/op-parser.ts.
// Nothing a broker sends can make this throw. Unknown fields are ignored and
// an unknown `op` is a fault of its own kind, which a client ignores
// (docs/PROTOCOL.md §3). An `ok`'s fields depend on the op it answers, which
// only the client knows (by `id`): `readAnswer()` reads them per op (§6.3).

import { MAX_ID } from "./limits.js";
import { PAYLOAD_ENCODINGS } from "./messages.js";
import type {
  BrokerLimits,
  BrokerStatus,
  ByeMsg,
  ClientOpName,
  DeliverMsg,
  DroppedMsg,
  ErrMsg,
  GapMsg,
  NotifyInfo,
  OkMsg,
  PayloadEncoding,
  PongMsg,
  WelcomeMsg,
} from "./messages.js";

/** An `err` as read: `code` may be one this version does not know, which a client must tolerate (§3, §6.4). */
export interface ReadErrMsg extends Omit<ErrMsg, "code"> {
  code: string;
}

/** A `bye` as read: `code` is `"shutdown"` today, but is read as any text (§6.6). */
export interface ReadByeMsg extends Omit<ByeMsg, "code"> {
  code: string;
}

export type BrokerMessage = WelcomeMsg | DeliverMsg | OkMsg | ReadErrMsg | PongMsg | ReadByeMsg | DroppedMsg | GapMsg;

export interface BrokerMessageFault {
  /** `unknown_op`: an op this version does not know (to be ignored, §3); `bad_field`: a known op, ill-formed. */
  code: "unknown_op" | "bad_field";
  reason: string;
  /** The message's `op`, when it was text. */
  op?: string;
  /** The message's `id`, when it had a usable one: the call it answers can then be failed rather than left waiting. */
  id?: number;
}

export type ParsedBrokerMessage = { message: BrokerMessage } | { fault: BrokerMessageFault };

/** The broker's ops, in the order of docs/PROTOCOL.md §6. */
export const BROKER_OPS: readonly BrokerMessage["op"][] = ["welcome", "msg", "ok", "err", "pong", "bye", "dropped", "gap"];

// ---- what `ok` carries, per answered op (§6.3) ----

/** `ok` of `sub`, `unsub`, `unwatch`, `post`, and `pong` of `ping`: nothing besides the id. */
export type EmptyAnswer = Record<string, never>;

/** `ok` of `pub`: the publish's `seq`; for a reply to an inbox `seq` is 0 and `delivered` says whether it reached the requester. */
export interface PubAnswer {
  seq: number;
  delivered?: boolean;
}

/** `ok` of `get`. */
export type GetAnswer =
  | { found: true; subject: string; seq: number; p: Uint8Array; enc: PayloadEncoding | undefined }
  | { found: false; subject: string; seq: number };

/** `ok` of `req`: the reply. */
export interface ReqAnswer {
  subject: string;
  p: Uint8Array;
  enc: PayloadEncoding | undefined;
}

/** `ok` of `watch`: `slot` and `hash` only with mechanism `"table"`. */
export interface WatchAnswer {
  name: string;
  state: bigint;
  slot?: number;
  hash?: number;
}

/** `ok` of `state`. */
export interface StateAnswer {
  name: string;
  state: bigint;
}

/** `ok` of `sub`: the highest sequence number issued when it began; absent from older brokers. */
export interface SubAnswer {
  seq?: number;
}

/** One message of a `history` answer. */
export interface HistoryMessage {
  subject: string;
  seq: number;
  /** When the broker accepted it, Unix milliseconds. */
  time: number;
  p: Uint8Array;
  enc: PayloadEncoding | undefined;
}

/** `ok` of `history`: the latest kept messages, oldest first; `truncated` when more were asked than fit one frame. */
export interface HistoryAnswer {
  messages: HistoryMessage[];
  truncated: boolean;
}

/** What the answer to each op carries, by op name. */
export interface Answers {
  sub: SubAnswer;
  unsub: EmptyAnswer;
  pub: PubAnswer;
  get: GetAnswer;
  req: ReqAnswer;
  ping: EmptyAnswer;
  status: BrokerStatus;
  watch: WatchAnswer;
  unwatch: EmptyAnswer;
  post: EmptyAnswer;
  state: StateAnswer;
  history: HistoryAnswer;
}

/** Every op but `hello` (answered by `welcome`) gets `ok`, or `pong` for `ping`. */
export type AnsweredOp = Exclude<ClientOpName, "hello">;

export type ReadAnswer<T> = { answer: T } | { fault: BrokerMessageFault };

// ---- field readers ----

/** Thrown by the readers below, caught by the exported functions: never escapes this file. */
class Invalid {
  constructor(readonly reason: string) {}
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function kindOf(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (value instanceof Uint8Array) return "bytes";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

const knownOps: ReadonlySet<string> = new Set(BROKER_OPS);
const knownEncodings: ReadonlySet<string> = new Set(PAYLOAD_ENCODINGS);
const U64_END = 1n << 64n;

class Fields {
  /** `where` names the message in faults (`"msg"`, `"welcome.limits"`); quoted only when a fault is made, off the hot path. */
  constructor(
    readonly map: Record<string, unknown>,
    readonly where: string,
  ) {}

  bad(field: string, expected: string): Invalid {
    return new Invalid(`"${this.where}" needs field "${field}" as ${expected}, got ${kindOf(this.map[field])}`);
  }

  /**
   * An unsigned integer up to `max`. The codec decodes integers up to 2^53 as
   * numbers; a bigint in that range (a transport that does not go through the
   * codec) is read as the same number.
   */
  uint(field: string, max = Number.MAX_SAFE_INTEGER): number {
    let value = this.map[field];
    if (typeof value === "bigint" && value >= 0n && value <= BigInt(max)) value = Number(value);
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
      throw this.bad(field, `an unsigned integer up to ${max}`);
    }
    return value;
  }

  optionalUint(field: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.map[field] === undefined ? undefined : this.uint(field, max);
  }

  /** A full unsigned 64-bit value (`state`, `instance`): a number up to 2^53, a bigint above (§2). */
  uint64(field: string): bigint {
    const value = this.map[field];
    if (typeof value === "bigint" && value >= 0n && value < U64_END) return value;
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
    throw this.bad(field, "an unsigned 64-bit integer");
  }

  text(field: string): string {
    const value = this.map[field];
    if (typeof value !== "string") throw this.bad(field, "a text string");
    return value;
  }

  optionalText(field: string): string | undefined {
    return this.map[field] === undefined ? undefined : this.text(field);
  }

  optionalBool(field: string): boolean | undefined {
    const value = this.map[field];
    if (value === undefined) return undefined;
    if (typeof value !== "boolean") throw this.bad(field, "a boolean");
    return value;
  }

  bytes(field: string): Uint8Array {
    const value = this.map[field];
    if (!(value instanceof Uint8Array)) throw this.bad(field, "a byte string");
    return value;
  }

  /** Absent means `"bytes"` (§6.2); left undefined here so the caller's default stays visible. */
  encoding(): PayloadEncoding | undefined {
    const value = this.map["enc"];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || !knownEncodings.has(value)) throw this.bad("enc", `one of ${PAYLOAD_ENCODINGS.join(", ")}`);
    return value as PayloadEncoding;
  }

  nested(field: string): Record<string, unknown> {
    const value = this.map[field];
    if (!isMap(value)) throw this.bad(field, "a map");
    return value;
  }
}

function usableId(value: unknown): number | undefined {
  return isUintNumber(value, MAX_ID) ? value : undefined;
}

// ---- messages ----

/** Reads one broker message. Never throws. */
export function parseBrokerMessage(map: Record<string, unknown>): ParsedBrokerMessage {
  const op = map["op"];
  if (typeof op !== "string") return { fault: fault("bad_field", 'every broker message needs field "op" as a text string', undefined, map) };
  if (!knownOps.has(op)) return { fault: fault("unknown_op", `unknown broker op "${op.slice(0, 32)}"`, op, map) };
  if (op === "msg") {
    const msg = wellFormedMsg(map);
    if (msg !== undefined) return { message: msg };
    // Ill-formed: the general reader below names the field.
  }
  try {
    return { message: readMessage(op as BrokerMessage["op"], new Fields(map, op)) };
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    return { fault: fault("bad_field", error.reason, op, map) };
  }
}

/**
 * Deliveries are the hot path (one per publish per peer): checked here
 * inline, the same checks as readMessage()'s for "msg", and the decoded map
 * itself is the message (fields this version does not know ride along
 * unread); undefined when any check fails.
 */
function wellFormedMsg(map: Record<string, unknown>): DeliverMsg | undefined {
  const { subject, p, seq, enc, reply, sid, queue, retained } = map;
  if (typeof subject !== "string" || !(p instanceof Uint8Array) || !isUintNumber(seq, Number.MAX_SAFE_INTEGER)) return undefined;
  if (enc !== undefined && (typeof enc !== "string" || !knownEncodings.has(enc))) return undefined;
  if (reply !== undefined && typeof reply !== "string") return undefined;
  if (sid !== undefined && !isUintNumber(sid, MAX_ID)) return undefined;
  if (queue !== undefined && typeof queue !== "string") return undefined;
  if (retained !== undefined && typeof retained !== "boolean") return undefined;
  return map as unknown as DeliverMsg;
}

function isUintNumber(value: unknown, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

function fault(code: BrokerMessageFault["code"], reason: string, op: string | undefined, map: Record<string, unknown>): BrokerMessageFault {
  const found: BrokerMessageFault = { code, reason };
  if (op !== undefined) found.op = op;
  const id = usableId(map["id"]);
  if (id !== undefined) found.id = id;
  return found;
}

function readMessage(op: BrokerMessage["op"], f: Fields): BrokerMessage {
  switch (op) {
    case "welcome":
      return withId(
        { op, v: f.uint("v"), peer: f.uint("peer"), server: f.text("server"), limits: readLimits(f), notify: readNotify(f) },
        f.optionalUint("id", MAX_ID),
      );
    case "msg": {
      // The hot path: built field by field, optional ones only when present (no `delete`, which slows objects down).
      const msg: DeliverMsg = { op, subject: f.text("subject"), p: f.bytes("p"), seq: f.uint("seq") };
      const enc = f.encoding();
      if (enc !== undefined) msg.enc = enc;
      const reply = f.optionalText("reply");
      if (reply !== undefined) msg.reply = reply;
      const sid = f.optionalUint("sid", MAX_ID);
      if (sid !== undefined) msg.sid = sid;
      const queue = f.optionalText("queue");
      if (queue !== undefined) msg.queue = queue;
      const retained = f.optionalBool("retained");
      if (retained !== undefined) msg.retained = retained;
      return msg;
    }
    case "ok":
      // The other fields are read by readAnswer(), once the op it answers is known.
      return { ...f.map, op, id: f.uint("id", MAX_ID) };
    case "err": {
      const err: ReadErrMsg = { op, code: f.text("code"), reason: f.text("reason") };
      const id = f.optionalUint("id", MAX_ID);
      if (id !== undefined) err.id = id;
      const subject = f.optionalText("subject");
      if (subject !== undefined) err.subject = subject;
      return err;
    }
    case "pong":
      return withId({ op }, f.optionalUint("id", MAX_ID));
    case "bye":
      return { op, code: f.text("code"), reason: f.text("reason") };
    case "dropped":
      return { op, count: f.uint("count"), total: f.uint("total") };
    case "gap": {
      const gap: GapMsg = { op, sid: f.uint("sid", MAX_ID), subject: f.text("subject") };
      const lost = f.optionalUint("lost");
      if (lost !== undefined) gap.lost = lost;
      if (f.optionalBool("atLeast") === true) gap.atLeast = true;
      return gap;
    }
  }
}

function readLimits(f: Fields): BrokerLimits {
  const l = new Fields(f.nested("limits"), "welcome.limits");
  return {
    maxFrameBytes: l.uint("maxFrameBytes"),
    maxPayloadBytes: l.uint("maxPayloadBytes"),
    maxSubjectBytes: l.uint("maxSubjectBytes"),
    maxSubjectTokens: l.uint("maxSubjectTokens"),
    maxSubscriptionsPerPeer: l.uint("maxSubscriptionsPerPeer"),
    maxPendingRequestsPerPeer: l.uint("maxPendingRequestsPerPeer"),
    maxRequestTimeoutMs: l.uint("maxRequestTimeoutMs"),
    maxWatchesPerPeer: l.uint("maxWatchesPerPeer"),
  };
}

/**
 * `welcome.notify`: absent when the broker posts no notifications. A
 * mechanism this version does not know reads as absent too: such a client
 * cannot wait for notifications (§6.1), and none is better than wrong ones.
 */
function readNotify(f: Fields): NotifyInfo | undefined {
  if (f.map["notify"] === undefined) return undefined;
  const n = new Fields(f.nested("notify"), "welcome.notify");
  const mechanism = n.text("mechanism");
  const prefix = n.text("prefix");
  if (mechanism === "table") return { mechanism, prefix, table: n.text("table"), slots: n.uint("slots"), instance: n.uint64("instance") };
  if (mechanism === "notify(3)") return { mechanism, prefix };
  return undefined;
}

function withId<T extends object>(message: T, id: number | undefined): T & { id?: number } {
  return id === undefined ? message : { ...message, id };
}


// ---- answers ----

/**
 * Reads what an `ok` (or, for `ping`, a `pong`) carries as the answer to `op`,
 * typed by op: `readAnswer("get", ok)` is a GetAnswer. Never throws.
 */
export function readAnswer<K extends AnsweredOp>(op: K, message: OkMsg | PongMsg): ReadAnswer<Answers[K]> {
  const f = new Fields(message as Record<string, unknown>, message.op);
  try {
    return { answer: readAnswerFields(op, f) as Answers[K] };
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    const found: BrokerMessageFault = { code: "bad_field", reason: `${error.reason} (answering "${op}")`, op: message.op };
    if (message.id !== undefined) found.id = message.id;
    return { fault: found };
  }
}

function readAnswerFields(op: AnsweredOp, f: Fields): Answers[AnsweredOp] {
  switch (op) {
    case "pub": {
      const answer: PubAnswer = { seq: f.uint("seq") };
      const delivered = f.optionalBool("delivered");
      if (delivered !== undefined) answer.delivered = delivered;
      return answer;
    }
    case "get": {
      const found = f.optionalBool("found");
      if (found === undefined) throw f.bad("found", "a boolean");
      const subject = f.text("subject");
      const seq = f.uint("seq");
      return found ? { found, subject, seq, p: f.bytes("p"), enc: f.encoding() } : { found, subject, seq };
    }
    case "req":
      return { subject: f.text("subject"), p: f.bytes("p"), enc: f.encoding() };
    case "status":
      // Informative and growing (§6.3): checked as a map, its contents handed on as they are.
      return f.nested("status") as unknown as BrokerStatus;
    case "watch": {
      const answer: WatchAnswer = { name: f.text("name"), state: f.uint64("state") };
      const slot = f.optionalUint("slot");
      if (slot !== undefined) answer.slot = slot;
      const hash = f.optionalUint("hash");
      if (hash !== undefined) answer.hash = hash;
      return answer;
    }
    case "state":
      return { name: f.text("name"), state: f.uint64("state") };
    case "sub": {
      const seq = f.optionalUint("seq");
      return seq === undefined ? {} : { seq };
    }
    case "history": {
      const list = f.map["messages"];
      if (!Array.isArray(list)) throw f.bad("messages", "an array");
      const messages = list.map((item, i): HistoryMessage => {
        if (!isMap(item)) throw f.bad(`messages[${i}]`, "a map");
        const m = new Fields(item, `history.messages[${i}]`);
        return { subject: m.text("subject"), seq: m.uint("seq"), time: m.uint("time"), p: m.bytes("p"), enc: m.encoding() };
      });
      return { messages, truncated: f.optionalBool("truncated") === true };
    }
    case "unsub":
    case "ping":
    case "unwatch":
    case "post":
      return {};
  }
}
