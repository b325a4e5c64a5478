// Protocol constants shared by the broker and every client. The broker may be
// configured with other limits; it announces the ones in force in `welcome`.

/** Wire protocol major version. A change that an old peer would misread bumps it. */
export const PROTOCOL_VERSION = 1;

/** Bytes of the big-endian length that precedes each CBOR map. */
export const FRAME_HEADER_BYTES = 4;

/**
 * Largest payload (`p`) a client may publish, by default. 1 MiB keeps one
 * frame well inside a socket buffer's worth of copies and matches NATS' default
 * max_payload, which users of local brokers already size their data against.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Largest frame body accepted, by default: the payload limit plus room for
 * the subject, reply subject and field names (all bounded well below 16 KiB).
 */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + 16 * 1024;

/** Longest subject, in bytes (ASCII only, so also characters). */
export const MAX_SUBJECT_BYTES = 256;

/**
 * Most tokens in a subject. 16 levels are plenty for "app.area.thing.event"
 * hierarchies and bound the depth of the broker's subject trie.
 */
export const MAX_SUBJECT_TOKENS = 16;

/** Most messages one `history` answer holds (its `limit`); the default is DEFAULT_HISTORY_LIMIT. */
export const MAX_HISTORY_LIMIT = 1000;
export const DEFAULT_HISTORY_LIMIT = 100;

/** Longest queue group name, in bytes. */
export const MAX_QUEUE_NAME_BYTES = 64;

/** Longest client name given in `hello`, in bytes of UTF-8. */
export const MAX_CLIENT_NAME_BYTES = 128;

/** Request timeout used when `req` gives none, in milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** Longest request timeout the broker accepts, in milliseconds. */
export const MAX_REQUEST_TIMEOUT_MS = 600_000;

/** Largest `id` and `sid` value: both are unsigned 32-bit on the wire. */
export const MAX_ID = 0xffff_ffff;

/**
 * Prefix of the broker's private reply subjects. Clients may not subscribe or
 * send requests to it; publishing to one is how a responder replies.
 */
export const INBOX_PREFIX = "_INBOX.";
