// The broker's name and version as `welcome` and `status` report them.
// Kept equal to package.json's version (checked by daemon/core.test.ts).
export const PACKAGE_VERSION = "0.1.0";
export const SERVER_VERSION = `xpcbus/${PACKAGE_VERSION}`;
