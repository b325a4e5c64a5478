// The broker core's public surface: no sockets, no files, no processes.
export { Broker, type BrokerOptions, type SlowConsumerPolicy } from "./broker.js";
export { DEFAULT_BROKER_LIMITS, parseLimits, type BrokerLimitOptions } from "./options.js";
export { Outbound, type PeerIdentity, type PeerInbound, type PeerLink, type WireEncoder } from "./peer-link.js";
export { SEQUENCE_RESERVATION_BLOCK, volatileSequenceFloor, type SequenceFloor } from "./sequences.js";
export { SubjectIndex, MATCH_CACHE_ENTRIES, QUEUE_CURSOR_ENTRIES } from "./subject-index.js";
export { SERVER_VERSION, PACKAGE_VERSION } from "./version.js";
