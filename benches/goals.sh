#!/usr/bin/env bash
# Every performance goal of SPEC and issue 21, measured against its peer in
# one run, then one table of ratios.
#
#     benches/goals.sh
#
# Runs benches/compare.sh (the TCP tunnel against HAProxy: termination,
# throughput from a rustls client and over the whole path through
# `jitgate connect`, idle memory, setup rate) and benches/pg_compare.sh
# (pgbench -S simple, extended and -C against pgbouncer and direct TLS, and
# idle sessions against pgbouncer's) and the idle part of
# benches/ssh_compare.sh (idle pty sessions against sshd's), then
# benches/goals_summary.py prints each goal with jitgate's figure, the
# peer's, the ratio and whether it is met. Each part interleaves its rounds
# with its peer and keeps its full output (target/bench-tunnel.txt,
# target/bench-pg.txt, target/bench-ssh.txt); the summary goes to target/bench-goals.txt.
#
# The parts' knobs apply (BENCH_SESSIONS, BENCH_RUNS, BENCH_T...). About 40
# minutes on 2 cores.
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p target

echo "== goals: TCP tunnel (benches/compare.sh)"
benches/compare.sh
echo
echo "== goals: PostgreSQL (benches/pg_compare.sh)"
benches/pg_compare.sh
echo
echo "== goals: idle SSH sessions (BENCH_ONLY=idle benches/ssh_compare.sh)"
BENCH_ONLY=idle benches/ssh_compare.sh
echo
python3 benches/goals_summary.py target/bench-tunnel.txt target/bench-pg.txt target/bench-ssh.txt |
    tee target/bench-goals.txt
