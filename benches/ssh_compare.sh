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
# Last, memory per idle session (issue 21): BENCH_IDLE_SSH pty sessions
# held open through jitgate and directly to the target's sshd, jitgate's
# RSS growth against the PSS growth of sshd's processes, per session
# (benches/ssh_idle.sh says how).
#
# Knobs (environment): BENCH_RUNS (5), BENCH_SETUP_RUNS (10), BENCH_MIB
# (size of the file, 1024), BENCH_IDLE_SSH (idle sessions per path, 100);
# BENCH_ONLY=idle runs only the idle-session part.
#
# BENCH_RECORDING=1 (issue 20) measures what session recording costs
# instead: two jitgate daemons in one run, the same target, one without
# `[recording]` ("off") and one with `ssh = "full"` ("rec"), interleaved:
#   scp          scp upload of BENCH_MIB (256) MiB (sftp protocol, so the
#                recorder parses each sftp packet for its file markers)
#   scp-legacy   scp -O download of BENCH_MIB/4 MiB: the legacy protocol's
#                remote end is an exec channel, its binary output recorded
#                as `o` events (the worst case `full` mode documents)
#   pty-output   ssh -tt HOST printing BENCH_LINES (200000) 80-column lines:
#                what an interactive user's terminal receives (a build log,
#                `cat`, `ls -R`), every read an `o` event
#   pty-session  ssh -tt HOST true, BENCH_SETUP_RUNS times: a session's
#                whole life (recording created, header, seal with fsync)
# then RSS per idle recorded session: BENCH_IDLE (100) `ssh -tt HOST sleep`
# sessions held open on each daemon, the daemon's RSS before and after.
# Ratios are printed by benches/recording_summary.py; benches/recording.sh
# runs this and pg_compare.sh's recording mode in one command.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

RECORDING=${BENCH_RECORDING:-0}
RUNS=${BENCH_RUNS:-5}
SETUP_RUNS=${BENCH_SETUP_RUNS:-10}
if [ "$RECORDING" = 1 ]; then
    MIB=${BENCH_MIB:-256}
else
    MIB=${BENCH_MIB:-1024}
fi
LINES=${BENCH_LINES:-200000}
IDLE=${BENCH_IDLE:-100}
IDLE_SSH=${BENCH_IDLE_SSH:-100}
ONLY=${BENCH_ONLY:-}

# SUDO, apt_install_service, print_machine and the helpers below.
. benches/lib.sh

# ---------------------------------------------------------------- tools

[ -x /usr/sbin/sshd ] || apt_install_service openssh-server
for tool in ssh scp ssh-keygen python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

build_jitgate

# sshd needs its privilege separation directory.
$SUDO mkdir -p /run/sshd

# ---------------------------------------------------------------- cleanup

with_cleanup jitgate-sshbench 755 TERM

# Where scp writes on the target: tmpfs when there is one.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SINK=$(mktemp -d /dev/shm/jitgate-sshbench-XXXXXX)
    CLEANUP_PATHS+=("$SINK")
else
    SINK=$TMP/sink
    mkdir -p "$SINK"
fi

keygen() { # path comment
    ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
}

# ---------------------------------------------------------------- output

if [ "$RECORDING" = 1 ]; then
    tee_output bench-ssh-recording.txt
else
    tee_output bench-ssh.txt
fi

print_machine
echo "openssh:   $(ssh -V 2>&1)"
print_jitgate
if [ "$RECORDING" = 1 ]; then
    echo "workload:  recording off vs ssh = \"full\": scp $MIB MiB, scp -O download $((MIB / 4)) MiB, pty $LINES lines, $RUNS runs; ssh -tt HOST true, $SETUP_RUNS runs; $IDLE idle pty sessions"
else
    echo "workload:  scp of $MIB MiB into $SINK, $RUNS runs per path; ssh HOST true, $SETUP_RUNS runs per path; $IDLE_SSH idle pty sessions per path, 2 rounds"
fi
echo

# ---------------------------------------------------------------- sshds

LOGIN=$(id -un)
keygen "$TMP/engineer" engineer
keygen "$TMP/upstream" jitgate-upstream

