#!/usr/bin/env python3
"""faultline's fault lab with real Go/Gin services (issue #11): how the agent answers, per fault.

For each fault it builds lab/go (a Gin service that plays any service of a chain), starts the
agent (`faultline run --config` with a temporary data dir on free loopback ports, a `[[logs]]`
table per service's log file, a `[[tasks]]` table per service's pprof goroutine page and a
`[[counters.processes]]` table per service's listening port), starts a chain of Go services
with randomised names, ports, routes, logger styles, fan-out and timeouts, sends them steady
traffic, waits a baseline as on a real node, injects the fault through the target service's
admin endpoint, and then polls the agent's API for the answer: the time from onset to the
first answer, the top pattern and its count against the failed requests the driver counted,
where the trace page says the error starts, what moved, and the top incident's culprit and
hint when the agent has incidents. It prints one JSON result per fault and a table at the end.

    python3 scripts/lab/run.py --fault eof                 # one fault
    python3 scripts/lab/run.py --all                       # every fault in turn
    python3 scripts/lab/run.py --quiet-minutes 10          # no fault, background noise
    python3 scripts/lab/run.py --agent-lead 180 --fault dns  # the agent first, as on a live node
    python3 scripts/lab/run.py --fault time-wait --heal    # then the fix: how soon it is over
    python3 scripts/lab/run.py --fault eof --recur ended   # heal, wait until over, inject again

A node that lives (`--agent-lead SECONDS`): the agent starts that long before the chain, with
the two noise processes churning loopback sockets from its start; a first deploy of the chain
runs with traffic from a third of the lead to two thirds and is drained and stopped; then the
chain starts again on the same ports (a redeploy) and the run goes on as without a lead. So
the agent's baseline holds other programs' churn, configured ports with nothing listening,
a deploy's start-up and shutdown and a restart, as on a real node, instead of starting a
second before the services.

A fault that comes back (`--recur recovering|ended`, `--recur-wait SECONDS`): after the
observe window the fault is healed as with `--heal`; once the top incident says it is
recovering (or has ended), and `--recur-wait` seconds later, the same fault is injected into
the same service again and the API is polled for another observe window. The second
occurrence must be answered as the first (an active incident within 10 s of its onset, the
culprit, the hint first), by the incident the agent's rules say: the same incident active
again while it was recovering, the same incident reopened (`reopened_unix_ms`) when its
patterns fail again within a minute of their last failure, a new incident after that.

Execution model: one agent and one chain per fault (a fresh data dir each time, so a count
belongs to one fault); traffic comes from a fixed pool of worker threads with keep-alive
connections to the edge service; the API is polled every POLL_SECS. Every wait has a deadline,
every process started is in its own process group and killed at the end, also on Ctrl-C and
on errors. Everything listens on 127.0.0.1; DNS lookups of the services go to a loopback
NXDOMAIN responder.

Only the Python standard library is used. Go is built offline from Debian's packages
(golang-go, golang-github-gin-gonic-gin-dev) in GOPATH mode.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass, field, asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GO_SOURCE = REPO / "lab" / "go"

# What each fault is, where it lives, and which counter it should move.
#   where: "callee" (the target is called by the previous service; it is the culprit of its
#   caller's transport errors), "caller" (the target misuses its own calls; it is the culprit),
#   "self" (the target's own bug).
#   errors: whether requests fail (then onset is the first failed request; else the injection).
#   counter: the counter the fault moves (matched loosely against the agent's labels).
#   hint: the id of the hint rule (diagnosis/rules/hints.toml) whose evidence the fault matches.
#   text: what the Go error strings of the fault's own failures contain: the driver's way to
#   find "the fault's pattern" among the new ones, whose count must equal the failed requests.
#   The agent is never told any of this.
FAULTS = {
    "eof": dict(where="callee", errors=True, counter=None, hint="callee-closed", text=["EOF"]),
    "reset": dict(where="callee", errors=True, counter="resets", hint="connection-reset", text=["reset by peer"]),
    "slow": dict(where="callee", errors=True, counter=None, hint="timeout",
                 text=["deadline exceeded", "Timeout exceeded"]),
    "close-wait": dict(where="callee", errors=True, counter="CLOSE_WAIT", hint="close-wait-leak",
                       text=["deadline exceeded", "Timeout exceeded"]),
    "time-wait": dict(where="caller", errors=False, counter="TIME_WAIT", hint="time-wait-storm", text=[]),
    "goroutine-leak": dict(where="self", errors=False, counter="goroutines", hint="goroutine-leak", text=[]),
    "panic": dict(where="self", errors=True, counter=None, hint="panic", text=["index out of range"]),
    "dns": dict(where="caller", errors=True, counter="request rate", hint="dns-failure", text=["no such host"]),
    "listen-overflow": dict(where="callee", errors=True, counter="listen", hint="listen-overflow",
                            text=["deadline exceeded", "Timeout exceeded", "i/o timeout"]),
    # The callee is killed (kill -9, as the OOM killer does) and stays down until healed, when
    # it is started again on the same port: its callers' dials are refused meanwhile.
    "crash": dict(where="callee", errors=True, counter=None, hint="connection-refused",
                  text=["connection refused"]),
}

EDGE_NAMES = ["gateway", "edge", "api", "frontend", "bff", "storefront"]
MID_NAMES = ["orders", "checkout", "billing", "carts", "payments", "accounts", "shipping"]
LEAF_NAMES = ["inventory", "stock", "catalog", "pricing", "ledger", "users", "profiles"]
SUFFIXES = ["", "", "-svc", "-api", "-v2"]
ROUTE_SHAPES = ["/api/v1/{noun}/:id", "/v2/{noun}/:id", "/{noun}/:id", "/internal/{noun}/:id"]
LOGGERS = ["zap", "slog", "gin"]

POLL_SECS = 0.5
# A pattern that appears this long after the injection still belongs to the fault.
ANSWER_WINDOW_SECS = 10.0
# A Go service is up within a second on an idle machine; 2 cores shared by many builds can
# take ten times that.
START_DEADLINE_SECS = 30.0
# Requests to the edge wait this long: every timeout inside the chain is below 2 s.
EDGE_TIMEOUT_SECS = 10.0
# The driver drops a keep-alive connection idle this long: the Go services close idle ones
# after their 10 s ReadHeaderTimeout, and a request sent as the server closes fails with
# "Remote end closed connection" without reaching it (15 of 800 requests in a first run).
CLIENT_IDLE_SECS = 5.0
# The close-wait fault's service runs with this soft open-file limit: ~25 fds at rest, one more
# per hung request, so it runs out within seconds at the lab's request rate.
CLOSE_WAIT_NOFILE = 256
# The listen-overflow fault's service listens with this backlog.
OVERFLOW_BACKLOG = 8


class LabError(Exception):
    """A lab run that could not be carried out (not a finding about the agent)."""


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Every process the lab starts, each in its own process group; `stop_all` ends them."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], stdout: Path, stderr: Path, env=None) -> subprocess.Popen:
        out = open(stdout, "ab")
        err = open(stderr, "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, env=env)
        finally:
            out.close()
            err.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            try:
                self.stop(proc)
            except Exception as e:  # keep stopping the others
                log(f"stopping pid {proc.pid}: {e}")
        self.procs.clear()


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def http_json(url: str, method: str = "GET", timeout: float = 5.0):
    """(status, parsed JSON or text or None); status 0 when the request itself failed."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        body = e.read()
        status = e.code
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def wait_until(what: str, deadline_secs: float, check, every: float = 0.1):
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() - started > deadline_secs:
            raise LabError(f"not within {deadline_secs:.0f} s: {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------
# Build


def build_go(out_dir: Path, gopath: str) -> Path:
    go = shutil.which("go")
    if go is None:
        raise LabError("no `go` on PATH: apt-get install golang-go golang-github-gin-gonic-gin-dev")
    gin = Path(gopath) / "src" / "github.com" / "gin-gonic" / "gin"
    if not gin.is_dir():
        raise LabError(f"Gin sources not found at {gin}: apt-get install golang-github-gin-gonic-gin-dev")
    binary = out_dir / "labsvc"
    env = dict(os.environ, GO111MODULE="off", GOPATH=gopath, GOFLAGS="", GOPROXY="off", CGO_ENABLED="0")
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(out_dir / "gocache")
    started = time.monotonic()
    result = subprocess.run([go, "build", "-trimpath", "-o", str(binary), "."], cwd=GO_SOURCE,
                            env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise LabError(f"go build failed:\n{result.stderr}")
    log(f"built {binary} in {time.monotonic() - started:.1f} s")
    return binary


# ---------------------------------------------------------------------------------------------
# The chain


@dataclass
class Service:
    name: str
    port: int
    admin_port: int
    route: str
    logger: str
    fanout: int
    timeout_ms: int
    timeout_style: str
    call_name: str = ""
    call_route: str = ""
    call_port: int = 0
    nofile: int = 0
    backlog: int = 4096
    slow_by_ms: int = 0
    log_file: str = ""

    def path_for(self, item: str) -> str:
        return self.route.replace(":id", item)


def draw_chain(rng: random.Random, length: int) -> list[Service]:
    names: list[str] = []
    pools = [EDGE_NAMES] + [MID_NAMES] * (length - 2) + [LEAF_NAMES]
    for pool in pools:
        while True:
            base, suffix = rng.choice(pool), rng.choice(SUFFIXES)
            name = base if suffix == f"-{base}" else base + suffix
            if name not in names:
                names.append(name)
                break
    while True:
        loggers = [rng.choice(LOGGERS) for _ in names]
        if len(set(loggers)) >= 2:
            break
    # Timeouts shrink down the chain, as in a sanely configured one: the caller of a hanging
    # service gives up first and reports it, and its own callers see its 502.
    # (500 ms at least: a loaded 2-core machine stalls a request for 200 ms now and then.)
    timeouts = [rng.randrange(500, 900, 100)]
    while len(timeouts) < len(names):
        timeouts.insert(0, timeouts[0] + rng.randrange(300, 800, 100))
    chain = []
    for i, name in enumerate(names):
        noun = name.split("-")[0]
        chain.append(Service(
            name=name,
            port=free_port(),
            admin_port=free_port(),
            route=rng.choice(ROUTE_SHAPES).format(noun=noun),
            logger=loggers[i],
            fanout=rng.randint(1, 3) if i > 0 else 1,
            timeout_ms=timeouts[i],
            timeout_style=rng.choice(["client", "context"]),
        ))
    for caller, callee in zip(chain, chain[1:]):
        caller.call_name = callee.name
        caller.call_route = callee.route
        caller.call_port = callee.port
    return chain


def service_argv(binary: Path, svc: Service, otlp_port: int, dns_port: int) -> list[str]:
    argv = [
        str(binary), "-name", svc.name,
        "-listen", f"127.0.0.1:{svc.port}", "-admin", f"127.0.0.1:{svc.admin_port}",
        "-route", svc.route, "-logger", svc.logger, "-log-file", svc.log_file,
        "-otlp", f"http://127.0.0.1:{otlp_port}",
        "-timeout", f"{svc.timeout_ms}ms", "-timeout-style", svc.timeout_style,
        "-fanout", str(svc.fanout), "-backlog", str(svc.backlog),
        "-resolver", f"127.0.0.1:{dns_port}",
    ]
    if svc.call_name:
        argv += ["-call", f"http://127.0.0.1:{svc.call_port}" + svc.call_route.replace(":id", "{id}"),
                 "-call-name", svc.call_name]
    if svc.nofile:
        argv += ["-nofile", str(svc.nofile)]
    if svc.slow_by_ms:
        argv += ["-slow-by", f"{svc.slow_by_ms}ms"]
    return argv


def agent_config(work: Path, web: int, grpc: int, otlp: int, chain: list[Service]) -> str:
    lines = [
        f'data_dir = "{work / "data"}"',
        "",
        "[web]",
        f'listen = "127.0.0.1:{web}"',
        "",
        "[otlp]",
        f'grpc_listen = "127.0.0.1:{grpc}"',
        f'http_listen = "127.0.0.1:{otlp}"',
    ]
    for svc in chain:
        lines += ["", "[[logs]]", f'path = "{svc.log_file}"', f'service = "{svc.name}"']
    for svc in chain:
        lines += ["", "[[tasks]]", f'name = "{svc.name}"',
                  f'url = "http://127.0.0.1:{svc.admin_port}/debug/pprof/goroutine?debug=1"']
    for svc in chain:
        lines += ["", "[[counters.processes]]", f'name = "{svc.name}"', f"listen_port = {svc.port}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Traffic


@dataclass
class Outcome:
    start_ms: int
    end_ms: int
    status: int
    trace_id: str
    error: str


class Traffic:
    """Steady requests to the edge at `rps`, from `workers` threads with keep-alive connections.

    Open loop: a ticker puts one request on a bounded queue every 1/rps s; a tick that finds
    the queue full is counted as skipped (the chain is slower than the load), not queued."""

    def __init__(self, port: int, edge: Service, rps: float, workers: int, seed: int) -> None:
        self.port = port
        self.edge = edge
        self.rps = rps
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.todo: queue.Queue = queue.Queue(maxsize=workers)
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.skipped = 0
        # Bumped when the edge restarts: every worker then drops its connection to the old
        # process, as a load balancer does when a backend leaves and comes back.
        self.generation = 0
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(workers)]
        self.ticker = threading.Thread(target=self.tick, daemon=True)

    def start(self) -> None:
        for t in self.threads:
            t.start()
        self.ticker.start()

    def stop(self) -> None:
        self.stopping.set()
        self.ticker.join(timeout=5)
        for t in self.threads:
            t.join(timeout=EDGE_TIMEOUT_SECS + 2)

    def tick(self) -> None:
        period = 1.0 / self.rps
        next_at = time.monotonic()
        while not self.stopping.is_set():
            next_at += period
            if not self.paused.is_set():
                try:
                    self.todo.put_nowait(self.edge.path_for(str(self.rng.randint(1, 99999))))
                except queue.Full:
                    self.skipped += 1
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def work(self) -> None:
        conn = None
        last_used = time.monotonic()
        generation = self.generation
        while not self.stopping.is_set():
            try:
                path = self.todo.get(timeout=0.2)
            except queue.Empty:
                continue
            stale = time.monotonic() - last_used > CLIENT_IDLE_SECS or generation != self.generation
            if conn is not None and stale:
                conn.close()
                conn = None
            generation = self.generation
            start = now_ms()
            status, trace, error = 0, "", ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=EDGE_TIMEOUT_SECS)
                conn.request("GET", path, headers={"User-Agent": "faultline-lab/1"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                parts = (resp.getheader("traceresponse") or "").split("-")
                trace = parts[1] if len(parts) == 4 else ""
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            last_used = time.monotonic()
            with self.lock:
                self.outcomes.append(Outcome(start, now_ms(), status, trace, error))
        if conn is not None:
            conn.close()

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes)


def failed(o: Outcome) -> bool:
    return o.status != 200


# ---------------------------------------------------------------------------------------------
# The agent's API


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str):
        return http_json(self.base + path)

    def clusters(self, emerging: bool) -> list[dict]:
        status, body = self.get("/api/v1/clusters?limit=50" + ("&emerging=true" if emerging else ""))
        if status != 200 or not isinstance(body, dict):
            return []
        return body.get("clusters") or []

    def incidents(self):
        """The incident list, or None while the agent has no incidents API (404)."""
        status, body = self.get("/api/v1/incidents")
        if status != 200:
            return None
        if isinstance(body, dict):
            return body.get("incidents") or []
        return body if isinstance(body, list) else []


def short(value, limit: int = 140) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def moved_rows(moved) -> list[dict]:
    """The ranked candidates of a 'what moved' answer, whatever the top-level key."""
    if not isinstance(moved, dict):
        return []
    for key in ("candidates", "moved", "signals", "series", "related"):
        rows = moved.get(key)
        if isinstance(rows, list):
            return [r for r in rows if isinstance(r, dict)]
    return []


def row_label(row: dict) -> str:
    for key in ("label", "name", "series", "key", "title"):
        value = row.get(key)
        if isinstance(value, str) and value:
            return value
    return short(row, 100)


# ---------------------------------------------------------------------------------------------
# The fault's mechanics, read from the node itself (so a run shows the fault really happened)

TCP_STATES = {"06": "TIME_WAIT", "08": "CLOSE_WAIT", "01": "ESTABLISHED"}


def tcp_states_on(port: int) -> dict:
    """Sockets whose local port is `port`, by state, from /proc/net/tcp{,6}."""
    counts = {name: 0 for name in TCP_STATES.values()}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] in TCP_STATES:
                counts[TCP_STATES[fields[3]]] += 1
    return counts


