#!/usr/bin/env bash
# PostgreSQL front end benchmarks against pgbouncer (issue 5).
#
#     benches/pg_compare.sh
#
# One run, three paths (and a reference) to one private PostgreSQL cluster:
#   direct     pgbench -> postgres                 plain TCP (sslmode=disable)
#   jitgate    pgbench -> jitgate (TLS) -> postgres  (sslmode=require)
#   pgbouncer  pgbench -> pgbouncer, session pooling (TLS) -> postgres
#   direct-tls pgbench -> postgres with TLS (sslmode=require): the reference
#              for what TLS alone costs on this machine
#
# Workloads: pgbench -S in simple and extended query mode, and -S -C (a new
# connection per transaction), each run BENCH_RUNS times per path,
# interleaved, median TPS reported. Then termination latency: a running
# `SELECT pg_sleep(600)` through jitgate, its grant revoked; time to the
# FATAL at the client and to the backend leaving pg_stat_activity.
# Last, memory per idle session (issue 21): BENCH_IDLE idle client sessions
# held open through jitgate and through pgbouncer, the proxy's RSS growth
# per session (benches/pg_idle.sh says how).
#
# Installs pgbouncer with apt-get when it is missing; builds jitgate with
# `cargo build --release` (set JITGATE_BIN to use another binary). Output is
# kept in target/bench-pg.txt. Figures go to docs/benchmarks.md.
#
# Knobs (environment): BENCH_T (seconds per -S run, 15), BENCH_T_CONNECT
# (seconds per -C run, 10), BENCH_CLIENTS (8), BENCH_THREADS (2),
# BENCH_RUNS (3), BENCH_SCALE (10), BENCH_TRIALS (termination, 10),
# BENCH_WORKLOADS (e.g. "connect-simple": only those pgbench workloads),
# BENCH_ONLY=pgbench (only the pgbench part, no termination or idle runs),
# BENCH_IDLE (idle sessions per proxy, 500); BENCH_ONLY=idle runs only the
# idle-session part.
#
# BENCH_RECORDING=1 (issue 20) measures what statement recording costs
# instead: a second jitgate with `[recording] postgres = "statements"`
# ("rec") beside the one without ("off"), pgbench -S simple and extended
# through each, interleaved, BENCH_T (10) seconds a run (short: the machine
# is shared, so interleaving matters more than length); no pgbouncer runs,
# no termination. Ratios by benches/recording_summary.py.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

RECORDING=${BENCH_RECORDING:-0}
if [ "$RECORDING" = 1 ]; then T=${BENCH_T:-10}; else T=${BENCH_T:-15}; fi
T_CONNECT=${BENCH_T_CONNECT:-10}
CLIENTS=${BENCH_CLIENTS:-8}
THREADS=${BENCH_THREADS:-2}
RUNS=${BENCH_RUNS:-3}
SCALE=${BENCH_SCALE:-10}
TRIALS=${BENCH_TRIALS:-10}
IDLE=${BENCH_IDLE:-500}
ONLY=${BENCH_ONLY:-}

# SUDO, apt_install_service, print_machine and the helpers below.
. benches/lib.sh

# ---------------------------------------------------------------- tools

pgbouncer_bin() {
    if [ -x /usr/sbin/pgbouncer ]; then
        echo /usr/sbin/pgbouncer
    else
        command -v pgbouncer || true
    fi
}

if [ -z "$(pgbouncer_bin)" ]; then
    apt_install_service pgbouncer
fi
PGBOUNCER=$(pgbouncer_bin)
[ -n "$PGBOUNCER" ] || die "pgbouncer is still missing after apt-get install"

PGBIN=""
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && PGBIN=$d
done
[ -n "$PGBIN" ] || die "PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin"
for tool in psql curl python3 openssl setpriv; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

build_jitgate

# postgres and pgbouncer refuse to run as root.
drop_privileges

# ---------------------------------------------------------------- cleanup

# postgres and pgbouncer (another user when run as root) must traverse TMP.
with_cleanup jitgate-pgbench 711 INT

# ---------------------------------------------------------------- output

