# shellcheck shell=bash
# pg_compare.sh's idle-session part (sourced, not run; issue 21): what one
# idle client session costs the proxy in memory, jitgate against pgbouncer,
# both terminating the client's TLS (sslmode=require) and logging in with
# SCRAM as the rest of the script.
#
# The client is pgbench itself: `pgbench -n -c IDLE -j 2 -T 600 -f FILE`
# opens all IDLE connections before it runs FILE, then holds them open.
# Two files:
#   idle          only `\sleep 600 s`: the client logs in and never sends
#                 a query (pgbouncer in session mode has not yet given
#                 the client a server connection; jitgate has logged in
#                 upstream while admitting the session)
#   after-select  `SELECT 1;` then `\sleep 600 s`: one query first, so
#                 pgbouncer too holds a server connection per client
# Each round runs on a freshly started proxy (a memory allocator keeps what
# the previous round freed, and would hand it out again unseen), warmed by
# one psql session; then the proxy's RSS (VmRSS) before, IDLE sessions
# opened, waited for (IDLE established client connections, per ss), the
# proxy's CPU quiet for a second, RSS after: KiB per idle session =
# (after - before) / IDLE. Two rounds per file, the proxies interleaved.
# The backends of user bench in pg_stat_activity while the sessions are
# open say how many server connections each proxy holds (pgbouncer's count
# includes the warm-up's, kept in its pool).
#
# Uses pg_compare.sh's TMP, PGBIN, PG_PORT, su_sql, start_granted,
# PGBOUNCER, AS_USER, BENCH_PASSWORD, JITGATE_PID, BOUNCER_PID and IDLE.

IDLE_MEM=$TMP/idle.tsv
: >"$IDLE_MEM"
printf '%s\n' '\sleep 600 s' >"$TMP/idle-idle.sql"
printf '%s\n' 'SELECT 1;' '\sleep 600 s' >"$TMP/idle-after-select.sql"

# bench_backends: client backends of user bench in pg_stat_activity.
bench_backends() {
    su_sql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bench' AND backend_type = 'client backend'"
}

# wait_no_backends: up to 60 s for every bench backend to leave.
wait_no_backends() {
    local n
    for _ in $(seq 600); do
        n=$(bench_backends)
        [ "$n" = 0 ] && return 0
        sleep 0.1
    done
    die "$n backends of user bench still there 60 s after their proxy stopped"
}

