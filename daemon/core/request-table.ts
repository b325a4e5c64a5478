// Requests in flight: each has a private inbox subject, one requester, one
// chosen responder and one timer. Whichever comes first settles it: the
// responder's reply, the timeout, or either peer going away.

import { INBOX_PREFIX } from "../../protocol/index.js";
import type { PayloadEncoding } from "../../protocol/index.js";
import type { Session } from "./session.js";

interface PendingRequest {
  readonly inbox: string;
  readonly id: number;
  readonly subject: string;
  readonly requester: Session;
  readonly responder: Session;
  readonly timer: NodeJS.Timeout;
}

export class RequestTable {
  readonly #pending = new Map<string, PendingRequest>();
  #counter = 0;

  get size(): number {
    return this.#pending.size;
  }

  /** Registers a request; the requester is told `timeout` if nothing settles it within `timeoutMs`. */
  open(requester: Session, responder: Session, id: number, subject: string, timeoutMs: number): string {
    this.#counter = (this.#counter + 1) % Number.MAX_SAFE_INTEGER;
    // The requester's peer id keeps inboxes readable in logs; the counter keeps them unique.
    const inbox = `${INBOX_PREFIX}${requester.id}.${this.#counter}`;
    const timer = setTimeout(() => {
      if (!this.#settle(inbox)) return;
      requester.error("timeout", `no reply to the request on "${subject}" within ${timeoutMs} ms`, id, subject);
    }, timeoutMs);
    timer.unref();
    const pending: PendingRequest = { inbox, id, subject, requester, responder, timer };
    this.#pending.set(inbox, pending);
    requester.addRequesting(inbox);
    responder.addAnswering(inbox);
    return inbox;
  }

  /**
   * A publish to an inbox subject. Only the responder the request was given to
   * may answer it; anything else (late, foreign) is dropped, as a publish to a
   * subject nobody listens on is. Returns whether the reply was delivered.
   */
  reply(from: Session, inbox: string, payload: Uint8Array, enc: PayloadEncoding | undefined): boolean {
    const pending = this.#pending.get(inbox);
    if (pending === undefined || pending.responder !== from) return false;
    this.#settle(inbox);
    pending.requester.send({
      op: "ok",
      id: pending.id,
      subject: pending.subject,
      p: payload,
      ...(enc === undefined ? {} : { enc }),
    });
    return true;
  }

  /** Settles everything a vanished peer was part of. */
  dropPeer(session: Session): void {
    for (const inbox of session.requestingInboxes()) this.#settle(inbox);
    for (const inbox of session.answeringInboxes()) {
      const pending = this.#pending.get(inbox);
      if (pending === undefined || !this.#settle(inbox)) continue;
      pending.requester.error(
        "responder_gone",
        `the peer answering the request on "${pending.subject}" disconnected before replying`,
        pending.id,
        pending.subject,
      );
    }
  }

  clear(): void {
    for (const inbox of [...this.#pending.keys()]) this.#settle(inbox);
  }

  #settle(inbox: string): boolean {
    const pending = this.#pending.get(inbox);
    if (pending === undefined) return false;
    clearTimeout(pending.timer);
    this.#pending.delete(inbox);
    pending.requester.removeRequesting(inbox);
    pending.responder.removeAnswering(inbox);
    return true;
  }
}
