// Bounds and defaults of the long-running commands, in one module with no
// imports: main.ts quotes them in --help without loading the commands'
// code, and the commands use the same constants.

/**
 * Longest run of one `reply --exec` command. A requester waits 5 s by default
 * (`req --timeout`, the SDK's request timeout); twice that still answers one
 * that asked for longer, and a hung command is killed instead of holding a slot.
 */
export const EXEC_TIMEOUT_MS = 10_000;

/**
 * Most stdout kept from one `reply --exec` run: the default broker's payload
 * limit (DEFAULT_MAX_PAYLOAD_BYTES, 1 MiB; daemon/cli-reply.test.ts checks
 * they agree), past which the reply could not be sent anyway. A command that
 * writes more is killed, and the requester gets an error, not a cut reply.
 */
export const MAX_EXEC_OUTPUT_BYTES = 1024 * 1024;

/** `reply --exec` commands running at once: a burst of requests must not fork a shell each at the same moment. */
export const MAX_CONCURRENT_EXECS = 4;

/**
 * Requests waiting for a slot. Past it a request is refused at once (the
 * requester sees "busy") rather than queued without bound behind a slow command.
 */
export const MAX_WAITING_EXECS = 64;

/** Between two refreshes of `status --watch` by default: often enough to watch, rare enough to cost the broker nothing. */
export const DEFAULT_STATUS_INTERVAL_MS = 1000;
