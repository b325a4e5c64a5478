// xpcbus client SDK: `import { connect } from "xpcbus"`. What an application
// needs: connect(), the types it hands out, the errors, and the documented
// helpers. The wire protocol for writing another client is `xpcbus/protocol`.
export { connect, type ConnectOptions } from "./connect.js";
export type { Client } from "./client.js";
export {
  DEFAULT_DRAIN_TIMEOUT_MS,
  type ClientEvents,
  type DrainOptions,
  type GetResult,
  type HistoryMessage,
  type HistoryOptions,
  type HistoryResult,
  type PublishAck,
  type PublishOptions,
  type RequestOptions,
  type RespondOptions,
  DEFAULT_RECONNECT,
  MAX_WRITE_BUFFER_BYTES,
  type ReconnectOptions,
} from "./client-options.js";
export { DEFAULT_MAX_PENDING_MESSAGES, type Subscription, type Message, type SubscribeOptions, type SubscriptionGap } from "./subscription.js";
export type { Watch, WatchEvent, WatchOptions } from "./watch.js";
export { DEFAULT_SERVICE_NAME, MAX_NOTIFY_NAME_BYTES, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT } from "../protocol/index.js";
// connect({ transport }) takes a transport of your own; these are the two built in.
export type { ClientTransport, ClientConnection, ClientConnectionHandlers } from "./client-transport.js";
export { UnixClientTransport, type UnixClientTransportOptions } from "./unix-client-transport.js";
export { BROKER_UID_ENV } from "./broker-trust.js";
/** @deprecated Renamed UnixClientTransport (it pairs with XpcClientTransport); this name stays so code importing it keeps working. */
export { XpcClientTransport, type XpcClientOptions } from "./xpc-client-transport.js";
export { defaultSocketPath, SYSTEM_SOCKET_PATH, SOCKET_ENV } from "./paths.js";
export * from "./errors.js";
export type { Payload, JsonValue, BrokerStatus, PeerStatus, BrokerLimits, PayloadEncoding, NotifyInfo } from "../protocol/index.js";