def netstat_counter(path: str, group: str, name: str):
    """A counter of /proc/net/netstat or /proc/net/snmp (header line, then values line)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for head, values in zip(lines, lines[1:]):
        if head.startswith(group + ":") and values.startswith(group + ":"):
            row = dict(zip(head.split()[1:], values.split()[1:]))
            return int(row[name]) if name in row else None
    return None


def goroutines(admin_port: int):
    status, body = http_json(f"http://127.0.0.1:{admin_port}/debug/pprof/goroutine?debug=1", timeout=2)
    if status == 200 and isinstance(body, str) and body.startswith("goroutine profile: total "):
        return int(body.split()[3])
    return None


def open_fds(pid: int):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def mechanics(run: "Run") -> dict:
    target = run.target
    callee = next((s for s in run.chain if s.name == target.call_name), None)
    return {
        "unix_ms": now_ms(),
        "target_port": tcp_states_on(target.port),
        "callee_port": tcp_states_on(callee.port) if callee else None,
        "target_goroutines": goroutines(target.admin_port),
        "target_fds": open_fds(run.service_procs[target.name].pid),
        "listen_overflows": netstat_counter("/proc/net/netstat", "TcpExt", "ListenOverflows"),
        "estab_resets": netstat_counter("/proc/net/snmp", "Tcp", "EstabResets"),
    }


# ---------------------------------------------------------------------------------------------
# One run


@dataclass
class Run:
    args: argparse.Namespace
    binary: Path
    labsvc: Path
    seed: int
    procs: Processes = field(default_factory=Processes)

    def setup(self, fault: str | None):
        rng = random.Random(self.seed)
        self.work = Path(tempfile.mkdtemp(prefix="faultline-lab-"))
        (self.work / "logs").mkdir()
        (self.work / "out").mkdir()
        self.chain = draw_chain(rng, self.args.services)
        for svc in self.chain:
            svc.log_file = str(self.work / "logs" / f"{svc.name}.log")
        self.fault = fault
        self.target = self.caller = None
        if fault:
            where = FAULTS[fault]["where"]
            if where == "callee":
                index = rng.randrange(1, len(self.chain))
            elif where == "caller":
                index = rng.randrange(0, len(self.chain) - 1)
            else:
                index = rng.randrange(0, len(self.chain))
            self.target = self.chain[index]
            self.caller = self.chain[index - 1] if index > 0 else None
            if fault == "close-wait":
                self.target.nofile = CLOSE_WAIT_NOFILE
            if fault == "listen-overflow":
                self.target.backlog = OVERFLOW_BACKLOG
            if fault == "time-wait":
                # Several calls per request, as a caller that fetches a list item by item: the
                # storm reaches thousands of TIME_WAIT sockets within a minute at 20 req/s.
                self.target.fanout = max(self.target.fanout, 3)
            if fault == "slow" and self.caller is not None:
                self.target.slow_by_ms = (round(self.args.slow_by * 1000) if self.args.slow_by
                                          else 3 * self.caller.timeout_ms)
        self.web, self.grpc, self.otlp = free_port(), free_port(), free_port()
        self.dns = free_port(socket.SOCK_DGRAM)
        config = self.work / "faultline.toml"
        config.write_text(agent_config(self.work, self.web, self.grpc, self.otlp, self.chain))
        self.api = Api(f"http://127.0.0.1:{self.web}")

    def out(self, name: str) -> tuple[Path, Path]:
        return self.work / "out" / f"{name}.stdout", self.work / "out" / f"{name}.stderr"

    def start_agent(self) -> None:
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        self.agent = self.procs.start(
            "faultline", [str(self.binary), "run", "--config", str(self.work / "faultline.toml")],
            *self.out("faultline"), env=env)

        def healthy():
            if self.agent.poll() is not None:
                raise LabError(f"faultline exited with {self.agent.returncode}:\n"
                               + self.out("faultline")[1].read_text(errors="replace")[-3000:])
            return self.api.get("/api/v1/health")[0] == 200
        wait_until("faultline health", START_DEADLINE_SECS, healthy)

    def start_service(self, svc: Service) -> subprocess.Popen:
        proc = self.procs.start(svc.name, service_argv(self.labsvc, svc, self.otlp, self.dns),
                                *self.out(svc.name))

        def healthy():
            if proc.poll() is not None:
                raise LabError(f"{svc.name} exited with {proc.returncode}:\n"
                               + self.out(svc.name)[1].read_text(errors="replace")[-3000:])
            return http_json(f"http://127.0.0.1:{svc.admin_port}/healthz", timeout=1)[0] == 200
        wait_until(f"{svc.name} health", START_DEADLINE_SECS, healthy)
        return proc

    def start_chain(self) -> None:
        if not getattr(self, "dns_started", False):
            self.procs.start("dns", [str(self.labsvc), "-dns", f"127.0.0.1:{self.dns}"], *self.out("dns"))
            self.dns_started = True
        self.service_procs = {}
        for svc in reversed(self.chain):
            self.service_procs[svc.name] = self.start_service(svc)
        self.traffic = Traffic(self.chain[0].port, self.chain[0], self.args.rps, self.args.workers, self.seed)
        self.traffic.start()

    def stop_chain(self) -> None:
        """A drained stop of the whole chain (a deploy going away): traffic stops first, then
        each service from the edge down, gracefully."""
        self.traffic.paused.set()
        wait_until("edge drained", EDGE_TIMEOUT_SECS + 5, lambda: self.traffic.todo.empty())
        self.traffic.stop()
        self.traffic = None
        for svc in self.chain:
            self.procs.stop(self.service_procs[svc.name])
        self.service_procs = {}

    def start_noise(self) -> None:
        """Two other programs of the node churning loopback sockets (once per run)."""
        if getattr(self, "noise_ports", None):
            return
        self.noise_ports = [free_port() for _ in range(2)]
        for i, port in enumerate(self.noise_ports):
            self.procs.start(f"noise{i}", [str(self.labsvc), "-noise", f"127.0.0.1:{port}"], *self.out(f"noise{i}"))

    def lead_in(self) -> list[dict]:
        """With `--agent-lead`: the node's life before the chain starts for good (see the module
        documentation). Returns what happened, with times."""
        lead = self.args.agent_lead or 0.0
        if lead <= 0:
            return []
        events = []
        self.start_noise()
        events.append({"event": "noise started", "unix_ms": now_ms()})
        time.sleep(lead / 3)
        self.start_chain()
        events.append({"event": "first deploy started", "unix_ms": now_ms()})
        log(f"lead: first deploy of the chain up; stopped in {lead / 3:.0f} s")
        time.sleep(lead / 3)
        self.stop_chain()
        events.append({"event": "first deploy stopped", "unix_ms": now_ms()})
        log(f"lead: first deploy stopped; the chain starts again in {lead / 3:.0f} s")
        time.sleep(lead / 3)
        return events

    def inject(self, fault: str, svc: Service) -> int:
        if fault == "crash":
            proc = self.service_procs[svc.name]
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            return now_ms()
        status, body = http_json(f"http://127.0.0.1:{svc.admin_port}/fault?kind={fault}", method="POST")
        if status != 200:
            raise LabError(f"injecting {fault} into {svc.name}: HTTP {status} {body}")
        return now_ms()

    def dropped_spans(self) -> list[str]:
        notes = []
        for svc in self.chain:
            text = self.out(svc.name)[1].read_text(errors="replace")
            notes += [line for line in text.splitlines() if "dropped" in line]
        return notes

    def cleanup(self) -> None:
        if getattr(self, "traffic", None) is not None:
            self.traffic.stop()
        self.procs.stop_all()
        if self.args.keep:
            log(f"kept {self.work}")
        elif getattr(self, "work", None) is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def chain_json(chain: list[Service]) -> list[dict]:
    keep = ("name", "port", "admin_port", "route", "logger", "fanout", "timeout_ms", "timeout_style",
            "nofile", "backlog", "slow_by_ms")
    return [{k: v for k, v in asdict(s).items() if k in keep} for s in chain]


def trace_origin(api: Api, trace_id: str):
    status, chain = api.get(f"/api/v1/traces/{trace_id}")
    if status != 200 or not isinstance(chain, dict):
        return None
    origin = chain.get("error_origin_span_id")
    culprit = chain.get("culprit")
    found = {"trace_id": trace_id, "service": None, "span": None, "kind": None, "message": None,
             "culprit": culprit.get("service") if isinstance(culprit, dict) else None,
             "culprit_headline": culprit.get("headline") if isinstance(culprit, dict) else None}
    for span in chain.get("spans") or []:
        if span.get("span_id") == origin:
            found.update({"service": span.get("service"), "span": span.get("name"),
                          "kind": span.get("kind"), "message": span.get("status_message")})
    return found


def incident_view(incident: dict) -> dict:
    """The fields of an incident the table shows, read defensively (the API is new)."""
    culprit = incident.get("culprit")
    if isinstance(culprit, dict):
        culprit_name = culprit.get("service") or culprit.get("name")
    else:
        culprit_name = culprit
    hints = incident.get("hints") or []
    hint = None
    if hints and isinstance(hints[0], dict):
        hint = hints[0].get("rule_id") or hints[0].get("title")
    counters = incident.get("counters") or []
    counter = None
    if counters and isinstance(counters[0], dict):
        anomaly = counters[0].get("anomaly")
        counter = row_label(anomaly if isinstance(anomaly, dict) else counters[0])
    hint_ids = [h.get("rule_id") or h.get("title") for h in hints if isinstance(h, dict)]
    return {"id": incident.get("id"), "culprit": culprit_name, "hint": hint, "hints": hint_ids,
            "top_counter": counter,
            "failures": incident.get("failures"),
            "title": incident.get("title") or incident.get("summary"),
            "onset_unix_ms": incident.get("onset_unix_ms") or incident.get("started_unix_ms")}


def run_fault(run: Run, fault: str) -> dict:
    spec = FAULTS[fault]
    args = run.args
    run.setup(fault)
    target, caller = run.target, run.caller
    log(f"{fault}: chain " + " -> ".join(f"{s.name}:{s.port}({s.logger})" for s in run.chain)
        + f"; target {target.name}; data in {run.work}")
    run.start_agent()
    lead = run.lead_in()
    run.start_chain()
    log(f"{fault}: baseline {args.baseline:.0f} s")
    time.sleep(args.baseline)
    baseline = run.traffic.snapshot()
    before = mechanics(run)
    # What the agent raised before the fault (a node with no fault should show none).
    earlier_incidents = [incident_view(i) for i in run.api.incidents() or []]
    injected = run.inject(fault, target)
    log(f"{fault}: injected into {target.name}")

    result: dict = {
        "fault": fault, "seed": run.seed, "chain": chain_json(run.chain), "target": target.name,
        "caller_of_target": caller.name if caller else None, "where": spec["where"],
        "expected_culprit": target.name, "expected_counter": spec["counter"], "expected_hint": spec["hint"],
        "baseline_secs": args.baseline, "injected_unix_ms": injected,
        "agent_lead_secs": args.agent_lead, "lead": lead, "incidents_before_fault": earlier_incidents,
    }
    onset = None if spec["errors"] else injected
    first_answer = None
    answer_kind = None
    incidents_api = None
    top_incident = None
    top_pattern = None
    seen_at: dict = {}  # pattern id -> the first poll (Unix ms) that listed it
    first_incident = None
    # The first poll at which the top incident showed the fault's hint, and at which the hint
    # led it: the issue asks for the hint within 10 s of onset, not by the end of the window.
    hint_shown_at = None
    hint_first_at = None
    seen_incidents: dict = {}  # incident id -> the first poll's view of it
    # Incidents first listed after the injection whose onset is earlier than the fault: a
    # counter's wobble before the fault that the fault's group took in backdates its onset,
    # and the fresh filter above would read that as "no incident".
    backdated: dict = {}
    listed_before = {str(i.get("id")) for i in earlier_incidents}
    deadline = time.monotonic() + args.observe
    while time.monotonic() < deadline:
        polled = now_ms()
        if onset is None:
            first_failure = next((o for o in run.traffic.snapshot() if o.start_ms >= injected and failed(o)), None)
            if first_failure is not None:
                onset = first_failure.end_ms
        incidents = run.api.incidents()
        incidents_api = incidents_api or (incidents is not None)
        fresh_incidents = [i for i in (incidents or [])
                           if (incident_view(i)["onset_unix_ms"] or polled) >= injected - 1000]
        if fresh_incidents:
            top_incident = incident_view(fresh_incidents[0])
            first_incident = first_incident or polled
            if spec["hint"] in top_incident["hints"]:
                hint_shown_at = hint_shown_at or polled
            if top_incident["hints"][:1] == [spec["hint"]]:
                hint_first_at = hint_first_at or polled
        for i in fresh_incidents:
            seen_incidents.setdefault(str(i.get("id")), {"seen_unix_ms": polled, **incident_view(i)})
        for i in incidents or []:
            key = str(i.get("id"))
            if key not in listed_before and key not in seen_incidents:
                backdated.setdefault(key, {"seen_unix_ms": polled, **incident_view(i)})
        listed = [c for c in run.api.clusters(emerging=False) if c.get("first_seen_unix_ms", 0) >= injected - 1000]
        for c in listed:
            seen_at.setdefault(c.get("id"), polled)
        emerging = [c for c in listed if c.get("emergence")]
        if emerging:
            top_pattern = emerging[0]
        if first_answer is None and (fresh_incidents or emerging):
            first_answer = polled
            answer_kind = "incident" if fresh_incidents else "pattern"
        time.sleep(POLL_SECS)

    at_end = mechanics(run)
    heal = None
    recurrence = None
    if args.recur and (not args.recur_only or fault in args.recur_only):
        heal = watch_heal(run, target, top_incident, args.watch_end, stop_at=args.recur)
        recurrence = watch_recurrence(run, fault, target, top_incident, heal)
    elif args.heal:
        heal = watch_heal(run, target, top_incident, args.watch_end)
    # Counts: stop the traffic, then read the patterns until their counts stop moving.
    run.traffic.stop()
    outcomes = run.traffic.snapshot()
    with open(run.work / "out" / "traffic.jsonl", "w") as f:
        for o in outcomes:
            f.write(json.dumps(asdict(o)) + "\n")
    after = [o for o in outcomes if o.start_ms >= injected]
    failed_after = [o for o in after if failed(o)]
    fresh: list[dict] = []
    last_total = None
    for _ in range(30):
        fresh = [c for c in run.api.clusters(emerging=False) if c.get("first_seen_unix_ms", 0) >= injected - 1000]
        total = sum(c.get("total_count") or 0 for c in fresh)
        if fresh and total == last_total:
            break
        last_total = total
        time.sleep(1.0)
    by_id = {c.get("id"): c for c in fresh}
    if top_pattern is not None:
        top_pattern = by_id.get(top_pattern.get("id"), top_pattern)
    matching = [c for c in fresh if any(t.lower() in (c.get("canonical_template") or "").lower() for t in spec["text"])]
    fault_pattern = max(matching, key=lambda c: c.get("total_count") or 0) if matching else None
    moved = None
    if top_pattern is not None:
        status, moved = run.api.get(f"/api/v1/clusters/{top_pattern['id']}/moved")
    elif top_incident is not None:
        # A fault of counters only (a storm, a leak before any error): what moved with its
        # incident, as its page shows it (its own counters first).
        status, detail = run.api.get(f"/api/v1/incidents/{top_incident['id']}")
        moved = detail.get("moved") if status == 200 and isinstance(detail, dict) else None
    origins = [trace_origin(run.api, o.trace_id) for o in failed_after[-3:] if o.trace_id]
    origins = [o for o in origins if o]
    final_emerging = [c for c in run.api.clusters(emerging=True)
                      if c.get("first_seen_unix_ms", 0) >= injected - 1000]

    if args.keep:
        # What the agent answered at the end, for reading a verdict after the run.
        dump = {"incidents": run.api.get("/api/v1/incidents")[1],
                "patterns": [run.api.get(f"/api/v1/clusters/{c.get('id')}")[1] for c in fresh],
                "traces": [run.api.get(f"/api/v1/traces/{o.trace_id}")[1] for o in failed_after[-3:] if o.trace_id],
                # What moved with the top pattern, in full (the result keeps its first rows).
                "moved": moved,
                # The counters' per-second history: what a recorded fixture of a verdict is cut from.
                "counters": run.api.get("/api/v1/counters")[1]}
        (run.work / "out" / "answer.json").write_text(json.dumps(dump, indent=1))

    failed_count = len(failed_after)
    count = fault_pattern.get("total_count") if fault_pattern else None
    # The top incident's failed requests once the counts settled: one count per failure
    # across its patterns (a hung callee fails a request in more than one way).
    incident_failures = None
    if top_incident is not None:
        # A fault that came back as an incident of its own failed its requests in two.
        counted = {top_incident["id"]}
        if recurrence and recurrence.get("incident") and recurrence["incident"]["how"] == "new incident":
            counted.add(recurrence["incident"]["id"])
        for i in run.api.incidents() or []:
            if i.get("id") in counted:
                incident_failures = (incident_failures or 0) + (i.get("failures") or 0)
            if i.get("id") == top_incident["id"]:
                top_incident["failures"] = i.get("failures")

    def pattern_json(c):
        if c is None:
            return None
        status, detail = run.api.get(f"/api/v1/clusters/{c.get('id')}")
        culprit = detail.get("culprit") if isinstance(detail, dict) else None
        if culprit is None and isinstance(detail, dict):
            culprit = (detail.get("summary") or {}).get("culprit")
        return {
            "id": c.get("id"), "template": c.get("canonical_template"), "total_count": c.get("total_count"),
            "services": c.get("services"), "first_seen_unix_ms": c.get("first_seen_unix_ms"),
            "culprit": culprit.get("service") if isinstance(culprit, dict) else culprit,
            "stack_frame": ((detail.get("stack") or {}).get("top_frame")
                            if isinstance(detail, dict) else None),
        }
    result.update({
        "onset_unix_ms": onset,
        "onset_kind": "first failed request" if spec["errors"] else "injection",
        "requests": {
            "baseline": len(baseline), "baseline_failed": sum(map(failed, baseline)),
            "after": len(after), "after_failed": failed_count, "skipped_ticks": run.traffic.skipped,
            "failure_examples": sorted({o.error or f"HTTP {o.status}" for o in failed_after})[:3],
        },
        "first_answer_secs": round((first_answer - onset) / 1000, 2) if first_answer and onset else None,
        "first_answer_kind": answer_kind,
        "first_incident_secs": round((first_incident - onset) / 1000, 2) if first_incident and onset else None,
        # Seconds from onset to the first poll whose top incident showed / led with the
        # fault's hint (None: never within the window).
        "hint_shown_secs": round((hint_shown_at - onset) / 1000, 2) if hint_shown_at and onset else None,
        "hint_first_secs": round((hint_first_at - onset) / 1000, 2) if hint_first_at and onset else None,
        "top_pattern": pattern_json(top_pattern),
        "fault_pattern": pattern_json(fault_pattern),
        # Every new pattern carrying the fault's error, summed: a failure counted in two
        # patterns (a log line and its span apart) shows here as twice the failed requests.
        "fault_patterns_total": sum(c.get("total_count") or 0 for c in matching),
        "fault_pattern_seen_secs": (round((seen_at[fault_pattern.get("id")] - onset) / 1000, 2)
                                    if fault_pattern and onset and fault_pattern.get("id") in seen_at else None),
        "count_over_failed": round(count / failed_count, 3) if count is not None and failed_count else None,
        "incident_failures": incident_failures,
        "incident_failures_over_failed": (round(incident_failures / failed_count, 3)
                                          if incident_failures is not None and failed_count else None),
        "emerging_patterns": [{"template": short(c.get("canonical_template")), "count": c.get("total_count"),
                               "services": c.get("services")} for c in final_emerging[:8]],
        "trace_origins": origins,
        "moved": [whose(row_label(r), run.chain) for r in moved_rows(moved)[:3]],
        "moved_raw": moved,
        "incidents_api": bool(incidents_api),
        "top_incident": top_incident,
        # Every incident with an onset after the injection, the top one too: a second one is a
        # stray answer beside the fault's.
        "incidents_seen": list(seen_incidents.values()),
        # New after the fault but dated before it (not counted as an answer above).
        "incidents_backdated": [dict(v, onset_before_fault_secs=round((injected - (v["onset_unix_ms"] or injected)) / 1000, 2))
                                for k, v in backdated.items() if k not in seen_incidents],
        "dropped_spans": run.dropped_spans(),
        "mechanics": {"before": before, "end": at_end},
        "heal": heal,
        "recurrence": recurrence,
    })
    result["verdict"] = verdict(result)
    return result


def watch_heal(run: "Run", target: Service, top: dict | None, limit: float,
               stop_at: str | None = None) -> dict:
    """Switches the fault off (traffic goes on) and polls the top incident every POLL_SECS for
    up to `limit` seconds: when it said "recovering" and when it ended, counted from the heal,
    with what it said then; with `stop_at` "recovering", no longer than that. With --keep, the
    counters document at the end goes to out/counters-after-heal.json (a recorded fixture's
    source)."""
    try:
        healed = run.inject("none", target)
        how = "switch"
        log(f"heal: {target.name} switched back to no fault")
    except LabError as e:
        # Its admin port no longer answers (a close-wait leak that ran out of fds): heal it as
        # an SRE would, by restarting it.
        log(f"heal: {e}; restarting {target.name}")
        run.procs.stop(run.service_procs[target.name])
        healed = now_ms()
        run.service_procs[target.name] = run.start_service(target)
        how = "restart"
    out: dict = {"healed_unix_ms": healed, "healed_by": how, "incident": top["id"] if top else None,
                 "recovering_secs": None, "recovering_since_unix_ms": None, "ended_secs": None,
                 "ended_unix_ms": None, "states": [], "reopened": False, "new_incidents": []}
    if top is None:
        return out
    listed = {str(i.get("id")) for i in run.api.incidents() or []}
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        polled = now_ms()
        incidents = run.api.incidents() or []
        for i in incidents:
            key = str(i.get("id"))
            if key not in listed:
                listed.add(key)
                out["new_incidents"].append({"secs": round((polled - healed) / 1000, 2), **incident_view(i)})
        inc = next((i for i in incidents if i.get("id") == top["id"]), None)
        if inc is None:
            out["states"].append({"secs": round((polled - healed) / 1000, 2), "state": "gone"})
            break
        state = inc.get("state") or ("active" if inc.get("active") else "ended")
        if not out["states"] or out["states"][-1]["state"] != state:
            out["states"].append({"secs": round((polled - healed) / 1000, 2), "state": state,
                                  "moving": [c["anomaly"]["label"] for c in inc.get("counters") or []
                                             if c.get("moving_away")]})
            log(f"heal: +{(polled - healed) / 1000:.1f} s {state}")
        if state == "recovering" and out["recovering_secs"] is None:
            out["recovering_secs"] = round((polled - healed) / 1000, 2)
            out["recovering_since_unix_ms"] = inc.get("recovering_since_unix_ms")
            if stop_at == "recovering":
                break
        if inc.get("reopened_unix_ms"):
            out["reopened"] = True
        if not inc.get("active"):
            out["ended_secs"] = round((polled - healed) / 1000, 2)
            out["ended_unix_ms"] = inc.get("ended_unix_ms")
            out["recovering_since_unix_ms"] = inc.get("recovering_since_unix_ms")
            out["failures"] = inc.get("failures")
            break
        time.sleep(POLL_SECS)
    if run.args.keep:
        status, counters = run.api.get("/api/v1/counters")
        (run.work / "out" / "counters-after-heal.json").write_text(json.dumps(counters))
    return out


def watch_recurrence(run: "Run", fault: str, target: Service, first: dict | None, heal: dict) -> dict:
    """The fault comes back (see the module documentation): once the heal reached the state
    `--recur` names and `--recur-wait` seconds passed, injects `fault` into `target` again and
    polls the API for `--observe` seconds. Returns when and how the second occurrence was
    answered: the first poll at which an incident is active that is the first occurrence's
    incident (active again or reopened) or one whose onset is after the new injection, with its
    view, and which of the three the agent's rules expect."""
    spec = FAULTS[fault]
    wanted = run.args.recur
    reached = heal.get("ended_secs" if wanted == "ended" else "recovering_secs")
    out: dict = {"after": wanted, "wait_secs": run.args.recur_wait, "state_reached": reached is not None,
                 "injected_unix_ms": None, "onset_unix_ms": None, "answer_secs": None,
                 "incident": None, "state_at_injection": None, "expected_how": None}
    if first is None or reached is None:
        log(f"recur: the first incident never reached '{wanted}'; not injected again")
        return out
    time.sleep(run.args.recur_wait)
    was = next((i for i in run.api.incidents() or [] if i.get("id") == first["id"]), None)
    out["state_at_injection"] = (was or {}).get("state") or ("ended" if was is None else None)
    stopped = (was or {}).get("recovering_since_unix_ms") or heal.get("recovering_since_unix_ms")
    before_ids = {str(i.get("id")) for i in run.api.incidents() or []}
    again = run.inject(fault, target)
    out["injected_unix_ms"] = again
    log(f"recur: {fault} injected into {target.name} again ({out['state_at_injection']} "
        f"{(again - heal['healed_unix_ms']) / 1000:.1f} s after the heal)")
    onset = None if spec["errors"] else again
    if spec["errors"]:
        # The agent's rules (diagnosis/src/incident/recovery.rs): a pattern failing again while
        # its incident recovers makes it active again; within a minute of its last failure
        # after it ended, reopens it; later, it is a new incident. A counter's change is
        # judged by whether it came back, which the lab does not see: not expected here.
        if out["state_at_injection"] == "recovering":
            out["expected_how"] = "active again"
        elif stopped is not None:
            out["expected_how"] = "reopened" if again - stopped <= 60_000 else "new incident"
    deadline = time.monotonic() + run.args.observe
    seen_states: list = []
    hint_first_at = None
    while time.monotonic() < deadline:
        polled = now_ms()
        if onset is None:
            first_failure = next((o for o in run.traffic.snapshot() if o.start_ms >= again and failed(o)), None)
            if first_failure is not None:
                onset = first_failure.end_ms
        incidents = run.api.incidents() or []
        mine = next((i for i in incidents if i.get("id") == first["id"]), None)
        state = (mine or {}).get("state")
        if not seen_states or seen_states[-1]["state"] != state:
            seen_states.append({"secs": round((polled - again) / 1000, 2), "state": state,
                                "reopened_unix_ms": (mine or {}).get("reopened_unix_ms")})
        if out["incident"] is None:
            for i in incidents:
                same = i.get("id") == first["id"]
                fresh = str(i.get("id")) not in before_ids and (incident_view(i)["onset_unix_ms"] or polled) >= again - 1000
                if i.get("state", "active") != "active" or not (same or fresh):
                    continue
                if same:
                    reopened = i.get("reopened_unix_ms")
                    how = "reopened" if reopened and reopened >= again - 1000 else "active again"
                else:
                    how = "new incident"
                out["incident"] = {"how": how, "seen_unix_ms": polled, "reopened_unix_ms": i.get("reopened_unix_ms"),
                                   "listed_first": i is incidents[0], **incident_view(i)}
                log(f"recur: {how} after {(polled - again) / 1000:.1f} s: {out['incident']['culprit']} "
                    f"/ {out['incident']['hint']}")
                break
        if out["incident"] is not None:
            # The answer as it stands at the end of the window: a counter is raised seconds
            # after the first error (a rate needs its points), as in the first occurrence.
            now_view = next((i for i in incidents if i.get("id") == out["incident"]["id"]), None)
            if now_view is not None:
                out["incident_at_end"] = incident_view(now_view)
                if hint_first_at is None and out["incident_at_end"]["hints"][:1] == [spec["hint"]]:
                    hint_first_at = polled
        time.sleep(POLL_SECS)
    out["onset_unix_ms"] = onset
    out["states"] = seen_states
    if out["incident"] is not None and onset is not None:
        out["answer_secs"] = round((out["incident"]["seen_unix_ms"] - onset) / 1000, 2)
    # Seconds from the second onset to the first poll at which the answering incident led
    # with the fault's hint (negative: before the first failed request).
    out["hint_first_secs"] = (round((hint_first_at - onset) / 1000, 2)
                              if hint_first_at is not None and onset is not None else None)
    after = [o for o in run.traffic.snapshot() if o.start_ms >= again]
    out["requests_after"] = len(after)
    out["failed_after"] = sum(map(failed, after))
    return out


