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

# SUDO and apt_install_service.
. benches/lib.sh

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
    apt_install_service haproxy
fi

print_machine
if have_haproxy; then
    echo "haproxy: $("$(haproxy_bin)" -v 2>&1 | head -n1)"
else
    echo "haproxy: not installed"
fi
echo

mkdir -p target
cargo bench --bench tunnel 2>&1 | tee target/bench-tunnel.txt