# idle_pg_run FILE PATH RUN: IDLE idle sessions through a fresh PATH
# (jitgate or pgbouncer), one row in IDLE_MEM.
idle_pg_run() {
    local file=$1 p=$2 run=$3 port pid conn pw rss0 rss1 b0 b1 est client deadline kib
    port=$(free_port)
    if [ "$p" = jitgate ]; then
        start_granted "jitgate-idle-$file-$run" "$port"
        pid=$JITGATE_PID
        conn="host=127.0.0.1 port=$port user=engineer@bench-db dbname=bench sslmode=require"
        pw=$SECRET
    else
        # Room for every client, and a server connection for each once it
        # sends a query (session pooling).
        sed -e "s/^listen_port = .*/listen_port = $port/" \
            -e "s/^max_client_conn = .*/max_client_conn = $((IDLE + 100))/" \
            -e "s/^default_pool_size = .*/default_pool_size = $((IDLE + 10))/" \
            "$TMP/bouncer/pgbouncer.ini" >"$TMP/bouncer/idle.ini"
        "${AS_USER[@]}" "$PGBOUNCER" "$TMP/bouncer/idle.ini" >>"$TMP/pgbouncer-idle.log" 2>&1 &
        PIDS+=($!)
        pid=$!
        wait_port "$port" pgbouncer "$pid"
        conn="host=127.0.0.1 port=$port user=bench dbname=bench sslmode=require"
        pw=$BENCH_PASSWORD
    fi
    # Warm-up: the first session's one-time costs are not a session's.
    PGPASSWORD=$pw PGCONNECT_TIMEOUT=10 psql "$conn" -X -A -t -q -c 'SELECT 1' >/dev/null ||
        die "psql through a fresh $p failed"
    sleep 1
    settle "$pid"
    b0=$(bench_backends)
    rss0=$(rss_kib "$pid")

    PGPASSWORD=$pw "$PGBIN/pgbench" -n -c "$IDLE" -j 2 -T 600 -f "$TMP/idle-$file.sql" "$conn" \
        >"$TMP/idle-pgbench.out" 2>&1 &
    PIDS+=($!)
    client=$!
    deadline=$((SECONDS + 300))
    while :; do
        est=$(established "$port")
        [ "$est" -ge "$IDLE" ] && break
        if ! kill -0 "$client" 2>/dev/null; then
            cat "$TMP/idle-pgbench.out"
            die "pgbench ($IDLE idle sessions through $p) ended with $est connected"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "only $est of $IDLE idle sessions through $p after 300 s"
        sleep 0.5
    done
    settle "$pid"
    rss1=$(rss_kib "$pid")
    b1=$(bench_backends)
    est=$(established "$port")
    kill -0 "$client" 2>/dev/null || die "pgbench through $p ended early: $(cat "$TMP/idle-pgbench.out")"

    stop_pid "$client" INT
    stop_pid "$pid" TERM
    [ "$p" = jitgate ] && mv "$TMP/jitgate.log" "$TMP/jitgate-idle-$file-$run.log"
    wait_no_backends
    kib=$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE" 'BEGIN { printf "%.2f", (b - a) / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$file" "$p" "$run" "$rss0" "$rss1" "$kib" "$est" "$b1" >>"$IDLE_MEM"
    printf '  %-12s %-9s run %s  RSS %7s -> %7s KiB  %6s KiB/session  clients %s  backends %s -> %s\n' \
        "$file" "$p" "$run" "$rss0" "$rss1" "$kib" "$est" "$b0" "$b1"
}

echo "== idle sessions: $IDLE per proxy and round (pgbench -c $IDLE -j 2, TLS), fresh proxies, 2 rounds interleaved"
# The proxies of the runs above are done: stopped, their pooled server
# connections go, and the counts below start from none.
mv "$TMP/jitgate.log" "$TMP/jitgate-main.log"
stop_pid "$BOUNCER_PID" TERM
stop_pid "$JITGATE_PID" TERM
wait_no_backends
# shellcheck disable=SC2034 # interleaved's paths
PATHS=(jitgate pgbouncer)
for f in idle after-select; do
    interleaved 2 idle_pg_run "$f"
done
echo

python3 - "$IDLE_MEM" "$IDLE" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"== KiB per idle session (RSS delta of the proxy / {sys.argv[2]}, median of rounds)")
print()
print("| client | jitgate | pgbouncer | jitgate/pgbouncer | rounds: jitgate; pgbouncer | backends open: jitgate; pgbouncer |")
print("| --- | ---: | ---: | ---: | --- | --- |")
for f in ("idle", "after-select"):
    kib = {p: [float(r[5]) for r in rows if r[0] == f and r[1] == p] for p in ("jitgate", "pgbouncer")}
    held = {p: ", ".join(r[7] for r in rows if r[0] == f and r[1] == p) for p in ("jitgate", "pgbouncer")}
    if not kib["jitgate"] or not kib["pgbouncer"]:
        continue
    j, b = statistics.median(kib["jitgate"]), statistics.median(kib["pgbouncer"])
    runs = lambda p: ", ".join(f"{x:.2f}" for x in kib[p])
    print(f"| {f} | {j:.2f} | {b:.2f} | {j / b:.2f}x | {runs('jitgate')}; {runs('pgbouncer')} "
          f"| {held['jitgate']}; {held['pgbouncer']} |")
print()
EOF
