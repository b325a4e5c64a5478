// The reading side of subjects: `sub` (with `replay` of retained values, or
// resumed from a point in the history), `unsub`, `get` of one retained value
// and `history`, which need the same right.

import type { GetOp, HistoryOp, SubOp, UnsubOp } from "../../../protocol/index.js";
import { DEFAULT_HISTORY_LIMIT, subjectMatches } from "../../../protocol/index.js";
import type { ResumePoint } from "../history.js";
import { Outbound } from "../peer-link.js";
import { SubscriptionEntry, type Session } from "../session.js";
import { wireUint, type BrokerContext } from "./context.js";

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
  if (op.since !== undefined) resume(ctx, session, op, { seq: op.since });
  else if (op.sinceTime !== undefined) resume(ctx, session, op, { time: op.sinceTime });
  // `seq`: every publish numbered above it reaches this subscription live; a
  // client resumes from here if it has seen nothing yet (§9.10).
  if (op.id !== undefined) session.send({ op: "ok", id: op.id, seq: ctx.sequences.highest });
}

/**
 * Resuming: a `gap` for each subject whose messages after the point are not
 * all kept, then the kept ones, in publish order, addressed to the new sid.
 * The broker does nothing else meanwhile, so the first live message follows
 * the last replayed one with nothing missed and nothing twice.
 */
function resume(ctx: BrokerContext, session: Session, op: SubOp, point: ResumePoint): void {
  const { gaps, messages } = ctx.history.resume(op.subject, (subject) => subjectMatches(op.subject, subject), point);
  for (const gap of gaps) {
    session.send({
      op: "gap",
      sid: op.sid,
      subject: gap.subject,
      ...(gap.lost === undefined ? {} : { lost: gap.lost }),
      ...(gap.atLeast ? { atLeast: true } : {}),
    });
  }
  for (const m of messages) {
    ctx.deliver(session, new Outbound({ op: "msg", subject: m.subject, p: m.payload, seq: m.seq, sid: op.sid, ...(m.enc === undefined ? {} : { enc: m.enc }) }));
  }
  if (gaps.length > 0 || messages.length > 0) session.log.debug({ sid: op.sid, subject: op.subject, point, replayed: messages.length, gaps: gaps.length }, "subscription resumed");
}

/** The latest kept messages of a subject or pattern, oldest first, as many as fit one frame. */
export function history(ctx: BrokerContext, session: Session, op: HistoryOp): void {
  if (!ctx.allowed(session, "subscribe", op.subject, op.id)) return;
  const found = ctx.history.latest((subject) => subjectMatches(op.subject, subject), op.limit ?? DEFAULT_HISTORY_LIMIT);
  // The answer is one frame: the newest that fit, leaving room for the keys.
  let room = ctx.limits.maxFrameBytes - 1024;
  let first = found.length;
  while (first > 0) {
    const m = found[first - 1]!;
    const size = m.payload.byteLength + m.subject.length + 64;
    if (size > room) break;
    room -= size;
    first--;
  }
  const messages = found.slice(first).map((m) => ({
    subject: m.subject,
    seq: wireUint(m.seq),
    time: wireUint(m.time),
    p: m.payload,
    ...(m.enc === undefined ? {} : { enc: m.enc }),
  }));
  session.send({ op: "ok", id: op.id, messages, ...(first > 0 ? { truncated: true } : {}) });
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
