#!/usr/bin/env bash
# The package as a user gets it: `npm pack` (prepack: a clean dist/ and this
# machine's prebuilt addon), then `npm install <tarball>` into a new project
# with no compiler on PATH, then the installed CLI and SDK against the
# installed daemon: a message published must arrive.
#
# The pack runs in a copy of the checkout (tracked and untracked files, not
# ignored ones; node_modules linked), because prepack empties dist/, which
# the tests and `npm start` of the checkout use.
# "No compiler": PATH is a folder of links to node, npm and the basic tools
# only (no cc, c++, g++, gcc, make, python3; checked before installing), so
# a package that tried to build its addon would fail to install or load; and
# the installed package must hold no native/build/.
#
#   bash .ci/pack-smoke.sh [xpcbus-x.y.z.tgz]   (a tarball given: test it, do not pack)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/xpcbus-pack-smoke.XXXXXX")
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "pack-smoke: $*" >&2; exit 1; }
# Every step is bounded: a hung one fails the run instead of holding CI.
bounded() { timeout --kill-after=10 "$@"; }

# --- pack -----------------------------------------------------------------------
if [ $# -ge 1 ]; then
  tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  mkdir "$work/src"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -xf - -C "$work/src"
  ln -s "$root/node_modules" "$work/src/node_modules"
  (cd "$work/src" && bounded 600 npm pack --pack-destination "$work" --loglevel=warn >"$work/pack.log" 2>&1) ||
    { tail -n 40 "$work/pack.log" >&2; fail "npm pack failed"; }
  tarball=$(ls "$work"/xpcbus-*.tgz)
fi
files=$(tar -tzf "$tarball" | sed 's|^package/||')
echo "pack-smoke: $(basename "$tarball"): $(wc -c <"$tarball") bytes, $(echo "$files" | grep -vc '/$') files"
bad=$(echo "$files" | grep -E '\.test\.|(^|/)bench/|test-support|\.map$|^native/build' || true)
[ -z "$bad" ] || fail "the tarball holds files a user must not get: $bad"
for f in dist/daemon/cli/main.js dist/client-sdk/index.js dist/client-sdk/index.d.ts native/binding.gyp native/src/addon.cc; do
  echo "$files" | grep -qx "$f" || fail "the tarball lacks $f"
done
tuple="$(node -p 'process.platform + "-" + process.arch')"
prebuild=$(echo "$files" | grep -E "^native/prebuilds/$tuple/.*\.node$" || true)
[ -n "$prebuild" ] || fail "the tarball has no prebuild for $tuple"
echo "pack-smoke: prebuilds: $(echo "$files" | grep -E '^native/prebuilds/.*\.node$' | tr '\n' ' ')"

# --- a PATH without a compiler --------------------------------------------------
bin=$work/bin
mkdir "$bin"
for tool in node npm npx sh bash env cat ls mkdir rm rmdir cp mv ln chmod sed grep tar gzip uname dirname basename \
  readlink realpath sleep timeout kill mktemp head tail wc tr sort id cut; do
  path=$(command -v "$tool" || true)
  [ -n "$path" ] && ln -s "$path" "$bin/$tool"
done
for tool in cc c++ gcc g++ clang make python3 python; do
  if PATH=$bin command -v "$tool" >/dev/null 2>&1; then fail "$tool is on the restricted PATH"; fi
done

# --- install into a new project -------------------------------------------------
app=$work/app
mkdir "$app"
cat >"$app/package.json" <<'EOF'
{ "name": "xpcbus-pack-smoke", "version": "1.0.0", "private": true, "type": "module" }
EOF
# npm's default policy runs a dependency's install script with a notice (it
# is not in the app's allowScripts): ours runs, finds the prebuild and builds
# nothing. Denied (allowScripts false, --ignore-scripts), nothing runs and
# the loader finds the same prebuild. --foreground-scripts: its output in the log.
(cd "$app" && PATH=$bin bounded 300 npm install --no-audit --no-fund --prefer-offline --foreground-scripts \
  --loglevel=warn "$tarball" >"$work/install.log" 2>&1) ||
  { tail -n 40 "$work/install.log" >&2; fail "npm install of the tarball failed with no compiler on PATH"; }
installed=$app/node_modules/xpcbus
[ ! -e "$installed/native/build" ] || fail "the install compiled the addon (native/build exists)"
ran=no
if grep -q '^> xpcbus@.* install$' "$work/install.log"; then ran=yes; fi
echo "pack-smoke: installed with PATH=$bin (no cc, c++, g++, make, python3); install script ran: $ran; no native/build"
loaded=$(PATH=$bin node --input-type=module -e "
  const { loadNative, nativeAddonPath } = await import('$installed/dist/native/loader.js');
  loadNative();
  console.log(nativeAddonPath());")
case "$loaded" in
  "$installed/native/prebuilds/$tuple/"*) echo "pack-smoke: the addon loaded is the prebuild: ${loaded#"$app/"}" ;;
  *) fail "the addon loaded is not the prebuild: $loaded" ;;
