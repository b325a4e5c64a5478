// The client's subscriptions: their ids, the `sub` ops that restore them on a
// new connection, and local dispatch of each `msg` to the subscriptions that
// want it (docs/PROTOCOL.md §9.2: the broker sends a peer one frame per
// publish, without saying which of its subscriptions matched).
//
// A frame without a sid goes only to subscriptions the broker has answered
// on this connection. One it has not answered yet was not at the broker when
// that message was published: the message is not for it, and a resuming one
// gets it addressed to its sid among the kept ones (§9.10). Without this
// rule, a second subscription overlapping the first would see such a message
// twice after a reconnect.

import { MAX_ID, subjectMatches } from "../protocol/index.js";
import type { DeliverMsg, GapMsg } from "../protocol/index.js";
import type { ResumeSub } from "./broker-connection.js";
import { Subscription, type Message, type SubscribeOptions, type SubscriptionGap, type SubscriptionOwner, type SubscriptionStart } from "./subscription.js";

export class SubscriptionRegistry {
  readonly #owner: SubscriptionOwner;
  readonly #toMessage: (message: DeliverMsg) => Message;
  readonly #subs = new Map<number, Subscription>();
  #nextSid = 1;

  /** `owner` is what each Subscription calls back; `toMessage` turns a delivery into the application's Message. */
  constructor(owner: SubscriptionOwner, toMessage: (message: DeliverMsg) => Message) {
    this.#owner = owner;
    this.#toMessage = toMessage;
  }

  /** A new live subscription with the next sid (ids wrap to 1 after 2^32−1). */
  add(subject: string, options: SubscribeOptions, start?: SubscriptionStart, resumes = true): Subscription {
    const sid = this.#nextSid;
    this.#nextSid = this.#nextSid >= MAX_ID ? 1 : this.#nextSid + 1;
    const sub = new Subscription(this.#owner, sid, subject, options, start, resumes);
    this.#subs.set(sid, sub);
    return sub;
  }

  /** Ends `sub` and forgets it; false when it was not live here. */
  remove(sub: Subscription): boolean {
    if (sub.isClosed || this.#subs.get(sub.sid) !== sub) return false;
    this.#subs.delete(sub.sid);
    sub.end();
    return true;
  }

  /** The live subscriptions, in the order they were made. */
  all(): Subscription[] {
    return [...this.#subs.values()];
  }

  /** One `sub` per live subscription, for a new connection: each resumes from its lastSeq (Subscription.subOp()). */
  *resumeOps(): Iterable<ResumeSub> {
    for (const sub of this.#subs.values()) {
      yield {
        op: sub.subOp(),
        answered: (answer) => {
          if (this.#subs.get(sub.sid) === sub) sub.began(answer.seq);
        },
      };
    }
  }

  /** The subscription a `gap` is for, and the gap as the application sees it; undefined when that subscription is gone. */
  gap(message: GapMsg): { sub: Subscription; gap: SubscriptionGap } | undefined {
    const sub = this.#subs.get(message.sid);
    if (sub === undefined) return undefined;
    return { sub, gap: { subject: message.subject, lost: message.lost, atLeast: message.atLeast === true } };
  }

  /** Hands a delivery to the subscriptions it is for (§9.2). */
  route(message: DeliverMsg): void {
    if (message.sid !== undefined) {
      const sub = this.#subs.get(message.sid);
      if (sub !== undefined) sub.deliver(this.#toMessage(message));
      return;
    }
    const queue = message.queue;
    let built: Message | undefined;
    for (const sub of this.#subs.values()) {
      if (sub.queue !== queue || !sub.isLive || !subjectMatches(sub.subject, message.subject)) continue;
      built ??= this.#toMessage(message);
      sub.deliver(built);
      // A queue message is for one member: the first matching local subscription of that group.
      if (queue !== undefined) return;
    }
  }

  endAll(): void {
    for (const sub of this.#subs.values()) sub.end();
    this.#subs.clear();
  }
}
