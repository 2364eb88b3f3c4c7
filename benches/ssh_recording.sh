# shellcheck shell=bash
# ssh_compare.sh's BENCH_RECORDING=1 part (sourced, not run): recording off
# vs `ssh = "full"`, interleaved in one run (see ssh_compare.sh's header).
# Uses its ssh_args, HOST, PATHS (off rec), scp_run, now_ms and record.

# idle_run PATH RUN: IDLE pty sessions held open through PATH; the daemon's
# RSS growth per session (KiB) goes to MEM.
idle_run() {
    local p=$1 run=$2 pid args i rss0 rss1 ready deadline kib
    local -a clients=()
    if [ "$p" = rec ]; then pid=$REC_PID; else pid=$OFF_PID; fi
    mapfile -t args < <(ssh_args "$p")
    rm -rf "$TMP/idle" && mkdir -p "$TMP/idle"
    rss0=$(rss_kib "$pid")
    for i in $(seq "$IDLE"); do
        ssh -tt "${args[@]}" "${HOST[$p]}" 'echo ready; exec sleep 600' \
            </dev/null >"$TMP/idle/$i.out" 2>&1 &
        clients+=($!)
        sleep 0.02
    done
    deadline=$((SECONDS + 120))
    while :; do
        ready=$(cat "$TMP/idle/"*.out 2>/dev/null | grep -c ready || true)
        [ "$ready" -ge "$IDLE" ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "only $ready of $IDLE idle sessions through $p came up"
        sleep 0.2
    done
    sleep 2
    rss1=$(rss_kib "$pid")
    kill "${clients[@]}" 2>/dev/null || true
    for i in "${clients[@]}"; do wait "$i" 2>/dev/null || true; done
    # Let the daemon end and seal the sessions before the next round.
    sleep 3
    kib=$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE" 'BEGIN { printf "%.1f", (b - a) / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$run" "$rss0" "$rss1" "$IDLE" "$kib" >>"$MEM"
    printf '  idle   %-4s run %s  RSS %s -> %s KiB, %s KiB per session\n' "$p" "$run" "$rss0" "$rss1" "$kib"
}

# legacy_run PATH RUN: scp -O download (exec channel, output recorded).
legacy_run() {
    local p=$1 run=$2 args t0 t1 mbs
    mapfile -t args < <(ssh_args "$p")
    t0=$(now_ms)
    # Recorded, its output may outrun the writer on a loaded machine: the
    # queue fills and `refuse` ends the session. Counted, not fatal.
    if ! scp -O -q "${args[@]}" "${HOST[$p]}:$SINK/legacy.bin" "$SINK/legacy-got.bin"; then
        echo "  scp -O $p run $run: ended (see the line above)"
        LEGACY_ENDED=$((LEGACY_ENDED + 1))
        rm -f "$SINK/legacy-got.bin"
        return 0
    fi
    t1=$(now_ms)
    cmp -s "$SINK/legacy.bin" "$SINK/legacy-got.bin" || die "scp -O through $p: the copy differs"
    rm -f "$SINK/legacy-got.bin"
    mbs=$(awk -v m="$LEGACY_MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", m * 1048576 / 1e6 / ((b - a) / 1000) }')
    record scp-legacy "$p" "$run" "$mbs"
    printf '  scp -O %-4s run %s  %8s MB/s\n' "$p" "$run" "$mbs"
}

# A line of 80 columns with its CR LF, as a terminal gets it.
PTY_LINE=$(printf 'build: compiling module %-55s' 'src/some/path/file.rs ...')

# pty_run PATH RUN: LINES lines printed through a pty, thousands per second.
pty_run() {
    local p=$1 run=$2 args t0 t1 got rate
    mapfile -t args < <(ssh_args "$p")
    t0=$(now_ms)
    got=$(ssh -tt "${args[@]}" "${HOST[$p]}" "yes '$PTY_LINE' | head -n $LINES" </dev/null | wc -l) ||
        die "ssh -tt through $p failed"
    t1=$(now_ms)
    # The recording notice is one more line on the recorded path.
    [ "$got" -ge "$LINES" ] || die "pty through $p: $got of $LINES lines"
    rate=$(awk -v n="$LINES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / 1000 / ((b - a) / 1000) }')
    record pty-output "$p" "$run" "$rate"
    printf '  pty    %-4s run %s  %8s klines/s\n' "$p" "$run" "$rate"
}

# pty_session_run PATH RUN: a whole pty session, its wall time.
pty_session_run() {
    local p=$1 run=$2 args t0 t1
    mapfile -t args < <(ssh_args "$p")
    t0=$(now_ms)
    ssh -tt "${args[@]}" "${HOST[$p]}" true </dev/null >/dev/null 2>&1 || die "ssh -tt through $p failed"
    t1=$(now_ms)
    record pty-session_ms "$p" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
}

MEM=$TMP/memory.tsv
: >"$MEM"
echo "== idle pty sessions: $IDLE per path, 2 rounds (first, on fresh daemons)"
interleaved 2 idle_run
echo

echo "== scp upload of $MIB MiB, $RUNS runs per path, interleaved"
interleaved "$RUNS" scp_run
echo

LEGACY_MIB=$((MIB / 4))
LEGACY_ENDED=0
head -c "$((LEGACY_MIB * 1048576))" /dev/urandom >"$SINK/legacy.bin"
echo "== scp -O download of $LEGACY_MIB MiB, $RUNS runs per path, interleaved"
interleaved "$RUNS" legacy_run
rm -f "$SINK/legacy.bin"
echo

echo "== pty output: $LINES lines of 80 columns, $RUNS runs per path, interleaved"
interleaved "$RUNS" pty_run
echo

echo "== pty session: ssh -tt HOST true, $SETUP_RUNS runs per path, interleaved"
interleaved "$SETUP_RUNS" pty_session_run
echo

python3 "$ROOT/benches/recording_summary.py" "$RESULTS" 'SSH, ssh = "full"' \
    scp="MB/s" scp-legacy="MB/s" pty-output="klines/s" pty-session_ms="ms"
python3 - "$MEM" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
kib = {p: [float(r[5]) for r in rows if r[0] == p] for p in ("off", "rec")}
n = rows[0][4].strip() if rows else "?"
print(f"idle pty sessions ({n} per round): daemon RSS growth per session, KiB, per round")
for p in ("off", "rec"):
    print(f"  {p}: " + ", ".join(f"{x:.1f}" for x in kib[p]))
if kib["off"] and kib["rec"]:
    d = statistics.median(kib["rec"]) - statistics.median(kib["off"])
    print(f"recording's own cost per idle session (median on - median off): {d:.1f} KiB")
PY
echo "scp -O runs ended by a recording failure: $LEGACY_ENDED"
du -sh "$TMP/jitgate-rec/recordings" | sed 's/^/recordings on disk: /'
if grep -qi panicked "$TMP"/jitgate*.log; then
    echo "WARNING: a jitgate log mentions a panic"
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "done; output kept in target/bench-ssh-recording.txt"
