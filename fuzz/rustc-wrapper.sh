#!/bin/sh
# rustc wrapper for the fuzz targets (set in fuzz/.cargo/config.toml); called as
# `rustc-wrapper.sh RUSTC ARGS...`. It changes two things, both for speed under a sanitizer:
#
# 1. AddressSanitizer builds (`-Zsanitizer=address`, the cargo-fuzz and OSS-Fuzz default) get
#    `-asan-instrumentation-with-call-threshold=0`: rustc runs the SanitizerCoverage pass after
#    ASan, so every inline shadow check ASan adds (one per memory access) became a
#    `__sanitizer_cov_trace_const_cmp1` call and a coverage counter of its own, a third of the
#    run time and thousands of meaningless features. With the threshold at 0, ASan checks are
#    calls (`__asan_load8`, ...), which coverage leaves alone.
#    They also get `-asan-use-after-return=never`: shuttle runs every simulated thread on a
#    coroutine stack of its own, which ASan's fake stacks cannot follow (it warns "ignoring
#    requested __asan_handle_no_return" and garbage-collects its fake frames on each switch).
# 2. Crates from outside this repository (shuttle, its generator, hashbrown, ...) are built
#    without the coverage pass: their branches say nothing about the filesystem under test, and
#    shuttle's scheduler bookkeeping at every context switch was most of the remaining
#    comparison callbacks. They keep the sanitizer. Code of theirs that is generic and
#    instantiated in our crates is still covered.
#
# Everything else is passed through unchanged.
set -eu
rustc="$1"
shift

# Physical paths on both sides: the repository may be reached through a symlink (OSS-Fuzz's
# $SRC/wbfuzz in oss-fuzz/check-local.sh).
here="$(cd "$(dirname "$0")/.." && pwd -P)"
manifest="$(cd "${CARGO_MANIFEST_DIR:-/}" 2>/dev/null && pwd -P || echo /)"

asan=0
for a in "$@"; do
  case "$a" in
    -Zsanitizer=address) asan=1 ;;
  esac
done

ours=0
case "$manifest" in
  "$here" | "$here"/*) ours=1 ;;
esac

# Rebuild the argument list: drop `-Cpasses=sancov-module` (or `-C passes=sancov-module`) from
# other crates' builds.
n=$#
i=0
pending_c=""
for a in "$@"; do
  i=$((i + 1))
  if [ -n "$pending_c" ]; then
    pending_c=""
    if [ "$ours" = 0 ] && [ "$a" = "passes=sancov-module" ]; then
      :
    else
      set -- "$@" -C "$a"
    fi
  elif [ "$a" = "-C" ] && [ "$i" -lt "$n" ]; then
    pending_c=1
  elif [ "$ours" = 0 ] && [ "$a" = "-Cpasses=sancov-module" ]; then
    :
  else
    set -- "$@" "$a"
  fi
done
shift "$n"

if [ "$asan" = 1 ]; then
  set -- "$@" -Cllvm-args=-asan-instrumentation-with-call-threshold=0 \
    -Cllvm-args=-asan-use-after-return=never
fi
exec "$rustc" "$@"
