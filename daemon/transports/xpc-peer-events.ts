// Puts what the XPC listener reports about each peer in the one order the
// transport can act on: "peer" first, then the peer's other events, "gone"
// last. The native listener queues "peer" before it activates the
// connection, so that is the order it reports (native/src/apple/xpc_listener.cc);
// peer connections run on concurrent queues all the same, so the transport
// does not rely on it: an event of a peer not yet announced is held (bounded)
// until its "peer" comes, and a "gone" held that way ends the peer cleanly
// right after what it sent, as end-of-stream does on the socket
// (docs/PROTOCOL.md §4, "Connection end"). Platform-neutral, so Linux tests
// drive it in every order (xpc-peer-events.test.ts).

/** The part of a listener event this ordering reads. */
export interface PeerEvent {
  kind: string;
  peer?: number;
  replyToken?: number;
}

/**
 * Events held for one peer not yet announced. The listener sends none at all
 * today, so a few are plenty: a first message or two and a "gone". Beyond
 * this the listener is not keeping its order and the peer is dropped.
 */
export const MAX_EARLY_EVENTS_PER_PEER = 64;

/** Peers not yet announced that may have events held at once (see above). */
export const MAX_EARLY_PEERS = 64;

/**
 * Peers refused, or ended, remembered so their stray events are dropped
 * rather than held as early (the listener never reuses a peer id). A refused
 * peer is forgotten at its "gone"; beyond this many the oldest are forgotten.
 */
export const MAX_RETIRED_PEERS = 4096;

export interface PeerEventHandlers<E extends PeerEvent> {
  /** A new peer: true when it is attached (its other events follow), false when refused. */
  peer(event: E & { peer: number }): boolean;
  /** An event of an attached peer; "gone" is its last. */
  event(event: E & { peer: number }): void;
  /** A peer whose events were dropped before it was announced: the transport cancels it. */
  dropped(peer: number, reason: string, events: readonly E[]): void;
}

export class XpcPeerEvents<E extends PeerEvent> {
  readonly #handlers: PeerEventHandlers<E>;
  readonly #live = new Set<number>();
  readonly #early = new Map<number, Array<E & { peer: number }>>();
  /** Refused or dropped: their events are dropped until their "gone". */
  readonly #retired = new Set<number>();
  /** Gone: any later event of theirs is dropped. */
  readonly #ended = new Set<number>();

  constructor(handlers: PeerEventHandlers<E>) {
    this.#handlers = handlers;
  }

  /** Peers with events held for them, for tests and diagnostics. */
  get earlyPeers(): number {
    return this.#early.size;
  }

  /** One event of a peer (with `peer` set), in the order the listener reported it. */
  push(event: E & { peer: number }): void {
    const peer = event.peer;
    if (event.kind === "peer") {
      if (this.#live.has(peer) || this.#retired.has(peer) || this.#ended.has(peer)) return; // announced twice: the first counts
      const early = this.#early.get(peer) ?? [];
      this.#early.delete(peer);
      if (!this.#handlers.peer(event)) {
        this.#retire(early.some((e) => e.kind === "gone") ? this.#ended : this.#retired, peer);
        return;
      }
      this.#live.add(peer);
      for (const held of early) {
        if (!this.#live.has(peer)) break; // its "gone" came: what was held after it is dropped
        this.#deliver(held);
      }
      return;
    }
    if (this.#live.has(peer)) {
      this.#deliver(event);
      return;
    }
    if (this.#retired.has(peer)) {
      if (event.kind === "gone") {
        this.#retired.delete(peer);
        this.#retire(this.#ended, peer);
      }
      return;
    }
    if (this.#ended.has(peer)) return;
    const held = this.#early.get(peer);
    if (held === undefined && this.#early.size >= MAX_EARLY_PEERS) {
      this.#drop(peer, [event], `events for more than ${MAX_EARLY_PEERS} peers arrived before their "peer"`);
      return;
    }
    if (held !== undefined && held.length >= MAX_EARLY_EVENTS_PER_PEER) {
      this.#early.delete(peer);
      this.#drop(peer, [...held, event], `more than ${MAX_EARLY_EVENTS_PER_PEER} events arrived before its "peer"`);
      return;
    }
    if (held === undefined) this.#early.set(peer, [event]);
    else held.push(event);
  }

  #deliver(event: E & { peer: number }): void {
    if (event.kind === "gone") {
      this.#live.delete(event.peer);
      this.#retire(this.#ended, event.peer);
    }
    this.#handlers.event(event);
  }

  #drop(peer: number, events: readonly E[], reason: string): void {
    this.#retire(events.some((e) => e.kind === "gone") ? this.#ended : this.#retired, peer);
    this.#handlers.dropped(peer, reason, events);
  }

  #retire(set: Set<number>, peer: number): void {
    if (set.size >= MAX_RETIRED_PEERS) {
      const oldest = set.values().next().value;
      if (oldest !== undefined) set.delete(oldest);
    }
    set.add(peer);
  }
}
