// What Client's public methods take and give: their options, results and
// events, the settings connect() hands the client, and drain()'s option parser.

import type { BrokerError, CallbackError, UntrustedBrokerError } from "./errors.js";
import { InvalidArgumentError } from "./errors.js";
import type { Payload, PayloadEncoding } from "../protocol/index.js";
import type { SubscriptionGap } from "./subscription.js";

export interface ReconnectOptions {
  /** Reconnect after losing the broker (default true). */
  enabled: boolean;
  /** First delay, in ms, doubled at each failed attempt (default 50). */
  initialDelayMs: number;
  /** Longest delay between attempts, in ms (default 2000). */
  maxDelayMs: number;
  /** Attempts before giving up and closing with an error; 0 = never give up (default 0). */
  maxAttempts: number;
  /** Bytes of publishes and requests held while disconnected (default 1 MiB); past it they fail with BufferFullError. */
  bufferBytes: number;
}

export const DEFAULT_RECONNECT: Readonly<ReconnectOptions> = Object.freeze({
  enabled: true,
  initialDelayMs: 50,
  maxDelayMs: 2_000,
  maxAttempts: 0,
  bufferBytes: 1024 * 1024,
});

/**
 * Bytes a connected client lets pile up in its socket buffer before
 * publishes fail with BufferFullError: the broker is not reading, and
 * growing without bound would only move the problem into this process.
 */
export const MAX_WRITE_BUFFER_BYTES = 64 * 1024 * 1024;

export interface ClientSettings {
  name: string;
  reconnect: ReconnectOptions;
  requestTimeoutMs: number;
  /** Asked in `hello`: never be delivered this client's own publishes. */
  noEcho?: boolean;
}

export interface PublishOptions {
  /** Keep this value as the subject's retained value. */
  retain?: boolean;
  /** Subject the receivers should reply to. */
  reply?: string;
  /** Wait for the broker's acknowledgement (default true). */
  ack?: boolean;
  /**
   * With `data` as bytes: how receivers are to read them ("text", "json" or
   * "bytes"), sent as they are. For bytes that already hold text or JSON
   * (a payload relayed from elsewhere). Default: from the type of `data`.
   */
  encoding?: PayloadEncoding;
}

export interface PublishAck {
  /** The broker's sequence number given to this publish, one counter for all subjects (undefined when `ack: false`). */
  seq: number | undefined;
}

export interface RequestOptions {
  /** How long the broker waits for a reply, in ms (default 5000). */
  timeoutMs?: number;
}

export interface RespondOptions {
  /** Queue group shared by the responders of this subject (default "responders"). */
  queue?: string;
}

export interface DrainOptions {
  /**
   * Longest wait, in ms, for the unsubscribes, the running respond() handlers
   * and the outstanding calls (default DEFAULT_DRAIN_TIMEOUT_MS). Past it the
   * client closes anyway and drain() rejects with DrainTimeoutError.
   */
  timeoutMs?: number;
}

/**
 * drain()'s default bound: nats.go's DrainTimeout. Long enough for a handler
 * doing real work and for requests with the default 5 s timeout to settle;
 * short enough that a stuck handler cannot hold a process's shutdown for ever.
 */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export type GetResult =
  | { found: true; subject: string; data: Payload; raw: Uint8Array; encoding: PayloadEncoding; seq: number }
  | { found: false; subject: string; seq: 0 };

export interface HistoryOptions {
  /** How many of the latest kept messages, 1 to MAX_HISTORY_LIMIT (1000); default DEFAULT_HISTORY_LIMIT (100). */
  limit?: number;
}

/** A message the broker keeps in its history, as history() gives it: a Message's fields and when it was accepted. */
export interface HistoryMessage {
  readonly subject: string;
  /** The payload as it was published: bytes, a string, or a JSON value. */
  readonly data: Payload;
  readonly raw: Uint8Array;
  readonly encoding: PayloadEncoding;
  /** The broker's sequence number of the publish (what `since` takes). */
  readonly seq: number;
  /** When the broker accepted it (what `sinceTime` compares with). */
  readonly time: Date;
}

export interface HistoryResult {
  /** The latest kept messages matching, oldest first. */
  messages: HistoryMessage[];
  /** True when the broker kept more than one answer could hold: `messages` are the newest that fitted. */
  truncated: boolean;
}

export interface ClientEvents {
  disconnected: [error: Error | undefined];
  reconnecting: [info: { attempt: number; delayMs: number }];
  reconnected: [info: { peer: number }];
  /**
   * A reconnect attempt found a broker this client does not trust on the
   * socket (docs/SECURITY.md, "Trusting the broker"): nothing was sent to it
   * and the client keeps backing off, since the real broker may come back on
   * that path. Without a listener, one process warning per run of refusals.
   */
  untrustedBroker: [error: UntrustedBrokerError];
  /** A subscription's queue overflowed; `dropped` is its running total. */
  slowConsumer: [info: { subject: string; sid: number; dropped: number }];
  /** The broker dropped messages for this connection because it was not reading fast enough. */
  dropped: [info: { count: number; total: number }];
  /**
   * A resuming subscription (`since`, `sinceTime`, or any after a reconnect)
   * asked for messages the broker no longer keeps: `subject` lost `lost` of
   * them (undefined: unknown; `atLeast`: a lower bound). Emitted besides the
   * subscription's onGap; with neither, written as a process warning.
   */
  gap: [info: SubscriptionGap & { sid: number; pattern: string }];
  /** An `err` from the broker that no pending call was waiting for (e.g. a fire-and-forget publish). */
  brokerError: [error: BrokerError];
  /**
   * A subscription, watch or respond() callback threw (or its promise
   * rejected); delivery goes on. Not named "error" on purpose: an "error" that
   * nobody listens to throws, and an application's bug must not crash its
   * host. Without a listener the error is written as a process warning.
   */
  callbackError: [error: CallbackError];
  /**
   * The client closed: `undefined` for close()/drain(), else why, e.g. a
   * ConnectionRefusedError when the broker refused it for good.
   */
  closed: [error: Error | undefined];
}

const DRAIN_OPTION_NAMES = ["timeoutMs"];

/** drain()'s options, checked by name: the timeout in ms. */
export function parseDrainOptions(options: DrainOptions): number {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("drain() takes an options object");
  for (const key of Object.keys(options)) {
    if (!DRAIN_OPTION_NAMES.includes(key)) throw new InvalidArgumentError(`unknown drain option "${key}"; known: ${DRAIN_OPTION_NAMES.join(", ")}`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidArgumentError(`drain option "timeoutMs" must be a positive integer (got ${String(options.timeoutMs)})`);
  }
  return timeoutMs;
}