if [ "$RECORDING" = 1 ]; then
    tee_output bench-pg-recording.txt
else
    tee_output bench-pg.txt
fi

print_machine
echo "postgres:  $("$PGBIN/postgres" --version)"
echo "pgbench:   $("$PGBIN/pgbench" --version)"
echo "pgbouncer: $("$PGBOUNCER" --version 2>&1 | head -n1)"
print_jitgate
echo "workload:  -c $CLIENTS -j $THREADS, -T $T (-S) / -T $T_CONNECT (-C), $RUNS runs per path, scale $SCALE; $IDLE idle sessions per proxy, 2 rounds"
echo

# ---------------------------------------------------------------- postgres

# One self-signed certificate for pgbouncer's client side and the direct-tls
# reference (jitgate makes its own); ECDSA P-256 like jitgate's.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" \
    >"$TMP/openssl.log" 2>&1 || die "openssl: $(cat "$TMP/openssl.log")"
chmod 600 "$TMP/tls/key.pem"
chown -R "$RUN_USER:" "$TMP/tls"

PG_PORT=$(free_port)
SU_PASSWORD=su$(rand_hex 12)
BENCH_PASSWORD=bench$(rand_hex 12)
mkdir -p "$TMP/pg"
printf '%s' "$SU_PASSWORD" >"$TMP/pg/pw"
chown -R "$RUN_USER:" "$TMP/pg"
"${AS_USER[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres --auth=scram-sha-256 \
    --pwfile "$TMP/pg/pw" -E UTF8 --no-sync >"$TMP/initdb.log" 2>&1 ||
    die "initdb failed: $(cat "$TMP/initdb.log")"
rm -f "$TMP/pg/pw"
"${AS_USER[@]}" "$PGBIN/postgres" -D "$TMP/pg/data" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c "unix_socket_directories=$TMP/pg" \
    -c fsync=off -c max_connections=$((IDLE > 100 ? IDLE + 100 : 200)) -c shared_buffers=256MB \
    -c ssl=on -c "ssl_cert_file=$TMP/tls/cert.pem" -c "ssl_key_file=$TMP/tls/key.pem" \
    -c password_encryption=scram-sha-256 >"$TMP/postgres.log" 2>&1 &
PIDS+=($!)
wait_port "$PG_PORT" postgres "${PIDS[-1]}"
for _ in $(seq 100); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.1
done

su_sql() {
    PGPASSWORD=$SU_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}
su_sql "CREATE ROLE bench LOGIN PASSWORD '$BENCH_PASSWORD'"
su_sql "CREATE DATABASE bench OWNER bench"

# ---------------------------------------------------------------- pgbouncer

BOUNCER_PORT=$(free_port)
mkdir -p "$TMP/bouncer"
# The SCRAM verifier, as stored by postgres: pgbouncer authenticates the
# client with it and reuses the client's proof to log in upstream.
VERIFIER=$(su_sql "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'")
printf '"bench" "%s"\n' "$VERIFIER" >"$TMP/bouncer/userlist.txt"
cat >"$TMP/bouncer/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/bouncer/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 100
client_tls_sslmode = require
client_tls_key_file = $TMP/tls/key.pem
client_tls_cert_file = $TMP/tls/cert.pem
server_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
EOF
chown -R "$RUN_USER:" "$TMP/bouncer"
chmod 600 "$TMP/bouncer/userlist.txt"
"${AS_USER[@]}" "$PGBOUNCER" "$TMP/bouncer/pgbouncer.ini" >"$TMP/pgbouncer.log" 2>&1 &
PIDS+=($!)
BOUNCER_PID=${PIDS[-1]}
wait_port "$BOUNCER_PORT" pgbouncer "$BOUNCER_PID"

# ---------------------------------------------------------------- jitgate

USER_TOKEN=jgt_bench_$(rand_hex 16)
ADMIN_TOKEN=jgt_bench_admin_$(rand_hex 16)

