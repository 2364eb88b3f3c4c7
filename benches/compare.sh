#!/usr/bin/env bash
# TCP tunnel benchmarks against HAProxy (issue 4).
#
#     benches/compare.sh
#
# Installs HAProxy from the distribution when it is missing, prints the
# machine, then runs `cargo bench --bench tunnel` and keeps its output in
# target/bench-tunnel.txt. Figures go to docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

have_haproxy() {
    [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1
}

haproxy_bin() {
    if [ -x /usr/sbin/haproxy ]; then
        echo /usr/sbin/haproxy
    else
        command -v haproxy
    fi
}

if ! have_haproxy; then
    echo "haproxy: not installed; installing it with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    # A half-configured dpkg (an earlier install interrupted) blocks every
    # install until it is finished.
    if ! $SUDO dpkg --configure -a; then
        $SUDO apt-get -f install -y
    fi
    if ! $SUDO apt-get install -y --no-install-recommends haproxy; then
        $SUDO apt-get -f install -y
        $SUDO dpkg --configure -a
        $SUDO apt-get install -y --no-install-recommends haproxy
    fi
    # The package starts a system service on hosts with an init system; the
    # bench runs its own instance on its own ports, so stop the service's.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
        $SUDO systemctl stop haproxy || true
    fi
fi

echo "== machine"
echo "cores:   $(nproc)"
echo "cpu:     $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel:  $(uname -srm)"
echo "os:      $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "rustc:   $(rustc --version)"
echo "nofile:  $(ulimit -n) (hard $(ulimit -Hn))"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if have_haproxy; then
    echo "haproxy: $("$(haproxy_bin)" -v 2>&1 | head -n1)"
else
    echo "haproxy: not installed"
fi
echo

mkdir -p target
cargo bench --bench tunnel 2>&1 | tee target/bench-tunnel.txt
