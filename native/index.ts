// The native addon as the rest of xpcbus sees it: one loader, typed, and its
// errors as XpcbusErrors.
export * from "./loader.js";
export { NativeError, toNativeError, type NativeErrorCode } from "./native-error.js";
