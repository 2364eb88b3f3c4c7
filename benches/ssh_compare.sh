#!/usr/bin/env bash
# SSH front end benchmarks against an OpenSSH bastion (issue 6).
#
#     benches/ssh_compare.sh
#
# One run, four paths to one private OpenSSH sshd (the target):
#   direct        scp -> target sshd
#   jitgate       scp -> jitgate (terminating: TARGET@proxy) -> target sshd
#   bastion       scp -J bastion -> target sshd, the bastion a second private
#                 OpenSSH sshd forwarding the stream (the usual jump host)
#   jitgate-jump  scp -J engineer@jitgate -> target sshd: jitgate's own jump
#                 mode, the stream bridged as raw bytes under a grant
#
# Workloads: scp of a 1 GiB file from /dev/urandom (no compression effects)
# into tmpfs (/dev/shm, no disk effects) on the target, BENCH_RUNS times per path,
# interleaved, median MB/s (10^6 bytes) reported; then session setup time,
# `ssh HOST true` BENCH_SETUP_RUNS times per path, median ms. All clients and
# servers use their default algorithms (chacha20-poly1305 here); jitgate and
# the bastion both carry the bytes under two layers of encryption (jitgate
# decrypts and re-encrypts, the bastion's client encrypts twice).
#
# Needs OpenSSH (sshd, ssh, scp), python3 and curl; builds jitgate with
# `cargo build --release` (set JITGATE_BIN to use another binary). Output is
# kept in target/bench-ssh.txt. Figures go to docs/benchmarks.md.
#
# Knobs (environment): BENCH_RUNS (5), BENCH_SETUP_RUNS (10), BENCH_MIB
# (size of the file, 1024).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNS=${BENCH_RUNS:-5}
SETUP_RUNS=${BENCH_SETUP_RUNS:-10}
MIB=${BENCH_MIB:-1024}

# SUDO, apt_install_service, print_machine.
. benches/lib.sh

die() {
    echo "ssh_compare: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- tools

[ -x /usr/sbin/sshd ] || apt_install_service openssh-server
for tool in ssh scp ssh-keygen python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

if [ -n "${JITGATE_BIN:-}" ]; then
    JITGATE=$JITGATE_BIN
else
    cargo build --release --bin jitgate >&2
    JITGATE=$ROOT/target/release/jitgate
fi
[ -x "$JITGATE" ] || die "no jitgate binary at $JITGATE"

# sshd needs its privilege separation directory.
$SUDO mkdir -p /run/sshd

# ---------------------------------------------------------------- cleanup

TMP=$(mktemp -d /tmp/jitgate-sshbench-XXXXXX)
chmod 755 "$TMP"
PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
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
    rm -rf "$TMP" "${SINK:-}"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Where scp writes on the target: tmpfs when there is one.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SINK=$(mktemp -d /dev/shm/jitgate-sshbench-XXXXXX)
else
    SINK=$TMP/sink
    mkdir -p "$SINK"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port what pid
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

keygen() { # path comment
    ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
}

# ---------------------------------------------------------------- output

mkdir -p target
exec > >(tee target/bench-ssh.txt) 2>&1

print_machine
echo "openssh:   $(ssh -V 2>&1)"
echo "jitgate:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted changes in src/)')"
echo "binary:    $JITGATE (built $(date -u -r "$JITGATE" +%Y-%m-%dT%H:%M:%SZ))"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine skews absolute figures)"
echo "workload:  scp of $MIB MiB into $SINK, $RUNS runs per path; ssh HOST true, $SETUP_RUNS runs per path"
echo

# ---------------------------------------------------------------- sshds

LOGIN=$(id -un)
keygen "$TMP/engineer" engineer
keygen "$TMP/upstream" jitgate-upstream

start_sshd() { # name authorized-key-file; prints the port
    local name=$1 port
    port=$(free_port)
    mkdir -p "$TMP/$name"
    keygen "$TMP/$name/host" "$name-host"
    cp "$2" "$TMP/$name/authorized_keys"
    cat >"$TMP/$name/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $TMP/$name/host
PidFile $TMP/$name/sshd.pid
AuthorizedKeysFile $TMP/$name/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
UsePAM no
StrictModes no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel ERROR
MaxStartups 100
EOF
    /usr/sbin/sshd -D -e -f "$TMP/$name/sshd_config" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" "sshd ($name)" "${PIDS[-1]}"
    echo "$port"
}

TARGET_PORT=$(start_sshd target "$TMP/upstream.pub")
BASTION_PORT=$(start_sshd bastion "$TMP/engineer.pub")

# ---------------------------------------------------------------- jitgate

ADMIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
USER_TOKEN=jgt_bench_$(python3 -c 'import secrets; print(secrets.token_hex(16))')
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
mkdir -p "$TMP/jitgate"
cat >"$TMP/jitgate/jitgate.toml" <<EOF
[server]
data_dir = "$TMP/jitgate/data"
instance = "bench"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[listeners.ssh]
listen = "127.0.0.1:$PROXY_PORT"

[[users]]
name = "engineer"
token_sha256 = "$(sha "$USER_TOKEN")"
ssh_keys = ["$(cat "$TMP/engineer.pub")"]

[[targets]]
name = "bench-host"
kind = "ssh"
address = "127.0.0.1:$TARGET_PORT"
host_key = "$(cat "$TMP/target/host.pub")"
upstream = { user = "$LOGIN", key_file = "$TMP/upstream" }