def whose(label: str, chain: list[Service]) -> str:
    """A counter label with the lab service whose port it names, for the reader of the table
    (`CLOSE-WAIT :38517` -> `CLOSE-WAIT :38517 [ledger]`); other ports are not the lab's."""
    for svc in chain:
        if label.endswith(f":{svc.port}"):
            return f"{label} [{svc.name}]"
    if ":" in label and label.rsplit(":", 1)[1].isdigit():
        return f"{label} [not the lab's]"
    return label


def verdict(r: dict) -> dict:
    """What the issue's judging asks, answered from the measurements (None: cannot be judged)."""
    within = r["first_answer_secs"] is not None and r["first_answer_secs"] <= ANSWER_WINDOW_SECS
    if r["onset_kind"] == "injection":
        # Nothing fails: only an incident answers; a new pattern would be a wrong answer.
        within = within and r["first_answer_kind"] == "incident"
    if r["incidents_api"]:
        # With incidents, the answer the issue judges is the top incident.
        first = r.get("first_incident_secs")
        within = first is not None and first <= ANSWER_WINDOW_SECS
    origins = [o.get("culprit") or o["service"] for o in r["trace_origins"] if o.get("culprit") or o.get("service")]
    if r["incidents_api"]:
        culprit = (r["top_incident"] or {}).get("culprit")
        hints = (r["top_incident"] or {}).get("hints") or []
        first_hint = r.get("hint_first_secs")
        return {"answer_within_10s": within, "culprit_named": culprit,
                "culprit_ok": culprit == r["expected_culprit"],
                # The fault's hint shown on the top incident, and whether it leads (at the
                # end of the window: "eventually").
                "hint_ok": r["expected_hint"] in hints,
                "hint_first": bool(hints) and hints[0] == r["expected_hint"],
                # The criterion: the hint leads the top incident within 10 s of onset.
                "hint_first_within_10s": first_hint is not None and first_hint <= ANSWER_WINDOW_SECS,
                "count_ok": count_ok_of(r), "counter_ok": counter_ok_of(r),
                **recurrence_verdict(r)}
    if r["top_incident"] and r["top_incident"].get("culprit"):
        culprit = r["top_incident"]["culprit"]
    elif (r.get("fault_pattern") or {}).get("culprit"):
        culprit = r["fault_pattern"]["culprit"]
    elif origins:
        culprit = max(set(origins), key=origins.count)
    else:
        culprit = None
    return {"answer_within_10s": within, "culprit_named": culprit,
            "culprit_ok": None if culprit is None else culprit == r["expected_culprit"],
            "count_ok": count_ok_of(r), "counter_ok": counter_ok_of(r)}


