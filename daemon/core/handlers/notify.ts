// The notify ops: `watch`, `unwatch`, `post`, `state`. The notifier does the
// work and knows its names (Notifier.subjectOf); here are the checks: the
// right to watch a subject's name, the watch bound, reserved names, and
// each peer's watches counted once. Whatever a notifier call throws ends as
// that op's `err`, never as an exception out of the core: one peer's name
// must not stop the broker for everyone (PROTOCOL.md §10, `notify_failed`).

import type { PostOp, StateOp, UnwatchOp, WatchOp } from "../../../protocol/index.js";
import { isWireErrorCode, postingProblem, XpcbusError } from "../../../protocol/index.js";
import type { Notifier } from "../notifier.js";
import type { Session } from "../session.js";
import type { BrokerContext } from "./context.js";

function notifierFor(ctx: BrokerContext, session: Session, id: number | undefined): Notifier | undefined {
  if (ctx.notifier === undefined) session.error("notify_unavailable", "this broker posts no notifications", id);
  // A peer whose welcome had no `notify` (Linux: the broker keeps no table
  // its uid may read) is served none of the four ops, as its welcome said.
  else if (ctx.notifier.infoFor?.(session.link.identity.uid) === undefined) {
    session.error("notify_unavailable", `this broker posts no notifications to uid ${session.link.identity.uid ?? "unknown"}`, id);
    return undefined;
  }
  return ctx.notifier;
}

const FAILED = Symbol("notifier failed");

/**
 * Runs one notifier call for `op`. A throw becomes the op's `err`: an
 * XpcbusError with a wire code is a refusal the notifier decided (e.g.
 * `reserved_name`: a name notifyd would refuse this broker) and keeps its
 * code; anything else is the system refusing (notifyd said no, is gone, a
 * table write failed) and is `notify_failed` with what it said.
 */
function attempt<T>(session: Session, op: WatchOp | PostOp | StateOp, call: () => T): T | typeof FAILED {
  try {
    return call();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof XpcbusError && isWireErrorCode(error.code)) {
      session.log.info({ notifyName: op.name, op: op.op, code: error.code, reason: message }, "notify op refused");
      session.error(error.code, message, op.id);
    } else {
      session.log.warn({ notifyName: op.name, op: op.op, err: error }, "notifier failed");
      session.error("notify_failed", `${op.op} of "${op.name}" failed: ${message}`, op.id);
    }
    return FAILED;
  }
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
  // The slot goes into this peer's uid's table only: that uid was let watch the name.
  const uid = session.link.identity.uid;
  const registered = attempt(session, op, () => notifier.watch(op.name, initialState(ctx, notifier, op.name), uid));
  if (registered === FAILED) return;
  if ("code" in registered) {
    session.error(registered.code, registered.reason, op.id);
    return;
  }
  // Watching a name twice from one connection counts once.
  if (already) notifier.unwatch(op.name, uid);
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
  notifier.unwatch(op.name, session.link.identity.uid);
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
  if (attempt(session, op, () => notifier.post(op.name, op.state)) === FAILED) return;
  if (op.id !== undefined) session.send({ op: "ok", id: op.id });
}

export function state(ctx: BrokerContext, session: Session, op: StateOp): void {
  const notifier = notifierFor(ctx, session, op.id);
  if (notifier === undefined) return;
  // A subject's state is its last seq: when it was last published. Reading it
  // needs what watching it needs (same check as watch above), or a peer could
  // poll what it may not watch.
  if (!ctx.allowed(session, "watch", notifier.subjectOf(op.name) ?? ">", op.id)) return;
  const known = attempt(session, op, () => notifier.state(op.name));
  if (known === FAILED) return;
  const derived = initialState(ctx, notifier, op.name);
  session.send({ op: "ok", id: op.id, name: op.name, state: known !== undefined && known > derived ? known : derived });
}
