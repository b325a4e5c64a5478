// The notify ops: `watch`, `unwatch`, `post`, `state`. The notifier does the
// work and knows its names (Notifier.subjectOf); here are the checks: the
// right to watch a subject's name, the watch bound, reserved names, and
// each peer's watches counted once.

import type { PostOp, StateOp, UnwatchOp, WatchOp } from "../../../protocol/index.js";
import { postingProblem } from "../../../protocol/index.js";
import type { Notifier } from "../notifier.js";
import type { Session } from "../session.js";
import type { BrokerContext } from "./context.js";

function notifierFor(ctx: BrokerContext, session: Session, id: number | undefined): Notifier | undefined {
  if (ctx.notifier === undefined) session.error("notify_unavailable", "this broker posts no notifications", id);
  return ctx.notifier;
}

/** The state a name starts from: a subject's name, the subject's current sequence number; any other, 0. */
function initialState(ctx: BrokerContext, notifier: Notifier, name: string): bigint {
  const subject = notifier.subjectOf(name);
  return subject === undefined ? 0n : BigInt(ctx.sequences.current(subject));
}

export function watch(ctx: BrokerContext, session: Session, op: WatchOp): void {
  const notifier = notifierFor(ctx, session, op.id);
  if (notifier === undefined) return;
  // Watching a subject's name is reading the subject; any other name is
  // outside the subject space and needs the right on everything (">").
  if (!ctx.allowed(session, "watch", notifier.subjectOf(op.name) ?? ">", op.id)) return;
  const already = session.isWatching(op.name);
  if (!already && session.watchCount >= ctx.limits.maxWatchesPerPeer) {
    session.error("too_many_watches", `a peer may watch at most ${ctx.limits.maxWatchesPerPeer} names`, op.id);
    return;
  }
  const registered = notifier.watch(op.name, initialState(ctx, notifier, op.name));
  if ("code" in registered) {
    session.error(registered.code, registered.reason, op.id);
    return;
  }
  // Watching a name twice from one connection counts once.
  if (already) notifier.unwatch(op.name);
  else session.addWatch(op.name);
  session.send({ op: "ok", id: op.id, name: op.name, ...registered });
}

export function unwatch(ctx: BrokerContext, session: Session, op: UnwatchOp): void {
  const notifier = notifierFor(ctx, session, op.id);
  if (notifier === undefined) return;
  if (!session.removeWatch(op.name)) {
    session.error("not_watching", `this connection does not watch "${op.name}"`, op.id);
    return;
  }
  notifier.unwatch(op.name);
  if (op.id !== undefined) session.send({ op: "ok", id: op.id });
}

export function post(ctx: BrokerContext, session: Session, op: PostOp): void {
  const notifier = notifierFor(ctx, session, op.id);
  if (notifier === undefined) return;
  // Names outside the subject space: only a peer that may publish everything may post them.
  if (!ctx.allowed(session, "publish", ">", op.id)) return;
  const problem = postingProblem(op.name, session.link.identity.uid, notifier.info.prefix);
  if (problem !== undefined) {
    session.log.info({ notifyName: op.name, reason: problem }, "post refused");
    session.error("reserved_name", problem, op.id);
    return;
  }
  notifier.post(op.name, op.state);
  if (op.id !== undefined) session.send({ op: "ok", id: op.id });
}

export function state(ctx: BrokerContext, session: Session, op: StateOp): void {
  const notifier = notifierFor(ctx, session, op.id);
  if (notifier === undefined) return;
  const known = notifier.state(op.name);
  const derived = initialState(ctx, notifier, op.name);
  session.send({ op: "ok", id: op.id, name: op.name, state: known !== undefined && known > derived ? known : derived });
}