def recurrence_verdict(r: dict) -> dict:
    """With --recur: the second occurrence judged as the first (answered within 10 s of its
    onset by an active incident, culprit, hint shown and first) and whether the incident is
    the one the agent's rules expect (active again / reopened / new; None where not expected)."""
    rec = r.get("recurrence")
    if not rec:
        return {}
    inc = rec.get("incident") or {}
    hints = inc.get("hints") or []
    secs = rec.get("answer_secs")
    top = (rec.get("incident_at_end") or inc).get("top_counter") or ""
    counter = r["expected_counter"]
    return {"again_within_10s": secs is not None and secs <= ANSWER_WINDOW_SECS,
            "again_culprit_ok": inc.get("culprit") == r["expected_culprit"],
            "again_hint_ok": r["expected_hint"] in hints,
            "again_hint_first": bool(hints) and hints[0] == r["expected_hint"],
            # The same at the end of the window, where the first occurrence is judged: an
            # incident active again leads at first with the hints of its first occurrence's
            # evidence (a restarted leak's CLOSE-WAIT back at 0) until the new climb is judged.
            "again_hint_first_at_end": (rec.get("incident_at_end") or inc).get("hints", [None])[:1]
            == [r["expected_hint"]],
            # The hint leads the answering incident within 10 s of the second onset.
            "again_hint_first_within_10s": rec.get("hint_first_secs") is not None
            and rec["hint_first_secs"] <= ANSWER_WINDOW_SECS,
            "again_how_ok": None if rec.get("expected_how") is None or not inc
            else inc.get("how") == rec["expected_how"],
            # The fault's counter the top related signal at the end of the window, as for the
            # first occurrence.
            "again_counter_ok": None if not counter
            else counter.lower().replace("_", "") in top.lower().replace("_", "").replace("-", "")}


