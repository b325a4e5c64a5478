// The daemon's durable store: what `startDaemon` opens and hands the broker
// core (core/durable-store.ts). better-sqlite3 is loaded only when a store
// is opened, never by importing this folder.
export { openStore, DEFAULT_DURABILITY, type OpenStoreOptions } from "./open-store.js";
export { defaultStorePath, SYSTEM_STORE_PATH_LINUX, SYSTEM_STORE_PATH_DARWIN, type StorePathInputs } from "./store-path.js";
export { SqliteStore, type Durability } from "./sqlite-store.js";
export { SCHEMA_VERSION } from "./schema.js";
