#!/usr/bin/env bash
# npm run test:sanitize — builds the addon with -fsanitize=address,undefined
# into native/build-sanitize/ (a copy of binding.gyp and src/; never
# native/build, which the normal tests load), then runs the native tests and
# the notify stress with GCC's ASan runtime preloaded into every node process
# they start: vitest, the daemon, client processes, and their worker threads
# all load that build through $XPCBUS_NATIVE_ADDON (native/loader.ts).
# A sanitizer report ends the process that made it with a non-zero status,
# which the tests report as a failure with its stderr.
#
#   bash native/test-sanitize.sh [vitest files or options]   (default: native/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

if [ "$(uname -s)" != Linux ]; then
  echo "test:sanitize skipped: it preloads GCC's Linux ASan runtime (LD_PRELOAD); Linux only"
  exit 0
fi

# The runtime must be the first library of a process that was not itself
# built with ASan (node), hence LD_PRELOAD; g++ knows where its copy is
# (Debian: libasan8 and libubsan1, pulled in by g++).
libasan=$(g++ -print-file-name=libasan.so 2>/dev/null || true)
if [ -z "$libasan" ] || [ ! -e "$libasan" ] || [ "$libasan" = libasan.so ]; then
  echo "test:sanitize: no ASan runtime found (g++ -print-file-name=libasan.so); install g++ (Debian: apt-get install g++ libasan8 libubsan1)" >&2
  exit 1
fi

# --- the sanitized build -----------------------------------------------------

out=$here/build-sanitize
# -O1: stacks that still read like the source, and faster than -O0. It comes
# after node-gyp's own -O3 on the command line, so it wins.
# float-cast-overflow: GCC leaves it out of "undefined"; the value tree casts JS numbers.
cxxflags="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -g -O1"
ldflags="-fsanitize=address,undefined,float-cast-overflow"

# node-gyp: the one npm puts on PATH for its scripts, else npm's own copy.
if command -v node-gyp >/dev/null 2>&1; then
  gyp=(node-gyp)
elif [ -n "${npm_config_node_gyp:-}" ]; then
  gyp=(node "$npm_config_node_gyp")
else
  gyp=(node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js")
fi
# Outside `npm run`, node-gyp does not see .npmrc's nodedir (the installed
# headers): pass it on, or it would try to download them.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir=$(npm config get nodedir 2>/dev/null || true)
  if [ -n "$nodedir" ] && [ -d "$nodedir" ]; then export npm_config_nodedir=$nodedir; fi
fi

mkdir -p "$out"
# Copies that keep their timestamps, so make recompiles only what changed.
cp -p "$here/binding.gyp" "$out/binding.gyp"
rm -rf "$out/src.next"
cp -rp "$here/src" "$out/src.next"
rm -rf "$out/src"
mv "$out/src.next" "$out/src"

stamp="$cxxflags | $ldflags | $(cksum < "$out/binding.gyp")"
if [ ! -f "$out/build/Makefile" ] || [ "$(cat "$out/stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$out/build"
  (cd "$out" && "${gyp[@]}" configure --loglevel=warn)
fi
start=$SECONDS
(cd "$out" && CXXFLAGS="$cxxflags" LDFLAGS="$ldflags" "${gyp[@]}" build --loglevel=warn -j 2)
echo "$stamp" > "$out/stamp"
addon=$out/build/Release/xpcbus_native.node
echo "test:sanitize: $addon built in $((SECONDS - start)) s"
# dlclose() kept from unloading modules, worker stacks sized for ASan: see preload.c.
preload=$out/preload.so
if [ ! -f "$preload" ] || [ "$here/sanitize/preload.c" -nt "$preload" ]; then
  gcc -shared -fPIC -O2 -Wall -o "$preload" "$here/sanitize/preload.c" -ldl
fi

# The tests spawn the compiled daemon and SDK (dist/), so they must be current.
npx tsc -p tsconfig.json

# --- the run -------------------------------------------------------------------

# Default: every test file under native/ (the addon's own tests and the notify stress).
if [ $# -eq 0 ]; then
  set -- native/
fi

# detect_leaks: LeakSanitizer runs at each process's exit; lsan.supp names the
# Node internals still allocated then (never our addon's frames). UBSan stops
# at its first report, with a stack. handle_abort: an abort() (libuv aborts on
# a destroyed mutex, e.g. a ThreadSafeFunction used after it was freed inside
# Node, which is not instrumented) prints the aborting thread's stack.
# --pool=threads: vitest's default pool runs test files in child processes it
# ends with SIGTERM, so their exit-time leak check never runs; in threads, the
# test files' environments (and the addon in them) are torn down inside
# vitest's own process, whose leak check runs when it exits.
asan="detect_leaks=1:handle_abort=1"
status=0
env \
  XPCBUS_NATIVE_ADDON="$addon" \
  LD_PRELOAD="$libasan:$preload${LD_PRELOAD:+:$LD_PRELOAD}" \
  ASAN_OPTIONS="$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  LSAN_OPTIONS="suppressions=$here/sanitize/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
  node "$root/node_modules/vitest/vitest.mjs" run --pool=threads --testTimeout=120000 --hookTimeout=60000 "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "test:sanitize failed (status $status). A sanitizer report printed after vitest's summary is from vitest's own process at exit: a leak of a test file's environment (they run in worker threads there)." >&2
fi
exit "$status"
