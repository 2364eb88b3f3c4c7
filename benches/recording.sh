#!/usr/bin/env bash
# Recording overhead (issue 20), one command:
#
#     benches/recording.sh
#
# Runs benches/ssh_compare.sh and benches/pg_compare.sh with
# BENCH_RECORDING=1 (recording off vs on, interleaved within each) and
# prints every ratio at the end. Their knobs pass through (BENCH_RUNS,
# BENCH_MIB, BENCH_LINES, BENCH_IDLE, BENCH_T, ...). Output is kept in
# target/bench-ssh-recording.txt and target/bench-pg-recording.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_RECORDING=1 benches/ssh_compare.sh
BENCH_RECORDING=1 benches/pg_compare.sh
echo
echo "== all recording ratios (goal: >= 0.9x)"
for f in target/bench-ssh-recording.txt target/bench-pg-recording.txt; do
    sed -n '/^== recording overhead/,/^load at end/p' "$f"
done
