// The native addon as the rest of xpcbus sees it: one loader, typed.
export * from "./loader.js";
