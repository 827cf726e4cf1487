#!/usr/bin/env python3
"""Online latency of the running agent: how long after an error line is written to a tailed
file it is counted in its pattern, visible through the REST API — under a steady background
load of error lines (default 10,000 lines/s).

Starts `faultline run` (the binary given, default target/release/faultline) on free loopback
ports with a temporary data dir and log dir, writes background lines at --rate lines/s from a
writer thread, and every --interval seconds writes one probe line of its own pattern, then
polls /api/v1/clusters?q=probe until the pattern's count covers that probe. Prints p50, p90,
p99 and max of the latencies, the background rate actually achieved, and the machine.

Usage: scripts/bench/online_latency.py [--binary PATH] [--rate 10000] [--probes 200]
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/faultline")
    parser.add_argument("--rate", type=int, default=10_000, help="background lines per second")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="faultline-latency-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    agent = subprocess.Popen(
        [args.binary, "run", "--listen", f"127.0.0.1:{port}", "--otlp-grpc", "127.0.0.1:0",
         "--otlp-http", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
         "--log", os.path.join(logs, "*.log")],
        stderr=open(os.path.join(work, "agent.stderr"), "w"),
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                get(base + "/api/v1/health")
                break
            except OSError:
                if time.time() > deadline or agent.poll() is not None:
                    raise SystemExit("agent did not start; see " + work)
                time.sleep(0.05)

        path = os.path.join(logs, "svc.log")
        lock = threading.Lock()
        log = open(path, "a", buffering=1 << 16)
        stop = threading.Event()
        written = [0]

        def background():
            # Bursts every 10 ms keep the rate without one syscall per line.
            per_tick = max(1, args.rate // 100)
            start = time.time()
            tick = 0
            kinds = ["read: connection reset by peer", "i/o timeout", "EOF", "broken pipe"]
            while not stop.is_set():
                lines = []
                for k in range(per_tick):
                    n = written[0] + k
                    lines.append(
                        f'{{"level":"error","msg":"call failed","error":"GetUser({n}): read tcp '
                        f'10.0.{n % 250}.{n % 200}:{30000 + n % 30000}->10.1.0.9:8080: {kinds[n % 4]}"}}\n'
                    )
                with lock:
                    log.write("".join(lines))
                    log.flush()
                written[0] += per_tick
                tick += 1
                delay = start + tick * 0.01 - time.time()
                if delay > 0:
                    time.sleep(delay)

        writer = threading.Thread(target=background, daemon=True)
        writer.start()
        time.sleep(2)  # let the pipeline reach a steady state

        latencies = []
        bg_start, bg_written = time.time(), written[0]
        for i in range(1, args.probes + 1):
            with lock:
                sent = time.time()
                log.write(f'{{"level":"error","msg":"probe","error":"latency probe {i}: disk quota exceeded"}}\n')
                log.flush()
            while True:
                rows = get(base + "/api/v1/clusters?q=quota&limit=5")["clusters"]
                count = sum(r["total_count"] for r in rows)
                if count >= i:
                    latencies.append(time.time() - sent)
                    break
                if time.time() - sent > 10:
                    raise SystemExit(f"probe {i} not visible after 10 s")
                time.sleep(0.005)
            pause = args.interval - (time.time() - sent)
            if pause > 0:
                time.sleep(pause)
        achieved = (written[0] - bg_written) / (time.time() - bg_start)
        stop.set()
        writer.join()

        q = statistics.quantiles(latencies, n=100)
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
        print(f"background: {achieved:,.0f} error lines/s (asked {args.rate:,}); probes: {len(latencies)}")
        print(
            "write-to-API latency: p50 {:.0f} ms, p90 {:.0f} ms, p99 {:.0f} ms, max {:.0f} ms".format(
                statistics.median(latencies) * 1000, q[89] * 1000, q[98] * 1000, max(latencies) * 1000
            )
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)


if __name__ == "__main__":
    main()
