#!/usr/bin/env python3
"""Writes RATE lines/s (line-buffered: one write(2) per line) into 3 files of DIR for SECONDS,
each line starting with its CLOCK_REALTIME ns stamp, paced every 10 ms."""
import os, random, sys, time
d, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
files = [open(os.path.join(d, f"s{i}.log"), "a", buffering=1) for i in range(3)]
pad = "x" * 120
start = time.monotonic(); done = 0; tick = 0
while time.monotonic() - start < secs:
    tick += 1
    due = start + tick * 0.01
    want = int(rate * (due - start)) - done
    for _ in range(want):
        random.choice(files).write(f"{time.time_ns()} level=info msg=\"GET /api/orders 200\" {pad}\n")
    done += want
    p = due - time.monotonic()
    if p > 0: time.sleep(p)
print(done)
