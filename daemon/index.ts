// xpcbus broker API: `import { startDaemon, Broker } from "xpcbus/daemon"`.
// Embed the broker core with a transport of your choice, or run the whole daemon.
export * from "./core/index.js";
export { startDaemon, resolveSocketPath, SHUTDOWN_GRACE_MS, type DaemonOptions, type RunningDaemon } from "./daemon-process.js";
export type { ServerTransport, BrokerAttachment } from "./transports/server-transport.js";
export { UnixServerTransport, socketIsLive, LIVE_PROBE_TIMEOUT_MS, type UnixServerOptions } from "./transports/unix-server-transport.js";
export { CLOSE_FLUSH_TIMEOUT_MS } from "./transports/unix-peer-link.js";
// Client and broker in one process over the real frame codec, no socket: for tests and embedding.
export { MemoryTransport, MEMORY_MAX_INBOUND_FRAME_BYTES, MEMORY_CLIENT_HIGH_WATER_BYTES, type MemoryTransportOptions, type MemoryConnection } from "./transports/memory-transport.js";
export { createLogger, parseLogLevel, LOG_LEVEL_ENV, DEFAULT_LOG_LEVEL } from "./logger.js";
export { fileSequenceFloor } from "./sequence-file.js";
export { XpcServerTransport, type XpcServerOptions } from "./transports/xpc-server.js";
export type { Notifier } from "./core/notifier.js";
export { TableNotifier } from "./notify/table-notifier.js";
export { DarwinNotifier } from "./notify/darwin-notifier.js";
