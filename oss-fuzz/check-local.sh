#!/bin/bash
# Runs oss-fuzz/build.sh locally in an OSS-Fuzz-like environment (no docker) and checks what it
# produced:
#   - $SRC, $OUT and $WORK are fresh temporary directories, $SRC/wbfuzz is a symlink to this
#     repository and $SRC/build.sh a copy of oss-fuzz/build.sh, run from $SRC/wbfuzz as the
#     Dockerfile's WORKDIR would;
#   - SANITIZER=address, FUZZING_ENGINE=libfuzzer, FUZZING_LANGUAGE=rust, the nightly toolchain;
#   - every target in fuzz/fuzz_targets/ must have its binary, <target>_seed_corpus.zip and
#     <target>.options in $OUT;
#   - every built fuzzer then runs for a few seconds on its unzipped seed corpus, with no bug
#     switches, and must neither crash nor fail to start.
# Exits 0 with a message (skipping) when the nightly toolchain, cargo-fuzz or zip/unzip is missing.
#
# Usage: oss-fuzz/check-local.sh [target...]  (default: run every target; all are always built
# and checked). Each fuzzer runs with every [libfuzzer] option of its .options file.
#        oss-fuzz/check-local.sh --options-flags FILE  prints those flags for FILE.
# Environment: CHECK_LOCAL_SECONDS (default 5) per fuzzer; CHECK_LOCAL_KEEP=1 keeps the
# temporary directories.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_FUZZER="${CHECK_LOCAL_SECONDS:-5}"

skip() {
  echo "check-local: SKIP: $*"
  exit 0
}
fail() {
  echo "check-local: FAIL: $*" >&2
  exit 1
}

# The libFuzzer flags of an OSS-Fuzz .options file, one per line: every `key = value` of its
# [libfuzzer] section as `-key=value`, as ClusterFuzz passes them (other sections, comments and
# blank lines are skipped).
options_flags() {
  awk '
    /^[[:space:]]*[#;]/ || /^[[:space:]]*$/ { next }
    /^[[:space:]]*\[/ { section = $0; gsub(/[][[:space:]]/, "", section); next }
    section == "libfuzzer" && index($0, "=") {
      key = substr($0, 1, index($0, "=") - 1); value = substr($0, index($0, "=") + 1)
      gsub(/^[[:space:]]+|[[:space:]]+$/, "", key); gsub(/^[[:space:]]+|[[:space:]]+$/, "", value)
      print "-" key "=" value
    }' "$1"
}

# `check-local.sh --options-flags FILE` prints the flags of FILE and exits (used by the tests).
if [ "${1:-}" = --options-flags ]; then
  [ -f "${2:-}" ] || fail "--options-flags needs an .options file"
  options_flags "$2"
  exit 0
fi

# --- prerequisites --------------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
  rustup run nightly rustc --version >/dev/null 2>&1 || skip "no nightly toolchain (rustup toolchain install nightly)"
  export RUSTUP_TOOLCHAIN=nightly
else
  rustc --version 2>/dev/null | grep -q nightly || skip "no rustup and the default rustc is not nightly"
fi
cargo fuzz --version >/dev/null 2>&1 || skip "cargo-fuzz is not installed (cargo install cargo-fuzz)"
command -v zip >/dev/null 2>&1 || skip "zip is not installed"
command -v unzip >/dev/null 2>&1 || skip "unzip is not installed"

# --- an OSS-Fuzz-like environment ---------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wbfuzz-oss-fuzz.XXXXXX")"
if [ "${CHECK_LOCAL_KEEP:-0}" = 1 ]; then
  echo "check-local: keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi
export SRC="$TMP/src" OUT="$TMP/out" WORK="$TMP/work"
mkdir -p "$SRC" "$OUT" "$WORK"
ln -s "$REPO" "$SRC/wbfuzz"
cp "$REPO/oss-fuzz/build.sh" "$SRC/build.sh"

export SANITIZER=address FUZZING_ENGINE=libfuzzer FUZZING_LANGUAGE=rust ARCHITECTURE=x86_64
HOST="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET="$HOST"
# cargo fuzz builds into fuzz/target/<triple>/release; a redirected target dir would move it.
unset CARGO_TARGET_DIR
# As OSS-Fuzz's Rust projects set them (cargo fuzz adds the sanitizer and coverage flags).
export RUSTFLAGS="-Cdebuginfo=1 -Cforce-frame-pointers"
# Fuzzers must run clean: no injected bugs.
unset WBFUZZ_BUGS

TARGETS=()
for f in "$REPO"/fuzz/fuzz_targets/*.rs; do
  TARGETS+=("$(basename "$f" .rs)")
done
[ ${#TARGETS[@]} -gt 0 ] || fail "no targets in fuzz/fuzz_targets"

echo "check-local: building ${TARGETS[*]} (SRC=$SRC OUT=$OUT WORK=$WORK, host $HOST)"
(cd "$SRC/wbfuzz" && bash -eu "$SRC/build.sh") || fail "build.sh failed"

# --- what build.sh produced ---------------------------------------------------------------
missing=0
for t in "${TARGETS[@]}"; do
  for f in "$OUT/$t" "$OUT/${t}_seed_corpus.zip" "$OUT/$t.options"; do
    if [ ! -s "$f" ]; then
      echo "check-local: missing or empty: $f" >&2
      missing=1
    fi
  done
  [ -x "$OUT/$t" ] || { echo "check-local: not executable: $OUT/$t" >&2; missing=1; }
  if [ -f "$OUT/$t.options" ] && ! grep -q '^\[libfuzzer\]' "$OUT/$t.options"; then
    echo "check-local: no [libfuzzer] section in $OUT/$t.options" >&2
    missing=1
  fi
  if [ -f "$OUT/${t}_seed_corpus.zip" ] && ! unzip -tq "$OUT/${t}_seed_corpus.zip" >/dev/null; then
    echo "check-local: bad zip: $OUT/${t}_seed_corpus.zip" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || fail "build.sh output incomplete"

# --- run every fuzzer (or the ones named) briefly on its seed corpus -----------------------
RUN=("$@")
[ ${#RUN[@]} -gt 0 ] || RUN=("${TARGETS[@]}")
for t in "${RUN[@]}"; do
  [ -e "$REPO/fuzz/fuzz_targets/$t.rs" ] || fail "no such target: $t"
  corpus="$WORK/corpus/$t"
  mkdir -p "$corpus"
  unzip -q -o "$OUT/${t}_seed_corpus.zip" -d "$corpus"
  seeds=$(find "$corpus" -type f | wc -l)
  mapfile -t flags < <(options_flags "$OUT/$t.options")
  log="$WORK/$t.log"
  echo "check-local: running $t for ${SECONDS_PER_FUZZER}s on $seeds seeds with ${flags[*]:-no options}"
  if ! (cd "$WORK" && "$OUT/$t" -max_total_time="$SECONDS_PER_FUZZER" "${flags[@]}" \
        -artifact_prefix="$WORK/$t-" "$corpus" >"$log" 2>&1); then
    tail -n 60 "$log" >&2
    fail "$t crashed or failed (log above; artifacts in $WORK/$t-*)"
  fi
  grep -q 'INITED' "$log" || { tail -n 30 "$log" >&2; fail "$t never finished loading its corpus"; }
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  echo "check-local: $t ok: ${done_line:-$(tail -n 1 "$log")}"
done

echo "check-local: PASS (built ${TARGETS[*]}; ran ${RUN[*]})"
