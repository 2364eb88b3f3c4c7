#!/usr/bin/env python3
"""One table of every performance goal, from the tables the benches print.

    benches/goals_summary.py TUNNEL_OUTPUT PG_OUTPUT [SSH_OUTPUT]

TUNNEL_OUTPUT is what `cargo bench --bench tunnel` printed (rows `| 1a |`
... `| 4w |`), PG_OUTPUT what benches/pg_compare.sh printed (its median TPS
table and its idle-session table), SSH_OUTPUT what `BENCH_ONLY=idle
benches/ssh_compare.sh` printed (its idle pty table). A figure the run did not produce is shown as "not measured", never
guessed; the goal then counts as not shown.
"""
import re
import sys


def rows(path, first):
    """Markdown table rows whose first cell is in `first`, as cell lists."""
    out = []
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return out
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in first:
            out.append(cells)
    return out


def num(s):
    """The first number in a cell ("1,229 (957–1313)" -> 1229.0)."""
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", s or "")
    return float(m.group(0).replace(",", "")) if m else None


def ratio(s):
    m = re.search(r"(\d+(?:\.\d+)?)", s or "")
    return float(m.group(1)) if m else None


def main():
    tunnel, pg = sys.argv[1], sys.argv[2]
    ssh = sys.argv[3] if len(sys.argv) > 3 else None
    goals = []  # (goal, jitgate, peer, ratio, met)

    def add(goal, j, p, r, met):
        goals.append((goal, j, p, r, met))

    t = rows(tunnel, {"1a", "1b", "1c", "2", "2w", "3", "4", "4w"})
    for c in t:
        if c[0] in ("1a", "1b") and "both sockets closed" in c[1]:
            p99 = [num(x) for x in c[2].split("/")][1] if "/" in c[2] else None
            what = "expiry" if c[0] == "1a" else "revoke"
            add(f"one session's {what} → both sockets closed, p99 ≤ 1 ms",
                f"p50/p99/max {c[2]}", "–", "–",
                None if p99 is None else p99 <= 1.0)
        elif c[0] == "1c" and "last of the 2×N" in c[1]:
            v = num(c[2])
            add("one revoke, every socket of N sessions closed ≤ 100 ms",
                f"{c[2]} ({c[1].split('(runs:')[-1].rstrip(')').strip()} per run)",
                "–", "–", None if v is None else v <= 100.0)
        elif c[0] == "2w" and ("upload" in c[1] or "download" in c[1]):
            r = ratio(c[5])
            add(f"whole tunnel path ≥ 1.0× HAProxy: {c[1]}", c[2], c[3], c[5],
                None if r is None else r >= 1.0)
        elif c[0] == "2w" and "CPU" in c[1]:
            add("whole tunnel path, proxy CPU per GB (context; lower is better)",
                c[2], c[3], c[5], "info")
        elif c[0] == "3":
            v = num(c[2])
            add("≤ 8 KiB per idle TLS-tunnelled session", c[2] + " KiB",
                c[3] + " KiB", c[5], None if v is None else v <= 8.0)
        elif c[0] == "4":
            r = ratio(c[5])
            add("connection setup ≥ 1.0× HAProxy (rustls client, full handshakes)",
                c[2], c[3], c[5], None if r is None else r >= 1.0)
        elif c[0] == "4w":
            r = ratio(c[5])
            add("connection setup ≥ 1.0× HAProxy through the whole path",
                c[2], c[3], c[5], None if r is None else r >= 1.0)

    for c in rows(pg, {"select-simple", "select-extended", "connect-simple"}):
        # | workload | direct | jitgate | pgbouncer | j/b | j/d | direct-tls | j/dtls |
        if len(c) < 8:
            continue
        if c[0] == "connect-simple":
            r = ratio(c[7])
            add("pgbench -S -C ≥ 1.0× direct with TLS", c[2] + " tps",
                c[6] + " tps (direct TLS)", f"{r:.2f}×" if r else "–",
                None if r is None else r >= 1.0)
        else:
            r = ratio(c[4])
            mode = c[0].split("-")[1]
            add(f"pgbench -S {mode} ≥ 1.0× pgbouncer (both terminating TLS)",
                c[2] + " tps", c[3] + " tps", f"{r:.2f}×" if r else "–",
                None if r is None else r >= 1.0)

    # | workload | jitgate % | pgbouncer % | jitgate us/xact | pgbouncer us/xact |
    for c in rows(pg, {"select-simple", "select-extended", "connect-simple"}):
        if len(c) == 5 and "," not in c[3] and num(c[3]) and num(c[4]):
            add(f"pgbench {c[0]}: proxy CPU per transaction, µs (context; lower is better)",
                c[3], c[4] + " (pgbouncer)", f"{num(c[3]) / num(c[4]):.2f}×", "info")
    # | client | jitgate | pgbouncer | j/b | rounds | backends |
    for c in rows(pg, {"idle", "after-select"}):
        if len(c) >= 4:
            what = "never queried" if c[0] == "idle" else "after one query each"
            add(f"idle PostgreSQL session, KiB ({what}; state the figure)",
                c[1], c[2] + " (pgbouncer)", c[3], "info")
    if ssh:
        for c in rows(ssh, {"idle pty session"}):
            if len(c) >= 4:
                add("idle SSH pty session, KiB (state the figure)", c[1],
                    c[2] + " (sshd PSS)", c[3], "info")

    if not goals:
        print("no bench output found: run benches/goals.sh")
        return 1
    print("| goal | jitgate | peer | ratio | met |")
    print("| --- | --- | --- | ---: | --- |")
    for g, j, p, r, met in goals:
        m = {True: "yes", False: "**no**", None: "not shown", "info": "–"}[met]
        print(f"| {g} | {j} | {p} | {r} | {m} |")
    missing = []
    if not any("whole tunnel" in g[0] for g in goals):
        missing.append("whole tunnel path")
    if not any("pgbench" in g[0] for g in goals):
        missing.append("pgbench")
    if missing:
        print(f"\nnot measured in this run: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
