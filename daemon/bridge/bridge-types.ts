// What a bridge file says once read and checked (bridge-config.ts reads it;
// nats-bridge.ts runs it). The file is JSON; docs/OPERATIONS.md "Bridging to
// NATS" shows one. Everything here has its default filled in.

import type { BrokerStatus } from "../../protocol/index.js";

/** How to reach the NATS servers, as nats.js takes it. */
export interface BridgeNatsOptions {
  /** nats://host:port (or tls://), at least one. */
  servers: string[];
  /** The connection's name on the NATS side (default "xpcbus-<hostname>"). */
  name: string;
  /** A NATS credentials file (JWT + nkey seed), read when connecting. */
  credentialsFile?: string;
  /** A file holding an nkey seed (SU…), read when connecting. */
  nkeySeedFile?: string;
  token?: string;
  user?: string;
  pass?: string;
  /** TLS files; any of them turns TLS on. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

/** Local subjects matching `subject` are published to NATS as `prefix + subject`. */
export interface BridgeExport {
  /** A local subject pattern (wildcards allowed). */
  subject: string;
  /** Put in front on the NATS side: `fleet.<hostname>.` by default, so machines do not collide; "" for none. Ends with "." unless empty. */
  prefix: string;
}

/**
 * NATS subjects matching `subject` are published locally: the first
 * `stripTokens` tokens are taken off and `localPrefix` put in front
 * (`fleet.*.app.>` with stripTokens 2 and localPrefix "" turns
 * `fleet.hostB.app.x` into `app.x`).
 */
export interface BridgeImport {
  /** A NATS subject pattern (wildcards allowed). */
  subject: string;
  /** Tokens taken off the front of the NATS subject (default 0); fewer than the pattern's literal-or-`*` leading tokens. */
  stripTokens: number;
  /** Put in front of what is left (default ""). Ends with "." unless empty. */
  localPrefix: string;
}

export interface BridgeConfig {
  /** The file it came from, for logs and errors. */
  source: string;
  nats: BridgeNatsOptions;
  export: BridgeExport[];
  import: BridgeImport[];
  /** Bytes of exported messages held while NATS is unreachable (default 8 MiB); past it the oldest are dropped and counted. */
  bufferBytes: number;
  /** Reconnect backoff to NATS, ms (defaults 250 and 10,000). */
  reconnect: { initialDelayMs: number; maxDelayMs: number };
}

/** What `status.bridge` says (its fields are documented where the protocol type is: protocol/messages.ts, BrokerStatus). */
export type BridgeStatus = NonNullable<BrokerStatus["bridge"]>;