# start_granted NAME PROXY-PORT [RECORDING-SECTION]: a jitgate (config in
# TMP/NAME) and a grant with its secret; sets ADMIN_PORT, JITGATE_PID, SECRET.
start_granted() {
    ADMIN_PORT=$(free_port)
    mkdir -p "$TMP/$1"
    cat >"$TMP/$1/jitgate.toml" <<EOF
[server]
data_dir = "$TMP/$1/data"
instance = "bench"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[listeners.postgres]
listen = "127.0.0.1:$2"

[[users]]
name = "engineer"
token_sha256 = "$(sha "$USER_TOKEN")"

[[users]]
name = "root"
token_sha256 = "$(sha "$ADMIN_TOKEN")"
admin = true

[[targets]]
name = "bench-db"
kind = "postgres"
address = "127.0.0.1:$PG_PORT"
upstream = { user = "bench", password_env = "BENCH_PG_PASSWORD", tls = "disable" }

[[policies]]
name = "bench"
requesters = ["engineer"]
targets = ["bench-db"]
approvals_required = 0
max_duration = "1h"
${3:-}
EOF
    # A prefix assignment, not an argument: the password stays out of argv.
    BENCH_PG_PASSWORD=$BENCH_PASSWORD start_jitgate "$TMP/$1/jitgate.toml"

    GRANT=$(api POST /v1/requests "$USER_TOKEN" '{"target":"bench-db","duration":"1h","reason":"bench"}' |
        json 'd["grant"]["id"]')
    SECRET=$(api POST "/v1/grants/$GRANT/secret" "$USER_TOKEN" | json 'd["secret"]')
}

PROXY_PORT=$(free_port)
start_granted jitgate "$PROXY_PORT"
if [ "$RECORDING" = 1 ]; then
    OFF_PID=$JITGATE_PID
    OFF_SECRET=$SECRET
    mv "$TMP/jitgate.log" "$TMP/jitgate-off.log"
    REC_PORT=$(free_port)
    start_granted jitgate-rec "$REC_PORT" "
[recording]
dir = \"$TMP/jitgate-rec/recordings\"
ssh = \"off\"
postgres = \"statements\""
    REC_PID=$JITGATE_PID
fi

# ---------------------------------------------------------------- paths

# 127.0.0.1 rather than localhost: no failed ::1 attempt in the -C runs.
declare -A CONN PASS
CONN[direct]="host=127.0.0.1 port=$PG_PORT user=bench dbname=bench sslmode=disable"
PASS[direct]=$BENCH_PASSWORD
CONN[jitgate]="host=127.0.0.1 port=$PROXY_PORT user=engineer@bench-db dbname=bench sslmode=require"
PASS[jitgate]=$SECRET
CONN[pgbouncer]="host=127.0.0.1 port=$BOUNCER_PORT user=bench dbname=bench sslmode=require"
PASS[pgbouncer]=$BENCH_PASSWORD
CONN[direct-tls]="host=127.0.0.1 port=$PG_PORT user=bench dbname=bench sslmode=require"
PASS[direct-tls]=$BENCH_PASSWORD
PATHS=(direct jitgate pgbouncer direct-tls)
if [ "$RECORDING" = 1 ]; then
    CONN[off]=${CONN[jitgate]}
    PASS[off]=$OFF_SECRET
    CONN[rec]="host=127.0.0.1 port=$REC_PORT user=engineer@bench-db dbname=bench sslmode=require"
    PASS[rec]=$SECRET
    PATHS=(off rec)
fi

echo "== connectivity (ssl= is the leg into postgres; jitgate and pgbouncer terminate the client's TLS)"
for p in "${PATHS[@]}"; do
    out=$(PGPASSWORD=${PASS[$p]} PGCONNECT_TIMEOUT=10 psql "${CONN[$p]}" -X -A -t -v ON_ERROR_STOP=1 \
        -c "SELECT current_user || ' ssl=' || coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '?') || ' app=' || current_setting('application_name')" 2>&1) ||
        die "psql through $p failed: $out"
    printf '%-10s ok (%s)\n' "$p" "$out"
done
echo

if [ "$RECORDING" != 1 ] && [ "$ONLY" = idle ]; then
    . benches/pg_idle.sh
    echo "done; output kept in target/bench-pg.txt"
    exit 0
fi

