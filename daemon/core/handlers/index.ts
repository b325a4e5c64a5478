// The broker's op handlers, one file per family of ops (as aedes keeps
// lib/handlers/<packet>.js). Each is a function of the broker's context, the
// peer's session and the parsed op; the Broker dispatches to them.
export { wireUint, type BrokerContext } from "./context.js";
export { subscribe, unsubscribe, get, history } from "./subscribe.js";
export { publish } from "./publish.js";
export { request } from "./request.js";
export { watch, unwatch, post, state } from "./notify.js";
export { status, STATUS_MAX_SUBJECTS_LISTED, STATUS_MAX_SUBSCRIPTIONS_LISTED, type StatusSource } from "./status.js";
