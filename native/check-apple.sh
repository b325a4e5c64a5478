#!/usr/bin/env bash
# npm run check:apple — type-checks native/src (the apple half and the shared
# files) against Apple's SDK headers with ../shared/tools/apple-check.
# Exits 0 with a "skipped" line when the checker or its header tree is absent,
# so machines without them (CI) are not failed by a tool they cannot have.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
checker=${APPLE_CHECK:-$root/../shared/tools/apple-check/run.sh}
headers=${APPLE_HEADERS:-${TMPDIR:-/tmp}/apple-sdk-headers}
if [ ! -x "$checker" ] && [ ! -f "$checker" ]; then
  echo "check:apple skipped: apple-check not found at $checker (set APPLE_CHECK)"
  exit 0
fi
if [ ! -d "$headers/MacOSX14.2.sdk" ]; then
  echo "check:apple skipped: no Apple header tree at $headers. Build it from a snapshot of"
  echo "  github:hexops/xcode-frameworks: bash $(dirname "$checker")/build-headers.sh <its git dir>"
  exit 0
fi
if ! command -v clang >/dev/null 2>&1; then
  echo "check:apple skipped: clang is not installed (apt-get install -y clang)"
  exit 0
fi
# Every .cc under src/ is built by exactly the half of binding.gyp it belongs
# to (src/*.cc by both), and every source listed there exists: a file checked
# here but never built, or built but never checked, fails.
node - "$root/native" <<'JS' || exit 1
const { readFileSync, readdirSync } = require("node:fs");
const dir = process.argv[2];
const gyp = JSON.parse(readFileSync(`${dir}/binding.gyp`, "utf8").replace(/^\s*#.*$/gm, ""));
const target = gyp.targets[0];
const half = (os) => target.conditions.find(([cond]) => cond === `OS=='${os}'`)[1].sources;
const listed = { "": target.sources, apple: half("mac"), linux: half("linux") };
const problems = [];
for (const [sub, sources] of Object.entries(listed)) {
  const prefix = sub === "" ? "src/" : `src/${sub}/`;
  const present = readdirSync(`${dir}/${prefix}`).filter((f) => f.endsWith(".cc")).map((f) => prefix + f);
  for (const f of present) if (!sources.includes(f)) problems.push(`${f} is not in binding.gyp's ${sub === "" ? "shared" : sub} sources`);
  for (const f of sources) if (f.startsWith(prefix) && !present.includes(f)) problems.push(`binding.gyp lists ${f}, which does not exist`);
}
if (problems.length > 0) {
  console.error(`check:apple: binding.gyp and native/src disagree:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
JS
# Mirror binding.gyp's defines, include path and deployment target (macOS 11:
# an API newer than that must sit behind __builtin_available, or it fails
# here as it would fail the Mac build); the XPC C example too (the notify
# table example is Linux-only).
exec bash "$checker" -p "$root" -t arm64-apple-macos11 -t x86_64-apple-macos11 -x '*/linux/*' "$root/native/src" "$root/docs/examples/xpc-client.c" -- \
  -Werror=unguarded-availability-new -I"$root/native/src" -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
