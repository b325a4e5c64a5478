// The one place the C++ addon is loaded. Everything native goes through the
// typed surface below; a missing or broken build fails with one clear error.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { XpcbusError } from "../client-sdk/errors.js";

export interface NativePeerCredentials {
  pid: number | null;
  uid: number | null;
  gid: number | null;
  exe: string | null;
  exeError: string | null;
  method: string;
}

export interface NativeAddon {
  /** "linux" or "apple": which half of native/src was compiled in. */
  readonly platform: string;
  peerCredentials(fd: number): NativePeerCredentials;
}

// Works from native/ (tests run the .ts sources) and from dist/native/ (built).
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "native", "binding.gyp"))) return dir;
    dir = resolve(dir, "..");
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "..");
}

const ADDON_PATH = join(findPackageRoot(), "native", "build", "Release", "xpcbus_native.node");

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached !== undefined) return cached;
  if (!existsSync(ADDON_PATH)) {
    throw new XpcbusError(
      "native_unavailable",
      `the xpcbus native addon is not built (${ADDON_PATH} is missing); run "npm install" or "npm run build" in the package`,
    );
  }
  try {
    cached = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (cause) {
    throw new XpcbusError(
      "native_unavailable",
      `the xpcbus native addon at ${ADDON_PATH} failed to load: ${(cause as Error).message}; rebuild it with "npm run build"`,
      { cause },
    );
  }
  return cached;
}
