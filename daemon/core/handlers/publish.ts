// `pub`: a publish is numbered, retained if asked, kept in its subject's
// history, routed (one shared encoding for every plain subscriber, one member
// per queue group), then posted as a notification. With a store, its `ok`
// waits for the turn's commit (durable-turn.ts). A publish to an inbox is a
// reply to a request and goes to the request table instead.

import type { DeliverMsg, PubOp } from "../../../protocol/index.js";
import { INBOX_PREFIX } from "../../../protocol/index.js";
import { Outbound } from "../peer-link.js";
import type { Session } from "../session.js";
import type { BrokerContext } from "./context.js";

export function publish(ctx: BrokerContext, session: Session, op: PubOp): void {
  if (op.subject.startsWith(INBOX_PREFIX)) {
    // A reply to a request this peer was given needs no right of its own.
    const delivered = ctx.requests.reply(session, op.subject, op.p, op.enc);
    if (op.id !== undefined) session.send({ op: "ok", id: op.id, seq: 0, delivered });
    return;
  }
  if (!ctx.allowed(session, "publish", op.subject, op.id)) return;
  const owner = session.link.identity.uid;
  if (op.retain === true) {
    // Refused whole, before it is numbered or delivered: the publisher learns
    // its state was not kept, and nobody else's value is dropped to make room.
    const refusal = ctx.retained.refusal(op.subject, op.p, owner);
    if (refusal !== undefined) {
      session.error("retained_full", refusal, op.id, op.subject);
      return;
    }
  }
  const seq = ctx.sequences.next(op.subject);
  const durable = ctx.durable;
  if (op.retain === true) {
    ctx.retained.put({ subject: op.subject, payload: op.p, enc: op.enc, seq }, owner);
    if (durable !== undefined) {
      const kept = ctx.retained.get(op.subject);
      durable.retained(op.subject, kept === undefined ? undefined : { ...kept, owner });
    }
  }
  ctx.history.append(op.subject, seq, Date.now(), op.p, op.enc);
  const match = ctx.index.match(op.subject);
  if (match.plainOwners.length > 0 || match.groups.length > 0) {
    const msg: DeliverMsg = { op: "msg", subject: op.subject, p: op.p, seq: seq };
    if (op.enc !== undefined) msg.enc = op.enc;
    if (op.reply !== undefined) msg.reply = op.reply;
    if (op.retain === true) msg.retained = true;
    if (match.plainOwners.length > 0) {
      // One encoding for every plain subscriber: the client dispatches to its own matching subscriptions.
      const shared = new Outbound(msg);
      for (const owner of match.plainOwners) if (owner !== session || !session.noEcho) ctx.deliver(owner, shared);
    }
    for (const group of match.groups) {
      let member = ctx.index.pickMember(op.subject, group);
      // A noEcho publisher chosen in its own group: the next member takes it, if there is another.
      if (member.owner === session && session.noEcho) {
        if (group.members.every((m) => m.owner === session)) continue;
        while (member.owner === session) member = ctx.index.pickMember(op.subject, group);
      }
      ctx.deliver(member.owner, new Outbound({ ...msg, queue: group.name }));
    }
  }
  ctx.notifier?.published(op.subject, seq);
  if (op.id === undefined) return;
  if (durable !== undefined) durable.ack(session, op.id, seq, op.subject);
  else session.send({ op: "ok", id: op.id, seq: seq });
}
