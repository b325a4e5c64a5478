// What an op handler is given: the broker's tables and the two services only
// the broker provides, the policy check and delivery. The Broker builds one
// of these over its private fields; the handlers keep no state of their own.

import type { DurableTurn } from "../durable-turn.js";
import type { History } from "../history.js";
import type { Notifier } from "../notifier.js";
import type { Outbound } from "../peer-link.js";
import type { Right } from "../policy.js";
import type { BrokerLimitOptions } from "../options.js";
import type { RequestTable } from "../request-table.js";
import type { RetainedStore } from "../retained-store.js";
import type { Sequences } from "../sequences.js";
import type { Session, SubscriptionEntry } from "../session.js";
import type { SubjectIndex } from "../subject-index.js";

export interface BrokerContext {
  readonly limits: BrokerLimitOptions;
  readonly index: SubjectIndex<Session, SubscriptionEntry>;
  readonly retained: RetainedStore;
  readonly sequences: Sequences;
  readonly history: History;
  /** This turn's writes to the store; undefined without one (`--store memory`): then `ok` goes out at once. */
  readonly durable: DurableTurn | undefined;
  readonly requests: RequestTable;
  /** Without one, the notify ops answer `notify_unavailable` and publishes post nothing. */
  readonly notifier: Notifier | undefined;
  /** Whether the policy lets `session` use `right` on `subject`; if not, the peer is told why (the connection stays). */
  allowed(session: Session, right: Right, subject: string, id: number | undefined): boolean;
  /** Hands a message to a peer's link, counts it, and applies the slow-consumer policy. */
  deliver(session: Session, message: Outbound): void;
}

/**
 * cbor-x writes numbers above 2^32 as floats; a BigInt goes out as a CBOR
 * unsigned integer. Needed only in frames cbor-x writes (nested ones, such as
 * `status`): the flat frames' writer (protocol/flat-cbor.ts) writes every
 * safe integer as an integer.
 */
export function wireUint(value: number): number | bigint {
  return value > 0xffff_ffff ? BigInt(value) : value;
}