def count_ok_of(r: dict):
    """The failures counted once against the failed requests: the top incident's count where
    the agent has incidents (a fault that fails requests in two ways has two patterns, each with
    its part), else the fault's pattern's."""
    ratio = r.get("incident_failures_over_failed")
    if not r["incidents_api"] or ratio is None:
        ratio = r["count_over_failed"]
    if ratio is None:
        return None
    return abs(ratio - 1.0) <= 0.01


def counter_ok_of(r: dict):
    if not r["expected_counter"]:
        return None
    top = (r["top_incident"] or {}).get("top_counter") or (r["moved"][0] if r["moved"] else "")
    return bool(top) and r["expected_counter"].lower().replace("_", "") in top.lower().replace("_", "").replace("-", "")


def run_quiet(run: Run, minutes: float) -> dict:
    run.setup(None)
    log(f"quiet: chain " + " -> ".join(f"{s.name}:{s.port}({s.logger})" for s in run.chain)
        + f"; {minutes} min; data in {run.work}")
    run.start_agent()
    lead = run.lead_in()
    run.start_chain()
    run.start_noise()
    started = now_ms()
    end = time.monotonic() + minutes * 60
    restarts = []
    restart_at = [time.monotonic() + minutes * 60 * f for f in (0.4, 0.75)]
    raised_incidents: dict = {}
    incidents_api = False
    raised_patterns: dict = {}
    while time.monotonic() < end:
        if restart_at and time.monotonic() >= restart_at[0]:
            restart_at.pop(0)
            restarts.append(restart_edge(run))
        incidents = run.api.incidents()
        incidents_api = incidents_api or incidents is not None
        for i in incidents or []:
            raised_incidents.setdefault(str(i.get("id")), {"seen_unix_ms": now_ms(), **incident_view(i)})
        for c in run.api.clusters(emerging=True):
            raised_patterns.setdefault(c.get("id"), {"seen_unix_ms": now_ms(),
                                                     "template": short(c.get("canonical_template")),
                                                     "count": c.get("total_count"),
                                                     "emergence": c.get("emergence")})
        time.sleep(2.0)
    run.traffic.stop()
    outcomes = run.traffic.snapshot()
    with open(run.work / "out" / "traffic.jsonl", "w") as f:
        for o in outcomes:
            f.write(json.dumps(asdict(o)) + "\n")
    failures = [o for o in outcomes if failed(o)]
    return {"mode": "quiet", "minutes": minutes, "seed": run.seed, "chain": chain_json(run.chain),
            "agent_lead_secs": run.args.agent_lead, "lead": lead,
            "started_unix_ms": started, "requests": len(outcomes),
            "failed_requests": len(failures),
            "failure_examples": sorted({o.error or f"HTTP {o.status}" for o in failures})[:3],
            "restarts": restarts,
            "incidents_api": incidents_api,
            "incidents_raised": list(raised_incidents.values()),
            "emerging_patterns_raised": list(raised_patterns.values()),
            "dropped_spans": run.dropped_spans()}


