#!/usr/bin/env bash
# The README's "Sign-in with your IdP" walk-through, set up on this machine:
#
#   tests/idp/demo.sh up [DIR]     # default DIR: ./demo-oidc
#   tests/idp/demo.sh down [DIR]
#
# `up` starts, each in the background with its log and pid file in DIR:
# - the test IdP (tests/idp/run.sh) on 127.0.0.1:5556;
# - a private OpenSSH sshd on 127.0.0.1:2022 (its own host key; the proxy
#   logs in as the user running this script, with a key made here): the
#   target prod-web;
# - a private PostgreSQL cluster on 127.0.0.1:5433 (initdb, SCRAM, a role
#   `app` and database `app` with a table `orders`; as root it runs as the
#   `postgres` user, else `nobody`): the target prod-db;
# - jitgate on DIR/jitgate.toml: config/jitgate-oidc.toml plus an SSH
#   listener on 127.0.0.1:2222, the two targets and a policy giving the IdP
#   group `oncall` prod-* for up to an hour without an approver.
# It needs node and npm, openssh-server, postgresql, curl, and the jitgate
# binary on PATH (or JITGATE=path/to/jitgate). Secrets made here (the
# target key, the role's password) stay in DIR, mode 0600; nobody using the
# demo types them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cmd=${1:-}
dir=${2:-./demo-oidc}

die() { echo "demo.sh: $*" >&2; exit 1; }

stop() {
  for p in jitgate postgres sshd idp; do
    f="$dir/$p.pid"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients).
    sig=TERM
    [ $p != postgres ] || sig=INT
    kill -s $sig "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

case "$cmd" in
  up) ;;
  down)
    [ -d "$dir" ] || die "no $dir"
    dir=$(cd "$dir" && pwd)
    stop
    echo "stopped; remove $dir to start afresh"
    exit 0 ;;
  *) echo "usage: $0 up|down [DIR]" >&2; exit 2 ;;
esac

jitgate=${JITGATE:-$(command -v jitgate || true)}
[ -n "$jitgate" ] && [ -x "$jitgate" ] || die "jitgate is not on PATH (cargo build; export PATH=\"\$PWD/target/debug:\$PATH\")"
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing (apt-get install openssh-server)"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] || die "PostgreSQL server binaries are missing (apt-get install postgresql)"
command -v curl >/dev/null || die "curl is missing"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/jitgate.pid" ] && die "$dir is up already (tests/idp/demo.sh down $dir)"
chmod 755 "$dir"

wait_port() { # PORT WHAT LOG
  n=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 1200 ] || { tail -n 20 "$3" >&2; die "$2 did not start"; }
    sleep 0.1
  done
}

# --- the IdP
"$here/run.sh" 5556 http://127.0.0.1:8080 > "$dir/idp.log" 2>&1 &
echo $! > "$dir/idp.pid"

