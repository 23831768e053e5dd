#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script for wbfuzz.
#
# Runs inside gcr.io/oss-fuzz-base/base-builder-rust (or locally through oss-fuzz/check-local.sh)
# with $SRC, $OUT and $WORK set. Builds every libFuzzer target in fuzz/fuzz_targets/ with
# `cargo fuzz build -O` and puts into $OUT, per target: the binary, `<target>_seed_corpus.zip`
# (from corpus/<target>/) and `<target>.options`.

PROJECT_DIR="${PROJECT_DIR:-$SRC/wbfuzz}"
FUZZ_DIR="$PROJECT_DIR/fuzz"

# Under the AFL (or honggfuzz) engine, libfuzzer-sys links OSS-Fuzz's engine driver instead of its
# bundled libFuzzer (the same `fuzz_target!` bodies run under either). Under libFuzzer, the
# bundled copy is used.
if [ "${FUZZING_ENGINE:-libfuzzer}" != "libfuzzer" ] && [ -n "${LIB_FUZZING_ENGINE_DEPRECATED:-}" ]; then
  export CUSTOM_LIBFUZZER_PATH="$LIB_FUZZING_ENGINE_DEPRECATED"
  export CUSTOM_LIBFUZZER_STD_CXX="${CUSTOM_LIBFUZZER_STD_CXX:-c++}"
fi

# The libFuzzer targets are exactly the files in fuzz/fuzz_targets/ (the AFL++ entry points in
# fuzz/afl_targets/ need the `afl` feature and are not built here).
TARGETS=()
for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do
  TARGETS+=("$(basename "$f" .rs)")
done
if [ ${#TARGETS[@]} -eq 0 ]; then
  echo "build.sh: no fuzz targets in $FUZZ_DIR/fuzz_targets" >&2
  exit 1
fi

# In fuzz/, cargo picks up fuzz/.cargo/config.toml, whose rustc wrapper builds ASan checks as
# calls (so the coverage pass does not instrument them), drops ASan's fake stacks (they cannot
# follow shuttle's coroutine stacks) and leaves crates from outside the repository without
# coverage: about five times the concurrent target's execs/s under ASan.
cd "$FUZZ_DIR"
cargo fuzz build -O

TRIPLE="${CARGO_BUILD_TARGET:-x86_64-unknown-linux-gnu}"
BUILD_DIR="${CARGO_TARGET_DIR:-$FUZZ_DIR/target}/$TRIPLE/release"

mkdir -p "$OUT"
for t in "${TARGETS[@]}"; do
  cp "$BUILD_DIR/$t" "$OUT/$t"

  # Seed corpus: flat zip of corpus/<target>/*.
  rm -f "$OUT/${t}_seed_corpus.zip"
  corpus="$PROJECT_DIR/corpus/$t"
  if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
    (cd "$corpus" && zip -q -j "$OUT/${t}_seed_corpus.zip" ./*)
  else
    echo "build.sh: warning: no seed corpus in $corpus" >&2
  fi

  # Inputs decode to at most 48 ops (or 4 x 12 ops plus 256 schedule bytes): longer inputs only
  # carry ignored trailing bytes.
  # The concurrent target needs several ops per thread before a race can happen at all, so
  # libFuzzer's slow growth of input length (len_control) mostly wastes its first minutes:
  # measured here, stale-mapping from an empty corpus took 9 s with len_control = 0 and was not
  # found in 300 s without it.
  # detect_leaks = 0: each fuzzing thread keeps one shuttle runner thread alive for the whole
  # process (its task stacks are reused across executions), which LeakSanitizer reports at exit.
  if [ "$t" = concurrent ]; then
    printf '[libfuzzer]\nmax_len = 1024\nlen_control = 0\ndetect_leaks = 0\n' > "$OUT/$t.options"
  else
    printf '[libfuzzer]\nmax_len = 1024\n' > "$OUT/$t.options"
  fi
done

echo "build.sh: built ${TARGETS[*]} into $OUT"
