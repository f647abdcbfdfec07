#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...] — the long fuzzing run (fuzz/README.md).
#
# Builds the cargo-fuzz targets in fuzz/ (installing cargo-fuzz when it is
# missing) and runs each one for SECONDS (default 60), one process at a time,
# starting from the committed seeds in fuzz/seeds/TARGET and growing the corpus in
# fuzz/corpus/TARGET (not committed). A crash stops that target and leaves its
# input in fuzz/artifacts/TARGET/; the script then exits non-zero after the other
# targets ran. Replay one with `cargo fuzz run TARGET fuzz/artifacts/TARGET/FILE`
# (with the flags below), or copy it into fuzz/seeds/TARGET/ so that `cargo test`
# (src/fuzzing.rs) replays it from then on.
#
# cargo-fuzz needs a nightly compiler: `+nightly` when rustup has one, else the
# stable compiler with RUSTC_BOOTSTRAP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(head event_id frame record)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
# Release build with debug assertions (integer overflow panics), AddressSanitizer.
flags=(--debug-assertions)

# The versions the server itself is tested with (fuzz/Cargo.lock is not committed).
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

started=$(date +%s)
cargo "${toolchain[@]}" fuzz build "${flags[@]}"
echo "built the fuzz targets in $(($(date +%s) - started)) s"

failed=()
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    dict=()
    [ -f "fuzz/dict/$target.dict" ] && dict=("-dict=$ROOT/fuzz/dict/$target.dict")
    echo "=== $target: ${SECONDS_PER_TARGET} s"
    log="fuzz/corpus/$target.log"
    if cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" \
        "$ROOT/fuzz/corpus/$target" "$ROOT/fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$target")
        tail -n 40 "$log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "$target: $status, ${runs:-?} executions, ${speed:-?} exec/s, ${cov:-cov: ?}, corpus $(find "fuzz/corpus/$target" -type f | wc -l) files (log: $log)"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "no crash in ${#TARGETS[@]} targets"
