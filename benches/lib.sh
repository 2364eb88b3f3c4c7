# Shared by the comparison scripts (sourced, not run).

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
