// `req`: one responder is chosen and given a private inbox to reply to; the
// request table settles it (reply, timeout, or either peer leaving).

import type { DeliverMsg, ReqOp } from "../../../protocol/index.js";
import { Outbound } from "../peer-link.js";
import type { Session } from "../session.js";
import type { BrokerContext } from "./context.js";

export function request(ctx: BrokerContext, session: Session, op: ReqOp): void {
  if (!ctx.allowed(session, "request", op.subject, op.id)) return;
  if (session.requestingCount >= ctx.limits.maxPendingRequestsPerPeer) {
    session.error(
      "too_many_requests",
      `a peer may have at most ${ctx.limits.maxPendingRequestsPerPeer} requests awaiting replies`,
      op.id,
      op.subject,
    );
    return;
  }
  // Queue groups are where responders live; a plain subscriber (a monitor on
  // ">", say) is chosen only when no group listens.
  const match = ctx.index.match(op.subject);
  const group = match.groups[0];
  const target = group !== undefined ? ctx.index.pickMember(op.subject, group) : match.firstPlain;
  if (target === undefined) {
    session.error("no_responders", `nobody is subscribed to "${op.subject}"`, op.id, op.subject);
    return;
  }
  const timeoutMs = op.timeout ?? ctx.limits.defaultRequestTimeoutMs;
  const inbox = ctx.requests.open(session, target.owner, op.id, op.subject, timeoutMs);
  const msg: DeliverMsg = { op: "msg", subject: op.subject, p: op.p, seq: 0, reply: inbox, sid: target.sid };
  if (op.enc !== undefined) msg.enc = op.enc;
  if (target.queue !== undefined) msg.queue = target.queue;
  ctx.deliver(target.owner, new Outbound(msg));
}