def restart_edge(run: Run) -> dict:
    """A drained restart of the edge service: the driver (its load balancer) stops sending,
    the service stops gracefully and starts again, traffic resumes."""
    edge = run.chain[0]
    run.traffic.paused.set()
    wait_until("edge drained", EDGE_TIMEOUT_SECS + 5, lambda: run.traffic.todo.empty())
    time.sleep(EDGE_TIMEOUT_SECS / 10)
    at = now_ms()
    proc = run.service_procs[edge.name]
    run.procs.stop(proc)
    run.service_procs[edge.name] = run.start_service(edge)
    run.traffic.generation += 1
    run.traffic.paused.clear()
    log(f"quiet: restarted {edge.name}")
    return {"service": edge.name, "unix_ms": at}


# ---------------------------------------------------------------------------------------------
# Report


def mechanic_note(r: dict) -> str:
    """What the node itself showed of the fault (read by the driver, not the agent)."""
    m = r.get("mechanics") or {}
    b, e = m.get("before") or {}, m.get("end") or {}

    def change(get) -> str:
        try:
            return f"{get(b)}→{get(e)}"
        except (KeyError, TypeError):
            return "?"
    fault = r["fault"]
    if fault == "time-wait":
        return "TIME_WAIT on callee " + change(lambda x: x["callee_port"]["TIME_WAIT"])
    if fault == "close-wait":
        return ("CLOSE_WAIT " + change(lambda x: x["target_port"]["CLOSE_WAIT"])
                + ", fds " + change(lambda x: x["target_fds"]))
    if fault == "goroutine-leak":
        return "goroutines " + change(lambda x: x["target_goroutines"])
    if fault == "listen-overflow":
        return "ListenOverflows " + change(lambda x: x["listen_overflows"])
    if fault == "reset":
        return "EstabResets " + change(lambda x: x["estab_resets"])
    if fault in ("eof", "slow"):
        return "TIME_WAIT on target " + change(lambda x: x["target_port"]["TIME_WAIT"])
    return ""


