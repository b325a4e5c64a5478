// xpcbus client SDK: `import { connect } from "xpcbus"`.
export { connect, type ConnectOptions } from "./connect.js";
export {
  Client,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_RECONNECT,
  MAX_WRITE_BUFFER_BYTES,
  type ClientEvents,
  type DrainOptions,
  type GetResult,
  type PublishAck,
  type PublishOptions,
  type ReconnectOptions,
  type RequestOptions,
  type RespondOptions,
} from "./client.js";
export { Subscription, DEFAULT_MAX_PENDING_MESSAGES, type Message, type SubscribeOptions } from "./subscription.js";
export { Watch, type WatchEvent, type WatchOptions } from "./watch.js";
export { DEFAULT_SERVICE_NAME, MAX_NOTIFY_NAME_BYTES } from "./protocol/notify-name.js";
export type { ClientTransport, ClientConnection, ClientConnectionHandlers } from "./client-transport.js";
export { UnixSocketClientTransport } from "./unix-socket-client.js";
export { XpcClientTransport, type XpcClientOptions } from "./xpc-client-transport.js";
export { defaultSocketPath, SYSTEM_SOCKET_PATH, SOCKET_ENV } from "./paths.js";
export * from "./errors.js";
export * as protocol from "./protocol/index.js";
export type { Payload, JsonValue } from "./protocol/payload.js";
export type { BrokerStatus, PeerStatus, BrokerLimits, PayloadEncoding, NotifyInfo } from "./protocol/messages.js";
