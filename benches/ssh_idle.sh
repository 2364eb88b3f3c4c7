# shellcheck shell=bash
# ssh_compare.sh's idle-session part (sourced, not run; issue 21): what one
# idle SSH session costs jitgate in memory, against what it costs an
# OpenSSH sshd.
#
# IDLE_SSH pty sessions, `ssh -tt HOST 'echo ready; exec sleep 600'`, held
# open through jitgate (terminating: TARGET@proxy) and directly to the
# private target sshd, the two interleaved, 2 rounds:
#   jitgate  a freshly started daemon per round (an allocator keeps what a
#            previous round freed and would hand it out again unseen),
#            warmed by one `ssh HOST true`; its RSS (VmRSS) before and after
#            the sessions are up and its CPU quiet for a second, / IDLE_SSH
#   sshd     the target's sshd: the summed PSS (/proc/PID/smaps_rollup) of
#            its processes, the listener and every sshd process below it
#            (per connection, a privileged monitor and the user's
#            unprivileged child), before and after, / IDLE_SSH. PSS, not
#            RSS: the forked processes share most of their pages, and PSS
#            splits each shared page between its sharers, so the sum is
#            what the processes take together. The sessions' `sleep` is the
#            user's program, not sshd's, and is not counted.
# In the jitgate rounds the target's sshd serves jitgate's upstream
# sessions: its PSS growth then is what the target spends behind jitgate,
# for context.
#
# Uses ssh_compare.sh's TMP, PIDS, start_granted, HOST, TARGET_PORT and
# IDLE_SSH.

IDLE_MEM=$TMP/idle.tsv
: >"$IDLE_MEM"
TARGET_SSHD=$(cat "$TMP/target/sshd.pid")

# sshd_pss ROOT-PID: "KIB PROCESSES": the summed PSS of ROOT-PID and of
# every process named sshd* below it.
sshd_pss() {
    python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
kids, comm = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        stat = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    end = stat.rindex(")")
    comm[int(d)] = stat[stat.index("(") + 1:end]
    kids.setdefault(int(stat[end + 2:].split()[1]), []).append(int(d))
tree, i = [root], 0
while i < len(tree):
    tree += kids.get(tree[i], [])
    i += 1
kib = n = 0
for pid in tree:
    if pid != root and not comm.get(pid, "").startswith("sshd"):
        continue
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                kib += int(line.split()[1])
                n += 1
    except OSError:
        pass
print(kib, n)
EOF
}

# per_session BEFORE AFTER: (AFTER - BEFORE) / IDLE_SSH, two decimals.
per_session() { awk -v a="$1" -v b="$2" -v n="$IDLE_SSH" 'BEGIN { printf "%.2f", (b - a) / n }'; }

# idle_ssh_run PATH RUN: IDLE_SSH pty sessions through PATH (jitgate or
# direct), one row in IDLE_MEM.
idle_ssh_run() {
    local p=$1 run=$2 port="" pid="" i ready deadline rss0=0 rss1=0 pss0 pss1 n0 n1 left est="-"
    local -a args=(-F "$TMP/ssh_config") clients=()
    if [ "$p" = jitgate ]; then
        port=$(free_port)
        start_granted "jitgate-idle-$run" "$port"
        pid=$JITGATE_PID
        # The command line's port wins over the config's.
        args+=(-p "$port")
        ssh "${args[@]}" "${HOST[$p]}" true </dev/null >/dev/null 2>&1 ||
            die "ssh through a fresh jitgate failed"
        sleep 1
        settle "$pid"
        rss0=$(rss_kib "$pid")
    fi
    read -r pss0 n0 < <(sshd_pss "$TARGET_SSHD")
    rm -rf "$TMP/idle" && mkdir -p "$TMP/idle"
    for i in $(seq "$IDLE_SSH"); do
        ssh -tt "${args[@]}" "${HOST[$p]}" 'echo ready; exec sleep 600' \
            </dev/null >"$TMP/idle/$i.out" 2>&1 &
        PIDS+=($!)
        clients+=($!)
        sleep 0.02
    done
    deadline=$((SECONDS + 180))
    while :; do
        ready=$(cat "$TMP/idle/"*.out 2>/dev/null | grep -c ready || true)
        [ "$ready" -ge "$IDLE_SSH" ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "only $ready of $IDLE_SSH idle sessions through $p came up in 180 s"
        sleep 0.2
    done
    if [ -n "$pid" ]; then
        settle "$pid"
        rss1=$(rss_kib "$pid")
        est=$(established "$port")
    else
        sleep 2
    fi
    read -r pss1 n1 < <(sshd_pss "$TARGET_SSHD")

    kill "${clients[@]}" 2>/dev/null || true
    for i in "${clients[@]}"; do wait "$i" 2>/dev/null || true; done
    if [ -n "$pid" ]; then
        stop_pid "$pid" TERM
        mv "$TMP/jitgate.log" "$TMP/jitgate-idle-$run.log"
    fi
    # Every session's sshd processes gone before the next round.
    deadline=$((SECONDS + 60))
    while read -r _ left < <(sshd_pss "$TARGET_SSHD") && [ "$left" -gt "$n0" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "the target's sshd still has $left processes (before: $n0) 60 s after the sessions ended"
        sleep 0.5
    done

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$run" "$rss0" "$rss1" "$pss0" "$pss1" "$n0" "$n1" >>"$IDLE_MEM"
    if [ -n "$pid" ]; then
        printf '  jitgate run %s  RSS %7s -> %7s KiB  %6s KiB/session  clients %s;  target sshd PSS %7s -> %7s KiB (%s -> %s processes)  %6s KiB/session\n' \
            "$run" "$rss0" "$rss1" "$(per_session "$rss0" "$rss1")" "$est" "$pss0" "$pss1" "$n0" "$n1" "$(per_session "$pss0" "$pss1")"
    else
        printf '  direct  run %s  sshd PSS %7s -> %7s KiB (%s -> %s processes)  %6s KiB/session\n' \
            "$run" "$pss0" "$pss1" "$n0" "$n1" "$(per_session "$pss0" "$pss1")"
    fi
}

echo "== idle pty sessions: $IDLE_SSH per path and round, fresh jitgate per round, 2 rounds interleaved"
# shellcheck disable=SC2034 # interleaved's paths
PATHS=(jitgate direct)
interleaved 2 idle_ssh_run
echo

python3 - "$IDLE_MEM" "$IDLE_SSH" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
jit = [(int(r[3]) - int(r[2])) / n for r in rows if r[0] == "jitgate"]
behind = [(int(r[5]) - int(r[4])) / n for r in rows if r[0] == "jitgate"]
sshd = [(int(r[5]) - int(r[4])) / n for r in rows if r[0] == "direct"]
procs = [(int(r[7]) - int(r[6])) / n for r in rows if r[0] == "direct"]
runs = lambda v: ", ".join(f"{x:.2f}" for x in v)
j, s = statistics.median(jit), statistics.median(sshd)
print(f"== KiB per idle pty session ({n} sessions, median of rounds)")
print()
print("| measure | jitgate (RSS delta) | sshd (PSS delta) | jitgate/sshd | rounds: jitgate; sshd |")
print("| --- | ---: | ---: | ---: | --- |")
print(f"| idle pty session | {j:.2f} | {s:.2f} | {j / s:.2f}x | {runs(jit)}; {runs(sshd)} |")
print()
print(f"sshd processes per direct session: {runs(procs)}")
print(f"the target's sshd behind jitgate (PSS delta per session): {runs(behind)} KiB")
print()
EOF