esac

# --- publish and subscribe with the installed package --------------------------
xpcbus=$app/node_modules/.bin/xpcbus
socket=$work/broker.sock
export XPCBUS_LOG_LEVEL=warn
PATH=$bin "$xpcbus" daemon --socket "$socket" 2>"$work/daemon.log" &
daemon=$!
# Ready when it answers; it either does or exits within a few seconds.
for _ in $(seq 1 100); do
  if PATH=$bin "$xpcbus" status --socket "$socket" >/dev/null 2>&1; then break; fi
  kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the installed daemon exited"; }
  sleep 0.1
done
PATH=$bin "$xpcbus" status --socket "$socket" >/dev/null || fail "the installed daemon never answered"

# The store: better-sqlite3 is an optional dependency. With no compiler and no
# prebuilt download its install fails and npm drops it: the daemon must start
# anyway, without durability, and say so in one warning. Where it did install
# (a prebuilt was found), the daemon must be using it.
if [ -e "$app/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
  [ -e "$socket.store.db" ] || fail "better-sqlite3 is installed but the daemon made no store at $socket.store.db"
  echo "pack-smoke: store: sqlite at ${socket#"$work/"}.store.db"
else
  grep -q '"msg":"durability is off' "$work/daemon.log" ||
    fail "better-sqlite3 did not install, and the daemon did not warn that durability is off: $(cat "$work/daemon.log")"
  echo "pack-smoke: store: better-sqlite3 not installed (no compiler, no prebuilt); the daemon warned and runs in memory"
fi

# The CLI: a retained publish, then a subscriber that gets it first (--replay).
PATH=$bin bounded 30 "$xpcbus" pub smoke.cli '{"from":"xpcbus pub"}' --json --retain --socket "$socket"
got=$(PATH=$bin bounded 30 "$xpcbus" sub smoke.cli --replay --count 1 --json --socket "$socket")
echo "pack-smoke: xpcbus sub got: $got"
echo "$got" | grep -q '"from":"xpcbus pub"' || fail "xpcbus sub did not get the published message"

# The SDK, imported by name from the installed package: live delivery.
cat >"$app/smoke.mjs" <<'EOF'
import { connect } from "xpcbus";
const bus = await connect({ socket: process.argv[2], name: "pack-smoke" });
const sub = await bus.subscribe("smoke.sdk");
await bus.publish("smoke.sdk", { from: "the SDK" });
for await (const m of sub) {
  console.log(`pack-smoke: SDK subscriber got ${m.subject} ${JSON.stringify(m.data)} (seq ${m.seq})`);
  break;
}
await bus.close();
EOF
(cd "$app" && PATH=$bin bounded 30 node smoke.mjs "$socket") | tee "$work/sdk.log"
grep -q '"from":"the SDK"' "$work/sdk.log" || fail "the SDK subscriber did not get the message"

kill "$daemon"
wait "$daemon" || fail "the daemon did not exit cleanly on SIGTERM: $(cat "$work/daemon.log")"
daemon=""
echo "pack-smoke: ok in $((SECONDS - start)) s"
