// Which of an XPC peer's reply contexts (xpc_dictionary_create_reply) the
// broker keeps, and which answer goes through each. The native listener
// makes one for every message sent with a reply handler; the policy is here.
//
// The rule (docs/PROTOCOL.md §14, "Requests"): a message sent with a reply
// handler and a valid `id` gets its one answer carrying that id (§4:
// `welcome` for `hello`, `pong` for `ping`, `ok` or `err` for the others)
// through the reply, so it arrives in the reply handler. Every other reply
// context is handed back at once (nothing could be matched to it), as is the
// context of an op that the broker answered some other way (an `err`
// without id that closes). An answer never takes a context that is not its
// op's: the answer to every op but `req` is sent before the broker reads the
// next message (§4, "Correlation by id"), so while one message is read only
// its own context can be taken by its id; `req` contexts wait, by id, for
// the request to settle.

import type { BrokerMsg } from "../../protocol/index.js";

/**
 * `req` contexts one peer may hold while its requests are pending. Above the
 * broker's default maxPendingRequestsPerPeer (1024), so within the defaults
 * every request keeps its context; past it a request is still answered, in
 * the event handler instead of the reply handler.
 */
export const MAX_REQUEST_REPLY_CONTEXTS_PER_PEER = 4096;

const MAX_ID = 0xffff_ffff;
const ANSWERS: ReadonlySet<string> = new Set(["welcome", "pong", "ok", "err"]);

function validId(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_ID ? value : undefined;
}

export class XpcReplyContexts {
  readonly #release: (token: number) => void;
  /** `req` ids awaiting their answer → reply tokens. */
  readonly #requests = new Map<number, number>();
  /** The message being read: its id, its context while unanswered, and whether it is a kept `req`. */
  #reading: { id: number; token: number | undefined; request: boolean } | undefined;

  /** `release` hands a token back to the listener unanswered. */
  constructor(release: (token: number) => void) {
    this.#release = release;
  }

  /** Contexts kept for pending requests, for tests and diagnostics. */
  get pendingRequests(): number {
    return this.#requests.size;
  }

  /** Before the broker reads `map`, which came with `token` if it has a reply handler. */
  begin(map: Record<string, unknown>, token: number | undefined): void {
    this.#reading = undefined;
    const id = validId(map["id"]);
    if (id === undefined) {
      if (token !== undefined) this.#release(token);
      return;
    }
    if (map["op"] !== "req") {
      this.#reading = { id, token, request: false };
      return;
    }
    if (token !== undefined && !this.#requests.has(id) && this.#requests.size < MAX_REQUEST_REPLY_CONTEXTS_PER_PEER) {
      // Its answer takes it by id, now (refused at once) or when the request settles.
      this.#requests.set(id, token);
      this.#reading = { id, token: undefined, request: true };
      return;
    }
    // No context, an id already awaiting its answer (§4: SHOULD NOT), or over
    // the bound: answered in the event handler, and while it is read its id
    // does not take the pending request's context.
    if (token !== undefined) this.#release(token);
    this.#reading = { id, token: undefined, request: false };
  }

  /** After the broker has read the message: its context, if its answer did not take it, goes back. */
  end(): void {
    const token = this.#reading?.token;
    this.#reading = undefined;
    if (token !== undefined) this.#release(token);
  }

  /** The reply token `message` is to be sent through, if any; it is used up. */
  take(message: BrokerMsg): number | undefined {
    const id = ANSWERS.has(message.op) ? validId((message as { id?: unknown }).id) : undefined;
    if (id === undefined) return undefined;
    const reading = this.#reading;
    if (reading !== undefined && reading.id === id && !reading.request) {
      const token = reading.token;
      reading.token = undefined;
      return token;
    }
    if (message.op !== "ok" && message.op !== "err") return undefined;
    const token = this.#requests.get(id);
    if (token !== undefined) this.#requests.delete(id);
    return token;
  }

  /** The peer is gone: the listener freed its contexts with it. */
  clear(): void {
    this.#requests.clear();
    this.#reading = undefined;
  }
}