# --- prod-web: a private sshd
mkdir -p "$dir/sshd"
[ -f "$dir/sshd/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C prod-web -f "$dir/sshd/host_ed25519"
[ -f "$dir/sshd/upstream_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C jitgate-upstream -f "$dir/sshd/upstream_ed25519"
cp "$dir/sshd/upstream_ed25519.pub" "$dir/sshd/authorized_keys"
me=$(id -un)
cat > "$dir/sshd/sshd_config" <<EOF
Port 2022
ListenAddress 127.0.0.1
HostKey $dir/sshd/host_ed25519
PidFile $dir/sshd/sshd.pid
AuthorizedKeysFile $dir/sshd/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $me
UsePAM no
StrictModes no
X11Forwarding no
EOF
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$dir/sshd/sshd_config" > "$dir/sshd.log" 2>&1 &
echo $! > "$dir/sshd.pid"
wait_port 2022 sshd "$dir/sshd.log"

# --- prod-db: a private PostgreSQL cluster
# PostgreSQL refuses to run as root: as root, its tools run as `owner`.
as_owner=()
if [ "$(id -u)" = 0 ]; then
  owner=nobody
  id postgres >/dev/null 2>&1 && owner=postgres
  as_owner=(setpriv --reuid="$owner" --regid="$owner" --clear-groups --)
fi
if [ ! -f "$dir/pg/PG_VERSION" ]; then
  mkdir -p "$dir/pg"
  umask 077
  head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$dir/pg-password"
  cp "$dir/pg-password" "$dir/pg-password.initdb"
  umask 022
  [ "$(id -u)" != 0 ] || chown -R "$owner" "$dir/pg" "$dir/pg-password.initdb"
  "${as_owner[@]}" "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=scram-sha-256 --pwfile="$dir/pg-password.initdb" > "$dir/initdb.log" 2>&1 \
    || { rm -f "$dir/pg-password.initdb"; cat "$dir/initdb.log" >&2; die "initdb failed"; }
  rm -f "$dir/pg-password.initdb"
fi
"${as_owner[@]}" "$pgbin/postgres" -D "$dir/pg" -p 5433 -c listen_addresses=127.0.0.1 -c unix_socket_directories= > "$dir/postgres.log" 2>&1 &
echo $! > "$dir/postgres.pid"
wait_port 5433 PostgreSQL "$dir/postgres.log"
PGPASSWORD=$(cat "$dir/pg-password")
export PGPASSWORD
n=0
until "$pgbin/psql" -X -q "host=127.0.0.1 port=5433 user=postgres dbname=postgres" -c 'select 1' >/dev/null 2>&1; do
  n=$((n + 1)); [ $n -lt 100 ] || die "PostgreSQL does not answer"; sleep 0.1
done
"$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=5433 user=postgres dbname=postgres" <<EOF >/dev/null
SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') \gexec
ALTER ROLE app PASSWORD '$PGPASSWORD';
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app') \gexec
EOF
"$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=5433 user=app dbname=app" \
  -c "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, item text NOT NULL)" \
  -c "INSERT INTO orders (item) SELECT 'widget-' || g FROM generate_series(1, 42) g WHERE NOT EXISTS (SELECT FROM orders)" >/dev/null
unset PGPASSWORD

# --- jitgate
host_key=$(cut -d' ' -f1,2 "$dir/sshd/host_ed25519.pub")
sed "s|^data_dir = .*|data_dir = \"$dir/data\"|" "$repo/config/jitgate-oidc.toml" > "$dir/jitgate.toml"
cat >> "$dir/jitgate.toml" <<EOF

# --- added by tests/idp/demo.sh: the walk-through's targets
[listeners.ssh]
listen = "127.0.0.1:2222"

# The private sshd; the proxy logs in as $me with a key only it holds.
[[targets]]
name = "prod-web"
kind = "ssh"
address = "127.0.0.1:2022"
host_key = "$host_key"
upstream = { user = "$me", key_file = "$dir/sshd/upstream_ed25519" }

# The private PostgreSQL; the proxy logs in as app with the password in
# \$JITGATE_DEMO_PG_PASSWORD (set by demo.sh from $dir/pg-password).
[[targets]]
name = "prod-db"
kind = "postgres"
address = "127.0.0.1:5433"
upstream = { user = "app", password_env = "JITGATE_DEMO_PG_PASSWORD", tls = "disable" }

[[policies]]
name = "oncall-prod"
requesters = ["group:oncall"]
targets = ["prod-*"]
approvals_required = 0
max_duration = "1h"
default_duration = "30m"
require_reason = true
EOF
JITGATE_DEMO_PG_PASSWORD=x "$jitgate" check-config --config "$dir/jitgate.toml" >/dev/null
wait_port 5556 "the IdP" "$dir/idp.log"
JITGATE_DEMO_PG_PASSWORD=$(cat "$dir/pg-password") "$jitgate" serve --config "$dir/jitgate.toml" > "$dir/jitgate.log" 2>&1 &
echo $! > "$dir/jitgate.pid"
wait_port 8080 jitgate "$dir/jitgate.log"
wait_port 2222 "jitgate's SSH listener" "$dir/jitgate.log"
cat <<EOF
ready: IdP http://127.0.0.1:5556, jitgate http://127.0.0.1:8080 (SSH 2222, PostgreSQL 15432),
       prod-web = sshd 127.0.0.1:2022, prod-db = PostgreSQL 127.0.0.1:5433
logs and pid files in $dir; stop with: tests/idp/demo.sh down $dir
EOF