echo "== pgbench -i -s $SCALE (direct)"
PGPASSWORD=$BENCH_PASSWORD "$PGBIN/pgbench" -i -q -s "$SCALE" "${CONN[direct]}" >"$TMP/init.out" 2>&1 ||
    die "pgbench -i failed: $(cat "$TMP/init.out")"
tail -n 1 "$TMP/init.out"
echo

RESULTS=$TMP/results.tsv
: >"$RESULTS"
WORKLOADS=("select-simple|-S -M simple|$T" "select-extended|-S -M extended|$T" "connect-simple|-S -C -M simple|$T_CONNECT")

# pgbench_run NAME FLAGS SECONDS PATH RUN: one pgbench run, recorded.
pgbench_run() {
    local name=$1 flags=$2 secs=$3 p=$4 run=$5
    local proxy_pid="" cpu0=0 cpu1=0 tps xacts failed proxy_cpu cpu_pct cpu_us
    case $p in
        jitgate) proxy_pid=$JITGATE_PID ;;
        pgbouncer) proxy_pid=$BOUNCER_PID ;;
        off) proxy_pid=$OFF_PID ;;
        rec) proxy_pid=$REC_PID ;;
    esac
    [ -n "$proxy_pid" ] && cpu0=$(cpu_ms "$proxy_pid")
    # shellcheck disable=SC2086 # flags are words
    if ! PGPASSWORD=${PASS[$p]} "$PGBIN/pgbench" -n $flags -c "$CLIENTS" -j "$THREADS" \
        -T "$secs" "${CONN[$p]}" >"$TMP/run.out" 2>&1; then
        cat "$TMP/run.out"
        die "pgbench $name through $p failed"
    fi
    [ -n "$proxy_pid" ] && cpu1=$(cpu_ms "$proxy_pid")
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$TMP/run.out" | tail -n 1)
    xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMP/run.out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$TMP/run.out")
    if [ -z "$tps" ] || [ -z "$xacts" ]; then
        cat "$TMP/run.out"
        die "no tps in the pgbench output ($name, $p)"
    fi
    [ "${failed:-0}" = 0 ] || die "pgbench $name through $p: $failed failed transactions"
    # Proxy CPU: % of one core over the run, and microseconds per transaction.
    proxy_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$secs" -v x="$xacts" -v p="$proxy_pid" \
        'BEGIN { if (p == "") print "-\t-"; else printf "%.0f\t%.1f\n", (b - a) / (s * 10), (b - a) * 1000 / x }')
    record "$name" "$p" "$run" "$tps" "$proxy_cpu"
    IFS=$'\t' read -r cpu_pct cpu_us <<<"$proxy_cpu"
    printf '  %-16s %-11s run %s  tps %10.1f  xacts %8s  proxy cpu %4s%% %8s us/xact\n' \
        "$name" "$p" "$run" "$tps" "$xacts" "$cpu_pct" "$cpu_us"
}

if [ "$RECORDING" = 1 ]; then
    WORKLOADS=("select-simple|-S -M simple|$T" "select-extended|-S -M extended|$T")
fi
# BENCH_WORKLOADS (names, space-separated) keeps only those workloads.
if [ -n "${BENCH_WORKLOADS:-}" ]; then
    keep=()
    for w in "${WORKLOADS[@]}"; do
        case " $BENCH_WORKLOADS " in *" ${w%%|*} "*) keep+=("$w") ;; esac
    done
    [ "${#keep[@]}" -gt 0 ] || die "BENCH_WORKLOADS=$BENCH_WORKLOADS names none of the workloads"
    WORKLOADS=("${keep[@]}")
fi
echo "== pgbench: -c $CLIENTS -j $THREADS, $RUNS runs per path, interleaved"
echo "   (tps as pgbench prints it: -S \"without initial connection time\"; -C"
echo "   \"including reconnection times\", i.e. the connection setup rate)"
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name flags secs <<<"$w"
    interleaved "$RUNS" pgbench_run "$name" "$flags" "$secs"
done
echo