def recurrence_note(rec: dict | None) -> str:
    """The second occurrence in a few words: when, how (expected how), by what."""
    if not rec:
        return "-"
    inc = rec.get("incident")
    if not rec.get("injected_unix_ms"):
        return f"not injected again (never {rec['after']})"
    if not inc:
        return f"at {rec['state_at_injection']}: no incident"
    return (f"at {rec['state_at_injection']}: {inc['how']} (expected {rec.get('expected_how') or '-'}) "
            f"{dash(rec.get('answer_secs'))} s, {inc['culprit']} / {inc['hint']}")


def dash(value) -> str:
    return "-" if value is None else str(value)


def table(results: list[dict]) -> str:
    head = ["fault", "target", "answer s", "top pattern", "fault pattern/incident count/failed", "trace says starts in",
            "moved (top)", "incident culprit / hint", "other incidents", "verdict", "node showed", "came back"]
    rows = []
    for r in results:
        tp = r.get("top_pattern") or {}
        origins = [o.get("culprit") or o["service"] or "?" for o in r.get("trace_origins") or []]
        inc = r.get("top_incident")
        v = r["verdict"]
        marks = []
        for key, label in (("answer_within_10s", "10s"), ("culprit_ok", "culprit"), ("hint_ok", "hint"),
                           ("hint_first", "hint1st"), ("hint_first_within_10s", "hint1st10s"),
                           ("count_ok", "count"), ("counter_ok", "counter"),
                           ("again_within_10s", "again10s"), ("again_culprit_ok", "again-culprit"),
                           ("again_hint_first", "again-hint1st"), ("again_hint_first_at_end", "again-hint1st-end"),
                           ("again_hint_first_within_10s", "again-hint1st10s"),
                           ("again_how_ok", "again-how"),
                           ("again_counter_ok", "again-counter")):
            if key not in v:
                continue
            value = v.get(key)
            marks.append(f"{label}:" + ("-" if value is None else ("ok" if value else "NO")))
        count = (r.get("fault_pattern") or {}).get("total_count")
        rows.append([
            r["fault"], r["target"],
            "-" if r["first_answer_secs"] is None else f"{r['first_answer_secs']:.1f}",
            short(f"{tp.get('template')} ({tp.get('total_count')})" if tp else "-", 60),
            f"{count if count is not None else '-'}/{dash(r.get('incident_failures'))}/{r['requests']['after_failed']}",
            ",".join(origins) or "-",
            short("; ".join(r.get("moved") or []) or "-", 50),
            "-" if not r["incidents_api"] else (f"{inc['culprit']} / {inc['hint']}" if inc else "none"),
            short("; ".join(f"{i['culprit']}: {i['title']}" for i in r.get("incidents_seen") or []
                            if not inc or i["id"] != inc["id"]) or "-", 70),
            " ".join(marks),
            mechanic_note(r),
            recurrence_note(r.get("recurrence")),
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(REPO / "target" / "debug" / "faultline"),
                        help="the faultline binary (default: target/debug/faultline)")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), help="fault to run (repeatable)")
    parser.add_argument("--all", action="store_true", help="run every fault in turn")
    parser.add_argument("--quiet-minutes", type=float, help="run this long with no fault and background noise")
    parser.add_argument("--agent-lead", type=float, default=0.0,
                        help="start the agent this many seconds before the chain, with noise from its start "
                             "and a first deploy of the chain started and stopped in between (a node that lives)")
    parser.add_argument("--baseline", type=float, default=120.0, help="seconds of traffic before the fault")
    parser.add_argument("--observe", type=float, default=30.0, help="seconds of polling after the fault")
    parser.add_argument("--heal", action="store_true",
                        help="after the observe window, switch the fault off (traffic goes on) and watch the "
                             "top incident: seconds from the heal to 'recovering' and to 'ended'")
    parser.add_argument("--recur", choices=["recovering", "ended"],
                        help="after the observe window, heal the fault, wait until the top incident is "
                             "recovering (or has ended), then inject the same fault again and observe again")
    parser.add_argument("--recur-wait", type=float, default=0.0,
                        help="with --recur, wait this many seconds more before injecting again "
                             "(past a minute after an end, the agent raises a new incident)")
    parser.add_argument("--recur-only", action="append", choices=sorted(FAULTS), default=[],
                        help="with --recur, bring back only this fault (repeatable; default: every "
                             "fault); the others are observed once, as without --recur")
    parser.add_argument("--watch-end", type=float, default=90.0,
                        help="with --heal or --recur, watch the incident this long at most (s)")
    parser.add_argument("--rps", type=float, default=20.0, help="requests per second to the edge")
    parser.add_argument("--slow-by", type=float,
                        help="the slow fault's stall per request (s; default: 3 x its caller's timeout): "
                             "above the timeout by more than 10 s, its callers' abandoned connections "
                             "climb in CLOSE-WAIT for as long as a leak's would before they level off")
    parser.add_argument("--workers", type=int, default=48, help="traffic worker threads")
    parser.add_argument("--services", type=int, default=3, help="services in the chain (>= 3)")
    parser.add_argument("--seed", type=int, help="seed of the random chain (default: random)")
    parser.add_argument("--gopath", default=os.environ.get("FAULTLINE_LAB_GOPATH", "/usr/share/gocode"),
                        help="GOPATH holding Gin's sources (Debian: /usr/share/gocode)")
    parser.add_argument("--json-out", help="write every result as a JSON array to this file")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (logs, config)")
    args = parser.parse_args()
    if args.services < 3:
        parser.error("--services must be at least 3")
    faults = sorted(FAULTS, key=list(FAULTS).index) if args.all else (args.fault or [])
    if not faults and args.quiet_minutes is None:
        parser.error("give --fault NAME, --all or --quiet-minutes N")
    binary = Path(args.binary)
    if not binary.is_file():
        parser.error(f"{binary}: no such binary (build it with `cargo build -p faultline`)")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)

    results: list[dict] = []
    build_dir = Path(tempfile.mkdtemp(prefix="faultline-lab-build-"))
    code = 0
    try:
        labsvc = build_go(build_dir, args.gopath)
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        for i, fault in enumerate(faults):
            run = Run(args=args, binary=binary, labsvc=labsvc, seed=seed + i)
            try:
                result = run_fault(run, fault)
            finally:
                run.cleanup()
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "moved_raw"}), flush=True)
        if args.quiet_minutes is not None:
            run = Run(args=args, binary=binary, labsvc=labsvc, seed=seed + len(faults))
            try:
                quiet = run_quiet(run, args.quiet_minutes)
            finally:
                run.cleanup()
            results.append(quiet)
            print(json.dumps(quiet), flush=True)
    except LabError as e:
        log(f"lab failed: {e}")
        code = 2
    except KeyboardInterrupt:
        log("interrupted; every process stopped")
        code = 130
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    fault_results = [r for r in results if "fault" in r]
    if fault_results:
        print(table(fault_results))
    return code


if __name__ == "__main__":
    sys.exit(main())