[[policies]]
name = "bench"
requesters = ["engineer"]
targets = ["bench-host"]
approvals_required = 0
max_duration = "2h"
EOF
RUST_LOG=warn "$JITGATE" serve --config "$TMP/jitgate/jitgate.toml" >"$TMP/jitgate.log" 2>&1 &
PIDS+=($!)
JITGATE_PID=${PIDS[-1]}
for i in $(seq 300); do
    kill -0 "$JITGATE_PID" 2>/dev/null || die "jitgate exited during startup"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz" || true)
    [ "$code" = 200 ] && break
    [ "$i" -eq 300 ] && die "jitgate not ready within 30 s (last /readyz: $code)"
    sleep 0.1
done
curl -sS --fail-with-body -X POST -H "Authorization: Bearer $USER_TOKEN" \
    -H 'Content-Type: application/json' \
    --data '{"target":"bench-host","duration":"2h","reason":"bench"}' \
    "http://127.0.0.1:$ADMIN_PORT/v1/requests" >"$TMP/grant.json"
grep -q '"state":"active"' "$TMP/grant.json" || die "no active grant: $(cat "$TMP/grant.json")"

# ---------------------------------------------------------------- clients

# Host-specific blocks first: ssh takes the first value it finds.
cat >"$TMP/ssh_config" <<EOF
Host target
  HostName 127.0.0.1
  Port $TARGET_PORT
  User $LOGIN
  IdentityFile $TMP/upstream

Host bastion
  HostName 127.0.0.1
  Port $BASTION_PORT
  User $LOGIN
  IdentityFile $TMP/engineer

Host jitgate
  HostName 127.0.0.1
  Port $PROXY_PORT
  User bench-host
  IdentityFile $TMP/engineer

Host jitgate-jump
  HostName 127.0.0.1
  Port $PROXY_PORT
  User engineer
  IdentityFile $TMP/engineer

# The inner login of jitgate-jump names the target as jitgate knows it and
# logs in to the target's sshd with the target's key, end to end.
Host bench-host
  User $LOGIN
  IdentityFile $TMP/upstream

Host *
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ControlMaster no
  ConnectTimeout 20
EOF

declare -A HOST JUMP
HOST[direct]=target
HOST[jitgate]=jitgate
HOST[bastion]=target
JUMP[bastion]=bastion
HOST[jitgate-jump]=bench-host
JUMP[jitgate-jump]=jitgate-jump
PATHS=(direct jitgate bastion jitgate-jump)

ssh_args() { # path
    local a=(-F "$TMP/ssh_config")
    [ -n "${JUMP[$1]:-}" ] && a+=(-J "${JUMP[$1]}")
    printf '%s\n' "${a[@]}"
}

echo "== connectivity"
for p in "${PATHS[@]}"; do
    mapfile -t args < <(ssh_args "$p")
    out=$(ssh "${args[@]}" "${HOST[$p]}" 'echo "$(id -un)@$(hostname)"' 2>&1) ||
        die "ssh through $p failed: $out"
    printf '%-13s ok (%s)\n' "$p" "$out"
done
echo

head -c "$((MIB * 1048576))" /dev/urandom >"$TMP/payload.bin"

# Wall clock in ms from bash itself (a python3 start costs ~50-300 ms here).
now_ms() { echo "${EPOCHREALTIME/./}" | awk '{ printf "%.3f", $1 / 1000 }'; }

RESULTS=$TMP/results.tsv
: >"$RESULTS"
echo "== scp of $MIB MiB, $RUNS runs per path, interleaved"
for run in $(seq "$RUNS"); do
    for p in "${PATHS[@]}"; do
        mapfile -t args < <(ssh_args "$p")
        t0=$(now_ms)
        scp -q "${args[@]}" "$TMP/payload.bin" "${HOST[$p]}:$SINK/payload.bin" ||
            die "scp through $p failed"
        t1=$(now_ms)
        rm -f "$SINK/payload.bin"
        mbs=$(awk -v m="$MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", m * 1048576 / 1e6 / ((b - a) / 1000) }')
        printf 'scp\t%s\t%s\t%s\n' "$p" "$run" "$mbs" >>"$RESULTS"
        printf '  scp    %-13s run %s  %8s MB/s\n' "$p" "$run" "$mbs"
    done
done
echo

echo "== session setup: ssh HOST true, $SETUP_RUNS runs per path, interleaved"
for run in $(seq "$SETUP_RUNS"); do
    for p in "${PATHS[@]}"; do
        mapfile -t args < <(ssh_args "$p")
        t0=$(now_ms)
        ssh "${args[@]}" "${HOST[$p]}" true || die "ssh through $p failed"
        t1=$(now_ms)
        ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
        printf 'setup\t%s\t%s\t%s\n' "$p" "$run" "$ms" >>"$RESULTS"
    done
done
echo

python3 - "$RESULTS" "$MIB" "$RUNS" "$SETUP_RUNS" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
v = defaultdict(list)
for kind, path, _run, x in rows:
    v[kind, path].append(float(x))
med = lambda k, p: statistics.median(v[k, p])
paths = ["direct", "jitgate", "bastion", "jitgate-jump"]
print(f"== medians (scp of {sys.argv[2]} MiB into tmpfs, {sys.argv[3]} runs; ssh HOST true, {sys.argv[4]} runs)")
print()
print("| path | scp MB/s | scp vs bastion | scp vs direct | setup ms |")
print("| --- | ---: | ---: | ---: | ---: |")
for p in paths:
    s, b, d = med("scp", p), med("scp", "bastion"), med("scp", "direct")
    print(f"| {p} | {s:.1f} | {s / b:.2f}x | {s / d:.2f}x | {med('setup', p):.0f} |")
print()
jb = med("scp", "jitgate") / med("scp", "bastion")
print(f"goal: jitgate >= 1.0x the OpenSSH bastion's scp throughput: {jb:.2f}x "
      + ("(met)" if jb >= 1.0 else "(missed)"))
EOF
