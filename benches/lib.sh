# shellcheck shell=bash
# Shared by the comparison scripts (sourced, not run): compare.sh,
# pg_compare.sh and ssh_compare.sh.

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt_install_service PACKAGE: installs PACKAGE with apt, robust against a
# stale index or a half-configured dpkg (an earlier install interrupted),
# then stops the system service the package may start: the benches run
# their own instances on their own ports.
apt_install_service() {
    local pkg="$1"
    echo "$pkg: not installed; installing it with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    if ! $SUDO dpkg --configure -a; then
        $SUDO apt-get -f install -y
    fi
    if ! $SUDO apt-get install -y --no-install-recommends "$pkg"; then
        $SUDO apt-get -f install -y
        $SUDO dpkg --configure -a
        $SUDO apt-get install -y --no-install-recommends "$pkg"
    fi
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$pkg" 2>/dev/null; then
        $SUDO systemctl stop "$pkg" || true
        $SUDO systemctl disable "$pkg" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$pkg" ]; then
        $SUDO "/etc/init.d/$pkg" stop >/dev/null 2>&1 || true
    fi
}

# print_machine: the facts a figure needs next to it.
print_machine() {
    echo "== machine"
    echo "cores:     $(nproc)"
    echo "cpu:       $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory:    $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel:    $(uname -srm)"
    echo "os:        $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "rustc:     $(rustc --version)"
    echo "nofile:    $(ulimit -n) (hard $(ulimit -Hn))"
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# The rest serves pg_compare.sh and ssh_compare.sh: a private jitgate and
# its peers as children on free ports, killed and cleaned up however the
# script ends.

# die MESSAGE: prints "SCRIPT: MESSAGE" on stderr and exits 1 (cleanup runs).
die() {
    echo "$(basename "$0" .sh): $*" >&2
    exit 1
}

# build_jitgate: sets JITGATE to $JITGATE_BIN, or builds the release binary.
build_jitgate() {
    if [ -n "${JITGATE_BIN:-}" ]; then
        JITGATE=$JITGATE_BIN
    else
        cargo build --release --bin jitgate >&2
        JITGATE=$ROOT/target/release/jitgate
    fi
    [ -x "$JITGATE" ] || die "no jitgate binary at $JITGATE"
}

# drop_privileges: sets RUN_USER and AS_USER (a command prefix) so that
# servers refusing root (postgres, pgbouncer) run as postgres or nobody.
drop_privileges() {
    AS_USER=()
    RUN_USER=$(id -un)
    if [ "$(id -u)" -eq 0 ]; then
        RUN_USER=postgres
        id postgres >/dev/null 2>&1 || RUN_USER=nobody
        # shellcheck disable=SC2034 # used by the sourcing script
        AS_USER=(setpriv "--reuid=$RUN_USER" "--regid=$RUN_USER" --clear-groups --)
    fi
}

# with_cleanup PREFIX MODE SIGNAL: makes TMP (/tmp/PREFIX-XXXXXX, chmod
# MODE) and traps exit, Ctrl-C and TERM so that every pid in PIDS gets SIGNAL
# (then KILL after 5 s), the logs in TMP are shown on failure, and TMP and
# every path in CLEANUP_PATHS are removed.
with_cleanup() {
    TMP=$(mktemp -d "/tmp/$1-XXXXXX")
    chmod "$2" "$TMP"
    STOP_SIGNAL=$3
    PIDS=()
    CLEANUP_PATHS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# cleanup: the EXIT trap that with_cleanup installs.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Whatever happened to the output, the children and TMP still go.
    trap '' PIPE
    local pid log
    for pid in "${PIDS[@]}"; do
        kill "-$STOP_SIGNAL" "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$TMP"/*.log; do
            [ -s "$log" ] || continue
            echo "---- last lines of $(basename "$log")" >&2
            tail -n 20 "$log" >&2
        done
    fi
    rm -rf "$TMP" "${CLEANUP_PATHS[@]}"
    exit "$rc"
}

# free_port: prints a TCP port free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT WHAT PID: waits up to 30 s for PORT to accept, dying if PID exits.
wait_port() {
    local i
    for i in $(seq 300); do
        kill -0 "$3" 2>/dev/null || die "$2 exited during startup"
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$2 did not listen on port $1 within 30 s"
}

# rand_hex N: prints N random bytes as hex.
rand_hex() {
    python3 -c "import secrets; print(secrets.token_hex($1))"
}

# sha TEXT: prints the hex SHA-256 of TEXT (a token's hash for the config).
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# tee_output FILE: from here on, stdout and stderr also go to target/FILE.
# tee ignores SIGINT: on Ctrl-C it must outlive the script to carry
# cleanup's output (and a dead tee would kill cleanup with SIGPIPE).
tee_output() {
    mkdir -p target
    exec > >(
        trap '' INT
        exec tee "target/$1"
    ) 2>&1
}

# print_jitgate: the commit, binary and load lines of the header.
print_jitgate() {
    echo "jitgate:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted changes in src/)')"
    echo "binary:    $JITGATE (built $(date -u -r "$JITGATE" +%Y-%m-%dT%H:%M:%SZ))"
    echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine skews absolute figures)"
}

# start_jitgate CONFIG [NAME=VALUE...]: runs `jitgate serve` (log in
# TMP/jitgate.log, the assignments in its environment), sets JITGATE_PID and
# waits up to 30 s for /readyz on ADMIN_PORT.
start_jitgate() {
    local config=$1 i code
    shift
    env "$@" RUST_LOG=warn "$JITGATE" serve --config "$config" >"$TMP/jitgate.log" 2>&1 &
    PIDS+=($!)
    JITGATE_PID=${PIDS[-1]}
    for i in $(seq 300); do
        kill -0 "$JITGATE_PID" 2>/dev/null || die "jitgate exited during startup"
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz" || true)
        [ "$code" = 200 ] && break
        [ "$i" -eq 300 ] && die "jitgate not ready within 30 s (last /readyz: $code)"
        sleep 0.1
    done
}

# api METHOD PATH TOKEN [JSON]: calls jitgate's admin API, prints the body.
api() {
    curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $3" \
        -H 'Content-Type: application/json' ${4:+--data "$4"} \
        "http://127.0.0.1:$ADMIN_PORT$2"
}

# json EXPR: evaluates the Python EXPR over the JSON on stdin (as `d`).
json() {
    python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

# interleaved RUNS FN [ARGS...]: calls `FN ARGS... PATH RUN` for RUN in
# 1..RUNS and, within each run, every PATH of PATHS in order, so that drift
# in the machine's load spreads over all paths alike.
interleaved() {
    local runs=$1 fn=$2 run p
    shift 2
    for run in $(seq "$runs"); do
        for p in "${PATHS[@]}"; do
            "$fn" "$@" "$p" "$run"
        done
    done
}

# record FIELD...: appends one tab-separated row to RESULTS (for the medians).
record() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$RESULTS"
}

# ---------------------------------------------------------------- idle memory
# Used by the idle-session measurements (benches/pg_idle.sh, benches/ssh_idle.sh)
# and ssh_recording.sh.

# rss_kib PID: the process's resident set, KiB.
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# cpu_ms PID: CPU time (ms) the process has used so far, from /proc/PID/stat.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

# established PORT: how many established TCP connections have PORT as their
# local port (a server's accepted client connections).
established() {
    ss -Htn state established "( sport = :$1 )" | wc -l
}

# settle PID: waits (up to 30 s) until PID uses under 10 ms of CPU in a
# second: the handshakes and logins behind the last connection are done.
settle() {
    local c0 c1
    for _ in $(seq 30); do
        c0=$(cpu_ms "$1")
        sleep 1
        c1=$(cpu_ms "$1")
        awk -v a="$c0" -v b="$c1" 'BEGIN { exit !(b - a < 10) }' && return 0
    done
    echo "  (pid $1 still busy after 30 s; measuring anyway)"
}

# stop_pid PID SIGNAL: sends SIGNAL, waits up to 5 s, then KILL.
stop_pid() {
    kill "-$2" "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
