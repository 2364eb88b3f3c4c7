"""Recording overhead (issue 20): medians, spread and ratios from the rows
that ssh_compare.sh and pg_compare.sh write with BENCH_RECORDING=1.

Rows: KIND PATH RUN VALUE [...], PATH "off" (recording off) or "rec"
(recording on). KINDs ending in "_ms" are times (lower is better): their
ratio is off/rec, so that every ratio reads as "recorded throughput as a
fraction of unrecorded" and the goal is >= 0.9 for all of them.
"""
import statistics
import sys
from collections import defaultdict

GOAL = 0.9
results, title = sys.argv[1], sys.argv[2]
units = dict(a.split("=", 1) for a in sys.argv[3:])
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
v, order = defaultdict(list), []
for kind, path, _run, x, *_ in rows:
    if kind not in order:
        order.append(kind)
    v[kind, path].append(float(x))
print(f"== recording overhead: {title} (median, min-max over runs; ratio = recorded / unrecorded throughput)")
print()
print("| workload | unit | off: median (min-max) | on: median (min-max) | runs | ratio |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for k in order:
    off, on = v[k, "off"], v[k, "rec"]
    if not off or not on:
        continue
    mo, mr = statistics.median(off), statistics.median(on)
    ratio = mo / mr if k.endswith("_ms") else mr / mo
    flag = "" if ratio >= GOAL else " (under 0.9x)"
    print(f"| {k} | {units.get(k, '')} | {mo:.1f} ({min(off):.1f}-{max(off):.1f}) "
          f"| {mr:.1f} ({min(on):.1f}-{max(on):.1f}) | {len(off)} | {ratio:.2f}x{flag} |")
print()
