#!/usr/bin/env python3
"""Speed anchor for clustering.sh: Drain3 (default settings) over a file, end to end.

Usage: clustering_drain3.py IN OUT   (one cluster id per input line; prints lines/s)
"""
import sys
import time

from drain3 import TemplateMiner


def main():
    src, dst = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    miner = TemplateMiner()
    n = 0
    with open(src, encoding="utf-8", errors="replace") as fin, open(dst, "w") as fout:
        for line in fin:
            result = miner.add_log_message(line.rstrip("\n"))
            fout.write(f"{result['cluster_id']}\n")
            n += 1
    secs = time.perf_counter() - start
    print(f"drain3: {n} lines, {secs:.3f} s, {n / secs:.0f} lines/s")


if __name__ == "__main__":
    main()
