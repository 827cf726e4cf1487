#!/usr/bin/env python3
"""CPU of the real agent at 1 s counter sampling with N TCP sockets on the node.

What it measures, in one run on the same sockets:
  * faultline run (release binary, default config apart from ports and data dir, no log
    files to tail): CPU of the whole process, user + system, as a share of one core, over
    WINDOW-second windows, with N established loopback sockets held by helper processes;
  * the baseline: what `ss -tan > /dev/null` run once a second costs (the shell loop an SRE
    would otherwise leave running), over the same windows;
  * the same agent with only the few sockets of the machine itself, so the part the N
    sockets cost is visible.
Every figure is the median of RUNS windows. The agent's first samples are not counted
(start-up, first scrape, first census).

Usage: scripts/bench/agent_cpu.py [--sockets 10000] [--window 30] [--runs 3] [--binary PATH]
Without --binary it builds target/release/faultline first. The sockets are held by child
processes of this script, 18,000 each (the usual fd limit), so --sockets 100000 works too;
above the socket CPU budget the agent counts less often, and the report says how often.
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sockets one holder process keeps open: the usual hard fd limit is 20,000.
PER_HOLDER = 18_000


def hold_here(n):
    """Opens n/2 established loopback pairs in this process; returns the sockets."""
    need = n + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
        except (ValueError, OSError) as e:
            sys.exit(f"cannot raise the fd limit to {need} (soft {soft}, hard {hard}): {e}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    addr = listener.getsockname()
    held = [listener]
    for _ in range(n // 2):
        client = socket.create_connection(addr)
        server, _ = listener.accept()
        held += [client, server]
    return held


def hold_until_stdin_closes(n):
    """Holder process: opens the sockets, says "ready", waits for stdin to close, then resets
    them (SO_LINGER 0) so the run leaves no TIME_WAIT behind on a shared machine."""
    import struct

    held = hold_here(n)
    print("ready", flush=True)
    sys.stdin.read()
    for s in held:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()


def hold_sockets(n):
    """Starts holder processes (this script with --hold) until n sockets are open, as on a
    real node where the agent does not own them; returns the holders."""
    holders = []
    left = n
    while left > 0:
        k = min(left, PER_HOLDER)
        left -= k
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--hold", str(k)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if child.stdout.readline().strip() != b"ready":
            release(holders + [child])
            sys.exit("a holder process could not open its sockets")
        holders.append(child)
    return holders


def release(holders):
    """Stops the holders; each resets its sockets first."""
    for child in holders:
        child.stdin.close()
        child.wait()


def start_agent(binary, workdir):
    port = free_port()
    cmd = [
        binary, "run",
        "--listen", f"127.0.0.1:{port}",
        "--otlp-grpc", "127.0.0.1:0",
        "--otlp-http", "127.0.0.1:0",
        "--data-dir", os.path.join(workdir, "data"),
        "--log", os.path.join(workdir, "logs", "*.log"),
    ]
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    stderr = open(os.path.join(workdir, "agent.stderr"), "w")
    agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1) as r:
                if r.status == 200:
                    return agent, port
        except OSError:
            time.sleep(0.1)
        if agent.poll() is not None:
            break
    agent.kill()
    sys.exit("the agent did not become healthy; see " + stderr.name)


def agent_windows(agent, window, runs):
    shares = []
    for _ in range(runs):
        c0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(window)
        c1, t1 = cpu_seconds(agent.pid), time.monotonic()
        shares.append(100.0 * (c1 - c0) / (t1 - t0))
    return shares


def ss_windows(window, runs):
    shares = []
    for _ in range(runs):
        c0, t0 = children_cpu_seconds(), time.monotonic()
        next_tick = t0
        while time.monotonic() - t0 < window:
            subprocess.run(["ss", "-tan"], stdout=subprocess.DEVNULL, check=True)
            next_tick += 1.0
            time.sleep(max(0.0, next_tick - time.monotonic()))
        c1, t1 = children_cpu_seconds(), time.monotonic()
        shares.append(100.0 * (c1 - c0) / (t1 - t0))
    return shares


def census(port):
    """How many sockets the agent's latest census counted, and what its socket source's
    status says (how often it counts when the CPU budget stretches the census)."""
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/counters", timeout=5) as r:
        snap = json.load(r)
    total = (snap.get("socket_totals") or {}).get("total")
    notes = [f"{s['name']}: {s['reason']}" for s in snap.get("sources", [])
             if s["name"].startswith("sockets.") and s.get("reason")]
    return total, "; ".join(notes) or "counted every sample"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        hold_until_stdin_closes(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockets", type=int, default=10000)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary")
    args = ap.parse_args()
    if shutil.which("ss") is None:
        sys.exit("ss (iproute2) is needed for the baseline")
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "faultline"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "faultline")

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"{args.runs} windows of {args.window:.0f} s each, medians")
    with tempfile.TemporaryDirectory(prefix="faultline-cpu-") as work:
        held = hold_sockets(args.sockets)
        agent, port = start_agent(binary, work)
        try:
            time.sleep(8)  # start-up and the first samples are not what runs all day
            seen, how_often = census(port)
            loaded = agent_windows(agent, args.window, args.runs)
            ss = ss_windows(args.window, args.runs)
            release(held)
            time.sleep(3)
            idle = agent_windows(agent, args.window, args.runs)
        finally:
            agent.terminate()
            agent.wait(timeout=10)
    med = statistics.median
    print(f"  sockets on the node per the agent's census: {seen} ({how_often})")
    print(f"  faultline run, {args.sockets} sockets:  {med(loaded):.2f}% of a core  (runs {', '.join(f'{x:.2f}' for x in loaded)})")
    print(f"  ss -tan once a second:           {med(ss):.2f}% of a core  (runs {', '.join(f'{x:.2f}' for x in ss)})  baseline")
    print(f"  faultline run, no extra sockets: {med(idle):.2f}% of a core  (runs {', '.join(f'{x:.2f}' for x in idle)})")
    print(f"  ratio faultline / ss loop: {med(loaded) / med(ss):.2f}x;  cost of the {args.sockets} sockets: "
          f"{med(loaded) - med(idle):.2f}% of a core")


if __name__ == "__main__":
    main()
