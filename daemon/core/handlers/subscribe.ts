// The reading side of subjects: `sub` (with `replay` of retained values),
// `unsub`, and `get` of one retained value, which needs the same right.

import type { GetOp, SubOp, UnsubOp } from "../../../protocol/index.js";
import { subjectMatches } from "../../../protocol/index.js";
import { Outbound } from "../peer-link.js";
import { SubscriptionEntry, type Session } from "../session.js";
import type { BrokerContext } from "./context.js";

export function subscribe(ctx: BrokerContext, session: Session, op: SubOp): void {
  if (!ctx.allowed(session, "subscribe", op.subject, op.id)) return;
  if (session.subscription(op.sid) !== undefined) {
    session.error("duplicate_sid", `subscription id ${op.sid} is already in use on this connection`, op.id, op.subject);
    return;
  }
  if (session.subscriptionCount >= ctx.limits.maxSubscriptionsPerPeer) {
    session.error(
      "too_many_subscriptions",
      `a peer may hold at most ${ctx.limits.maxSubscriptionsPerPeer} subscriptions`,
      op.id,
      op.subject,
    );
    return;
  }
  const entry = new SubscriptionEntry(session, op.sid, op.subject, op.queue);
  session.addSubscription(entry);
  ctx.index.add(entry);
  session.log.debug({ sid: op.sid, subject: op.subject, queue: op.queue }, "subscribed");
  if (op.replay === true) replay(ctx, session, op);
  if (op.id !== undefined) session.send({ op: "ok", id: op.id });
}

/** The retained values the new subscription matches, in publish order, addressed to its sid. */
function replay(ctx: BrokerContext, session: Session, op: SubOp): void {
  for (const value of ctx.retained.matching((subject) => subjectMatches(op.subject, subject))) {
    ctx.deliver(
      session,
      new Outbound({
        op: "msg",
        subject: value.subject,
        p: value.payload,
        seq: value.seq,
        sid: op.sid,
        ...(value.enc === undefined ? {} : { enc: value.enc }),
        retained: true,
      }),
    );
  }
}

export function unsubscribe(ctx: BrokerContext, session: Session, op: UnsubOp): void {
  const entry = session.removeSubscription(op.sid);
  if (entry === undefined) {
    session.error("unknown_sid", `no subscription with id ${op.sid} on this connection`, op.id);
    return;
  }
  ctx.index.remove(entry);
  if (op.id !== undefined) session.send({ op: "ok", id: op.id });
}

export function get(ctx: BrokerContext, session: Session, op: GetOp): void {
  // Reading a retained value is reading the subject: the subscribe right.
  if (!ctx.allowed(session, "subscribe", op.subject, op.id)) return;
  const value = ctx.retained.get(op.subject);
  if (value === undefined) {
    session.send({ op: "ok", id: op.id, found: false, subject: op.subject, seq: 0 });
    return;
  }
  session.send({
    op: "ok",
    id: op.id,
    found: true,
    subject: op.subject,
    seq: value.seq,
    p: value.payload,
    ...(value.enc === undefined ? {} : { enc: value.enc }),
  });
}
