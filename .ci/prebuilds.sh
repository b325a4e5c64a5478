#!/usr/bin/env bash
# npm run prebuilds (and prepack): this machine's prebuilt addon for the
# package, native/prebuilds/<platform>-<arch>/xpcbus[.glibc].node, so that
# installing the package needs no compiler where a prebuild fits
# (native/loader.ts loads it through node-gyp-build).
#
# Node-API (NAPI_VERSION pinned in binding.gyp), so one binary serves every
# Node version: `prebuildify --napi`. --strip drops the symbols (about a
# tenth of the size). On Linux the file is tagged with its libc (glibc), so
# node-gyp-build never offers it to a musl system (Alpine), which builds
# from source instead; a glibc older than this machine's may refuse it, and
# the install script then builds from source too.
#
# prebuildify runs `node-gyp rebuild` in the folder it builds and then moves
# the .node out of its build/Release: run in native/ it would wipe the
# checkout's own build (the one the tests load). So it builds a copy of
# binding.gyp and src/ in a temporary folder, and writes only
# native/prebuilds/. The build takes /tmp/xpcbus-native.lock, like every
# build of the addon on a shared machine (flock, where there is one: macOS
# has none).
#
#   bash .ci/prebuilds.sh            (macOS CI uploads native/prebuilds/ as an artifact)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# node-gyp: the one npm puts on PATH for its scripts, else npm's own copy.
if command -v node-gyp >/dev/null 2>&1; then
  gyp=$(command -v node-gyp)
elif [ -n "${npm_config_node_gyp:-}" ]; then
  gyp=$npm_config_node_gyp
else
  gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
fi
# Outside `npm run`, node-gyp does not see .npmrc's nodedir (the installed
# headers): pass it on, or it would try to download them.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir=$(npm config get nodedir 2>/dev/null || true)
  if [ -n "$nodedir" ] && [ "$nodedir" != undefined ] && [ -d "$nodedir" ]; then export npm_config_nodedir=$nodedir; fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/xpcbus-prebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -p native/binding.gyp "$work/"
cp -Rp native/src "$work/src"

tags=()
if [ "$(uname -s)" = Linux ]; then tags+=(--tag-libc); fi

# binding.gyp asks node for node-addon-api's headers: found through NODE_PATH
# from the temporary folder. PREBUILD_NODE_GYP: prebuildify spawns it directly.
run=(env NODE_PATH="$root/node_modules" PREBUILD_NODE_GYP="$gyp"
  node "$root/node_modules/prebuildify/bin.js" --napi --strip "${tags[@]}"
  --name xpcbus --cwd "$work" --out "$root/native")
start=$SECONDS
if command -v flock >/dev/null 2>&1; then
  flock /tmp/xpcbus-native.lock "${run[@]}"
else
  "${run[@]}"
fi
echo "prebuilds: built in $((SECONDS - start)) s:"
find native/prebuilds -name '*.node' -exec ls -l {} +
