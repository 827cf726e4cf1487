#!/usr/bin/env python3
"""Reliability, long form: kill -9 the real agent many times at random moments while a writer
produces lines at a high rate and rotates its log in every way services do, then account every
line with the agent's own counters.

What it does:
  * one writer, LINES_PER_SEC lines/s (default 20,000) into logs/app.log through a file
    descriptor without O_APPEND (as `app > file` does), rotating every 1-4 s, the kind chosen
    at random: rename out of the glob (app.log -> app.log.N), rename inside it
    (app.log -> app-N.log), copytruncate with an appending writer, copytruncate with a writer
    that keeps its offset (a hole of NUL bytes);
  * KILLS (default 20) times, at a random moment 0.5-4 s apart: SIGKILL, restart at once;
  * when the writer has stopped, waits until the agent has caught up, then prints lines
    written, counted (faultline_store_log_records_total), lost, duplicated, the files whose
    offset in the agent's state is not at their end (after a clean stop), and the agent's
    own count of rotated files it found gone (faultline_store_tail_lost_files_total).

Nothing is compressed or deleted, so every line can be counted: the expected result is
0 lost, 0 duplicated.

Usage: scripts/reliability/crash.py [--bin PATH] [--kills N] [--rate LINES_PER_SEC]
       [--seed N]
The binary defaults to target/release/faultline, else target/debug/faultline (build it
first: `cargo build -p faultline [--release]`).
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(base, name):
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    wanted = "faultline_store_" + name
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    return None


class Agent:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.proc = None
        self.base = None

    def start(self):
        port = free_port()
        self.base = "http://127.0.0.1:%d" % port
        stderr = open(os.path.join(self.work, "agent.stderr"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "run", "--listen", "127.0.0.1:%d" % port,
             "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0",
             "--data-dir", os.path.join(self.work, "data"),
             "--log", os.path.join(self.work, "logs", "*.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit("agent exited with %s; see %s/agent.stderr" % (self.proc.returncode, self.work))
            try:
                urllib.request.urlopen(self.base + "/api/v1/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("agent not healthy within 60 s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Writer(threading.Thread):
    """Writes numbered lines at `rate` per second and rotates every 1-4 s."""

    KINDS = ["rename-out", "rename-in", "copytruncate", "copytruncate-hole"]

    def __init__(self, logs, rate, rng):
        super().__init__(daemon=True)
        self.logs = logs
        self.rate = rate
        self.rng = rng
        self.written = 0
        self.rotations = {k: 0 for k in self.KINDS}
        self.stop_flag = threading.Event()

    def open_live(self):
        return os.open(os.path.join(self.logs, "app.log"), os.O_WRONLY | os.O_CREAT, 0o644)

    def run(self):
        live = os.path.join(self.logs, "app.log")
        fd = self.open_live()
        gen = 0
        tick = 0.01
        per_tick = max(1, int(self.rate * tick))
        next_rotation = time.time() + self.rng.uniform(1, 4)
        next_tick = time.time()
        while not self.stop_flag.is_set():
            chunk = "".join(
                'level=info msg="tick" n=%d\n' % (self.written + i) for i in range(per_tick))
            os.write(fd, chunk.encode())
            self.written += per_tick
            if time.time() >= next_rotation:
                gen += 1
                kind = self.rng.choice(self.KINDS)
                self.rotations[kind] += 1
                if kind == "rename-out":
                    os.rename(live, live + ".%d" % gen)
                    os.close(fd)
                    fd = self.open_live()
                elif kind == "rename-in":
                    os.rename(live, os.path.join(self.logs, "app-%d.log" % gen))
                    os.close(fd)
                    fd = self.open_live()
                else:
                    # logrotate's copytruncate: copy, then truncate in place. The writer is
                    # this thread, so no line falls between the copy and the truncation.
                    with open(live, "rb") as src, open(live + ".%d" % gen, "wb") as dst:
                        dst.write(src.read())
                    os.truncate(live, 0)
                    if kind == "copytruncate":
                        os.lseek(fd, 0, os.SEEK_SET)  # an O_APPEND writer goes on at 0
                    # else: the writer keeps its offset and leaves a hole of NULs
                next_rotation = time.time() + self.rng.uniform(1, 4)
            next_tick += tick
            delay = next_tick - time.time()
            if delay > 0:
                time.sleep(delay)
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=None)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    binary = args.bin
    if binary is None:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        for profile in ("release", "debug"):
            candidate = os.path.join(target, profile, "faultline")
            if os.path.exists(candidate):
                binary = candidate
                break
    if binary is None or not os.path.exists(binary):
        sys.exit("no faultline binary: build it (cargo build -p faultline) or pass --bin")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="faultline-crash-")
    os.makedirs(os.path.join(work, "logs"))
    print("binary %s, seed %d, work dir %s" % (binary, args.seed, work), flush=True)

    agent = Agent(binary, work)
    agent.start()
    writer = Writer(os.path.join(work, "logs"), args.rate, rng)
    started = time.time()
    writer.start()
    for k in range(args.kills):
        time.sleep(rng.uniform(0.5, 4))
        counted = metric(agent.base, "log_records_total")
        agent.kill9()
        print("kill %2d at %5.1f s: %s lines written, %s counted before the kill"
              % (k + 1, time.time() - started, writer.written, counted), flush=True)
        agent.start()
    time.sleep(rng.uniform(0.5, 2))
    writer.stop_flag.set()
    writer.join()
    written_for = time.time() - started
    written = writer.written

    deadline = time.time() + 600
    counted, lag = None, None
    stable = 0
    while time.time() < deadline:
        counted = metric(agent.base, "log_records_total")
        lag = metric(agent.base, "tail_lag_bytes")
        if counted is not None and counted >= written and lag == 0:
            stable += 1
            if stable >= 10:  # a second without change: caught up
                break
        else:
            stable = 0
        time.sleep(0.1)
    counted = int(counted or 0)
    lost_files = metric(agent.base, "tail_lost_files_total")
    nul = metric(agent.base, "tail_nul_bytes_skipped_total")
    agent.stop()

    with open(os.path.join(work, "data", "state.json")) as f:
        state = json.load(f)
    # One inode can have several entries (copytruncate keeps the inode for each content
    # generation): some entry must be at the file's end.
    offsets = {}
    for entry in state["tail"]["files"]:
        offsets.setdefault(entry["id"]["ino"], set()).add(entry["offset"])
    not_at_end = []
    logs = os.path.join(work, "logs")
    for name in sorted(os.listdir(logs)):
        st = os.stat(os.path.join(logs, name))
        known = offsets.get(st.st_ino, set())
        if st.st_size not in known:
            not_at_end.append("%s (%d bytes; offsets %s)" % (name, st.st_size, sorted(known)))

    print()
    print("kills                 %d" % args.kills)
    print("writing                %.1f s at %d lines/s asked (%.0f achieved)"
          % (written_for, args.rate, written / written_for))
    print("rotations             %s" % ", ".join("%s %d" % kv for kv in writer.rotations.items()))
    print("lines written         %d" % written)
    print("lines counted         %d" % counted)
    print("lost                  %d" % max(0, written - counted))
    print("duplicated            %d" % max(0, counted - written))
    print("files not read to end %d %s" % (len(not_at_end), "; ".join(not_at_end[:5])))
    print("agent: lost files %s, NUL bytes skipped %s" % (lost_files, nul))
    ok = counted == written and not not_at_end
    print("RESULT %s" % ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
