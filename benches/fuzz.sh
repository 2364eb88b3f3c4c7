#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for a bounded time (issue 9).
#
#     benches/fuzz.sh [SECONDS]        # default 60 per target
#     FUZZ_TARGETS="pg_startup admin_json" benches/fuzz.sh 30
#
# Installs cargo-fuzz when it is missing. Builds on the stable toolchain with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags) into target/fuzz, apart from
# the main build. Each target starts from its seed corpus in
# proto-fixtures/fuzz/TARGET (read only) and keeps what it discovers in
# fuzz/corpus/TARGET (ignored by git). A finding (crash, leak, timeout, OOM)
# leaves its input under fuzz/artifacts/TARGET. Full logs: target/fuzz-logs/.
# Prints: target, seconds, executions, findings; exits 1 if anything was found.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS="${1:-60}"
case "$SECS" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz: not installed; installing it" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$ROOT/target/fuzz"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
LOGS="$ROOT/target/fuzz-logs"
mkdir -p "$LOGS"

TARGETS="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^jitgate-fuzz$')}"

cd fuzz
echo "building fuzz targets (sanitizer build, takes a while the first time)" >&2
cargo fuzz build -O >&2

rows=()
found=0
for t in $TARGETS; do
    seeds="$ROOT/proto-fixtures/fuzz/$t"
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$LOGS/$t.log"
    echo "fuzzing $t for ${SECS}s" >&2
    set +e
    cargo fuzz run -O "$t" "corpus/$t" "$seeds" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    [ -n "$execs" ] || execs="?"
    kinds=$(sed -n 's/.*Test unit written to .*\/\(crash\|leak\|timeout\|oom\|slow-unit\)-.*/\1/p' "$log" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')
    if [ "$rc" -ne 0 ] || [ -n "$kinds" ]; then
        found=1
        [ -n "$kinds" ] || kinds="exit $rc (see $log)"
    else
        kinds="none"
    fi
    rows+=("$(printf '| %s | %s | %s | %s |' "$t" "$SECS" "$execs" "$kinds")")
done

echo
echo "| target | seconds | executions | findings |"
echo "|---|---:|---:|---|"
printf '%s\n' "${rows[@]}"
exit "$found"