if [ "$RECORDING" = 1 ]; then
    python3 "$ROOT/benches/recording_summary.py" "$RESULTS" \
        "PostgreSQL, postgres = \"statements\", pgbench -S -c $CLIENTS -j $THREADS -T $T" \
        select-simple=tps select-extended=tps
    echo "proxy CPU per transaction, median us: off $(awk -F'\t' '$2 == "off" { print $6 }' "$RESULTS" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'), rec $(awk -F'\t' '$2 == "rec" { print $6 }' "$RESULTS" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') (both workloads)"
    du -sh "$TMP/jitgate-rec/recordings" | sed 's/^/recordings on disk: /'
    if grep -qi panicked "$TMP"/jitgate*.log; then
        echo "WARNING: a jitgate log mentions a panic"
    fi
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "done; output kept in target/bench-pg-recording.txt"
    exit 0
fi
python3 - "$RESULTS" "$CLIENTS" "$THREADS" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tps, cpu, us = defaultdict(list), defaultdict(list), defaultdict(list)
order = []
for name, path, _run, t, c, u in rows:
    if name not in order:
        order.append(name)
    tps[name, path].append(float(t))
    if c != "-":
        cpu[name, path].append(float(c))
        us[name, path].append(float(u))
med = lambda v: statistics.median(v) if v else float("nan")
print(f"== median TPS (pgbench -c {sys.argv[2]} -j {sys.argv[3]}; goals: jitgate >= 1.0x pgbouncer, >= 0.8x direct)")
print()
print("| workload | direct | jitgate | pgbouncer | jitgate/pgbouncer | jitgate/direct | direct-tls (ref.) | jitgate/direct-tls |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in order:
    d, j, b, t = (med(tps[n, p]) for p in ("direct", "jitgate", "pgbouncer", "direct-tls"))
    jb, jd = j / b, j / d
    print(f"| {n} | {d:.0f} | {j:.0f} | {b:.0f} | {jb:.2f}x {'(ok)' if jb >= 1.0 else '(goal 1.0x)'} "
          f"| {jd:.2f}x {'(ok)' if jd >= 0.8 else '(goal 0.8x)'} | {t:.0f} | {j / t:.2f}x |")
print()
print("every run's tps, in run order (the spread behind the medians)")
print()
print("| workload | jitgate | pgbouncer | direct-tls | jitgate/pgbouncer per run |")
print("| --- | --- | --- | --- | --- |")
for n in order:
    fmt = lambda p: ", ".join(f"{v:.0f}" for v in tps[n, p])
    per = ", ".join(f"{a / b:.2f}" for a, b in zip(tps[n, "jitgate"], tps[n, "pgbouncer"]) if b)
    print(f"| {n} | {fmt('jitgate')} | {fmt('pgbouncer')} | {fmt('direct-tls')} | {per} |")
print()
print("proxy CPU, median over runs: % of one core, and microseconds per transaction")
print()
print("| workload | jitgate % | pgbouncer % | jitgate us/xact | pgbouncer us/xact |")
print("| --- | ---: | ---: | ---: | ---: |")
for n in order:
    print(f"| {n} | {med(cpu[n, 'jitgate']):.0f} | {med(cpu[n, 'pgbouncer']):.0f} "
          f"| {med(us[n, 'jitgate']):.1f} | {med(us[n, 'pgbouncer']):.1f} |")
print()
EOF

if [ "$ONLY" = pgbench ]; then
    echo "done; output kept in target/bench-pg.txt"
    exit 0
fi

echo "== termination latency through jitgate ($TRIALS trials: revoke with a pg_sleep(600) running)"
python3 "$ROOT/benches/pg/termination.py" \
    --admin-port "$ADMIN_PORT" --proxy-port "$PROXY_PORT" --pg-port "$PG_PORT" \
    --pg-password "$SU_PASSWORD" --token "$USER_TOKEN" --admin-token "$ADMIN_TOKEN" \
    --user engineer --target bench-db --dbname bench --trials "$TRIALS"
echo

. benches/pg_idle.sh

if grep -qi panicked "$TMP"/jitgate*.log; then
    echo "WARNING: a jitgate log mentions a panic:"
    grep -i -m5 panicked "$TMP"/jitgate*.log
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "done; output kept in target/bench-pg.txt"
