#!/usr/bin/env python3
"""Ratios of rvs to each OVS variant from one overlay run (benches/overlay.sh).

Reads RESULTS_DIR/all.csv (written by peerbench's summarize.py) and pairs
the SUTs by repetition: within a repetition the SUTs ran back to back
(round robin), so a ratio of the same repetition sees the same machine
load. Prints a markdown table: per metric, the per-repetition ratios and
their median.
A cell "A/B" means the other switch delivered under 1 % of rvs's (B next
to nothing): no ratio is taken from that repetition.
Usage: ratios.py RESULTS_DIR [BASE_SUT] [OTHER_SUT ...]
"""
import csv
import os
import statistics
import sys

METRICS = [
    ("TCP x1 Gbit/s", "tcp1_gbps", True),
    ("UDP64 iperf3 received kpps", "udp64_rx_kpps", True),
    ("UDP64 flood delivered kpps", "udpflood_deliv_kpps", True),
    ("ping avg µs (lower is better)", "ping_avg_us", False),
]


def main():
    run = sys.argv[1]
    base = sys.argv[2] if len(sys.argv) > 2 else "ovl-rvs"
    others = sys.argv[3:] or ["ovl-ovs", "ovl-ovs-tso"]
    vals = {}
    with open(os.path.join(run, "all.csv")) as f:
        for row in csv.DictReader(f):
            vals[(row["sut"], row["rep"], row["metric"])] = float(row["value"])
    reps = sorted({r for (_, r, _) in vals}, key=lambda r: int(r[3:]))
    print(f"\n### Ratios {base} / other, paired by repetition (reps: {', '.join(reps)})\n")
    print("| metric | vs | per-rep ratios | median ratio |")
    print("|---|---|---|---|")
    for title, key, higher in METRICS:
        for o in others:
            rs, cells = [], []
            for r in reps:
                a, b = vals.get((base, r, key)), vals.get((o, r, key))
                if a is None or b is None:
                    cells.append("-")
                elif higher and b < a / 100:
                    # The other switch carried (next to) nothing: a
                    # ratio would be noise, say so instead.
                    cells.append(f"{a:.4g}/{b:.2g}")
                else:
                    rs.append(a / b)
                    cells.append(f"{a / b:.2f}")
            if all(c == "-" for c in cells):
                continue
            med = f"**{statistics.median(rs):.2f}**" if rs else "n/a"
            print(f"| {title} | {o} | {' '.join(cells)} | {med} |")


if __name__ == "__main__":
    main()