# start_sshd NAME AUTHORIZED-KEY-FILE VAR: starts a private sshd and sets
# VAR to its port. Not run as $(...): the pid must reach PIDS in this shell
# for cleanup to stop it.
start_sshd() {
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
    printf -v "$3" '%s' "$port"
}

start_sshd target "$TMP/upstream.pub" TARGET_PORT
start_sshd bastion "$TMP/engineer.pub" BASTION_PORT

# ---------------------------------------------------------------- jitgate

USER_TOKEN=jgt_bench_$(rand_hex 16)

# jitgate_config NAME PROXY-PORT [RECORDING-SECTION]: writes TMP/NAME/jitgate.toml.
jitgate_config() {
    mkdir -p "$TMP/$1"
    cat >"$TMP/$1/jitgate.toml" <<EOF
[server]
data_dir = "$TMP/$1/data"
instance = "bench"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[listeners.ssh]
listen = "127.0.0.1:$2"

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
${3:-}
EOF
}

# start_granted NAME PROXY-PORT [RECORDING-SECTION]: a jitgate with an
# active grant for the engineer; sets ADMIN_PORT and JITGATE_PID.
start_granted() {
    ADMIN_PORT=$(free_port)
    jitgate_config "$@"
    start_jitgate "$TMP/$1/jitgate.toml"
    api POST /v1/requests "$USER_TOKEN" '{"target":"bench-host","duration":"2h","reason":"bench"}' >"$TMP/grant.json"
    grep -q '"state":"active"' "$TMP/grant.json" || die "no active grant: $(cat "$TMP/grant.json")"
}

PROXY_PORT=$(free_port)
start_granted jitgate "$PROXY_PORT"
OFF_PID=$JITGATE_PID
if [ "$RECORDING" = 1 ]; then
    mv "$TMP/jitgate.log" "$TMP/jitgate-off.log"
    REC_PORT=$(free_port)
    start_granted jitgate-rec "$REC_PORT" "
[recording]
dir = \"$TMP/jitgate-rec/recordings\"
ssh = \"full\"
postgres = \"off\""
    REC_PID=$JITGATE_PID
fi

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

Host jitgate-rec
  HostName 127.0.0.1
  Port ${REC_PORT:-$PROXY_PORT}
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
if [ "$RECORDING" = 1 ]; then
    # Paths named as the summary wants them: off and rec.
    HOST[off]=jitgate
    HOST[rec]=jitgate-rec
    PATHS=(off rec)
fi

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

# scp_run PATH RUN: one scp of the payload into the sink, recorded.
scp_run() {
    local p=$1 run=$2 args t0 t1 mbs
    mapfile -t args < <(ssh_args "$p")
    t0=$(now_ms)
    scp -q "${args[@]}" "$TMP/payload.bin" "${HOST[$p]}:$SINK/payload.bin" ||
        die "scp through $p failed"
    t1=$(now_ms)
    rm -f "$SINK/payload.bin"
    mbs=$(awk -v m="$MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", m * 1048576 / 1e6 / ((b - a) / 1000) }')
    record scp "$p" "$run" "$mbs"
    printf '  scp    %-13s run %s  %8s MB/s\n' "$p" "$run" "$mbs"
}

# setup_run PATH RUN: one `ssh HOST true`, its wall time recorded.
setup_run() {
    local p=$1 run=$2 args t0 t1 ms
    mapfile -t args < <(ssh_args "$p")
    t0=$(now_ms)
    ssh "${args[@]}" "${HOST[$p]}" true || die "ssh through $p failed"
    t1=$(now_ms)
    ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    record setup "$p" "$run" "$ms"
}

RESULTS=$TMP/results.tsv
: >"$RESULTS"
if [ "$RECORDING" = 1 ]; then
    . benches/ssh_recording.sh
    exit 0
fi
if [ "$ONLY" = idle ]; then
    . benches/ssh_idle.sh
    echo "done; output kept in target/bench-ssh.txt"
    exit 0
fi
echo "== scp of $MIB MiB, $RUNS runs per path, interleaved"
interleaved "$RUNS" scp_run
echo

echo "== session setup: ssh HOST true, $SETUP_RUNS runs per path, interleaved"
interleaved "$SETUP_RUNS" setup_run
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
echo

. benches/ssh_idle.sh
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "done; output kept in target/bench-ssh.txt"
