#!/usr/bin/env python3
"""Steady cost and soak of the real agent: CPU (share of one core) and RSS of the release
binary under a steady, realistic load, for N minutes, with a baseline measured in the same run.

The load (one generator process, this script's child):
  * LINES lines/s (default 1,000) appended to three services' log files in the tailed
    directory, in the three styles the services write (JSON, logfmt, plain), about 5 % of them
    errors drawn from a handful of kinds with varying parameters (ids, ports, durations);
  * SPANS spans/s (default 1,000) as OTLP/HTTP JSON, traces of four spans across three
    services, about 2 % failing, sent in batches every 100 ms over one kept-alive connection
    (--connection-per-request: a new connection per batch and per task scrape, as the figures
    before 2026-12-05 20:00 UTC were taken). --batching sdk sends them as the OpenTelemetry
    SDKs' batch span processors do with their defaults instead: a request as soon as 512 spans
    are queued (OTEL_BSP_MAX_EXPORT_BATCH_SIZE), else 5 s (OTEL_BSP_SCHEDULE_DELAY) after the
    last one -- at 1,000 spans/s about two requests a second of 512 spans, not ten of 100.
    (Python's `BatchProcessor.emit` wakes its worker when the queue reaches the batch size;
    Rust's and Go's processors do the same.) Every figure says which shape it used;
    with --otlp grpc the same spans go as OTLP/gRPC protobuf over one channel, what the
    official SDKs' OTLP exporters send by default (needs Python's `grpcio` and
    `opentelemetry-proto`);
  * TASKS task targets (default 1; a Prometheus text page with a goroutine count each) the
    agent scrapes;
  * with --churn N, N loopback connections opened and closed per second (each leaves a socket
    in TIME-WAIT for a minute, so about 60 x N at any moment: --churn 170 keeps ~10,000),
    the socket churn of a busy node's other programs;
  * with --ports N, N new loopback listening ports a minute, each holding 40 connections for
    45 s and then closing them (TIME-WAIT for another minute): the comings and goings of other
    programs' services on a shared node, which give the agent's counter store new port
    series until its bound (the per-series cost of memory).
The agent runs with its default configuration apart from ports, data dir, the log glob and
those task targets: socket census on, default store bounds.

The baseline, in the same run on the same files: `tail -F` of the three log files into
/dev/null (the cheapest way to follow them), and the generator's own CPU.

Every SAMPLE seconds it reads utime+stime (/proc/PID/stat) and VmRSS (/proc/PID/status) of
the agent and of `tail -F`, and the agent's open fds. Figures exclude the first WARMUP
minutes. RSS growth is the least-squares slope of RSS over time after the warm-up, in MiB per
10 minutes.

At the end the generator is stopped first and says how many spans it sent; the script then
waits (at most 60 s) until the agent has counted every line written, and prints lost and
duplicated lines (lines in the files against `faultline_store_log_records_total`) and spans
(sent against `faultline_store_otlp_spans_accepted_total`).

The issue's long form: `--minutes 30 --warmup 5 --lines 2000 --spans 1000 --churn 170
--tasks 5` (about 10,000 sockets in TIME-WAIT).

Usage: scripts/reliability/soak.py [--minutes 30] [--warmup 5] [--lines 1000]
       [--spans 1000] [--churn 0] [--ports 0] [--tasks 1] [--sample 10] [--bin PATH]
       [--json OUT] [--connection-per-request] [--otlp http-json|grpc] [--batching 100ms|sdk]
       [--config AGENT.toml]
       [--agent-log RUST_LOG]
The binary defaults to $CARGO_TARGET_DIR/release/faultline, else target/release/faultline
(build it first: `cargo build --release -p faultline`).
"""

import argparse
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVICES = ["checkout", "orders", "inventory"]
# The OpenTelemetry SDKs' batch span processor defaults (the specification's
# OTEL_BSP_MAX_EXPORT_BATCH_SIZE and OTEL_BSP_SCHEDULE_DELAY; Python's `BatchSpanProcessor`,
# Rust's `BatchConfig`, Go's `BatchSpanProcessor` all use them): --batching sdk.
SDK_MAX_EXPORT_BATCH = 512
SDK_SCHEDULE_DELAY = 5.0
BATCHING = {
    "100ms": "a request every 100 ms",
    "sdk": f"SDK batching: {SDK_MAX_EXPORT_BATCH} spans a request, or {SDK_SCHEDULE_DELAY:g} s",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / (1024 * 1024)


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def binary(arg):
    if arg:
        return arg
    for target in [os.environ.get("CARGO_TARGET_DIR"), os.path.join(ROOT, "target")]:
        if target:
            path = os.path.join(target, "release", "faultline")
            if os.path.exists(path):
                return path
    sys.exit("no release binary: run `cargo build --release -p faultline` or pass --bin")


# ---------------------------------------------------------------- load generator (child)

ERRORS = [
    "upstream {svc} closed the connection: EOF after {ms}ms (order {id})",
    "dial tcp 10.0.{a}.{b}:{port}: connect: connection refused",
    "read tcp 10.0.{a}.{b}:{port}->10.0.0.9:8080: read: connection reset by peer",
    "context deadline exceeded (Client.Timeout exceeded while awaiting headers) after {ms}ms",
    "payment {id} declined: card expired",
]
INFOS = [
    "GET /api/orders/{id} 200 {ms}ms",
    "POST /api/checkout 201 {ms}ms",
    "cache hit for sku {id}",
    "reserved {n} items of sku {id}",
]


def fill(template, rng):
    return template.format(
        svc=rng.choice(SERVICES),
        ms=rng.randint(1, 900),
        id=rng.randint(10_000, 99_999),
        a=rng.randint(0, 9),
        b=rng.randint(1, 254),
        port=rng.choice([5432, 6379, 8081, 8082]),
        n=rng.randint(1, 9),
    )


def line(service, rng, now):
    error = rng.random() < 0.05
    message = fill(rng.choice(ERRORS if error else INFOS), rng)
    level = "error" if error else "info"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    trace = "%032x" % rng.getrandbits(128)
    style = SERVICES.index(service)
    if style == 0:
        return json.dumps({"time": stamp, "level": level, "msg": message, "trace_id": trace})
    if style == 1:
        return f'time={stamp} level={level} msg="{message}" trace_id={trace}'
    return f"{stamp} {level.upper()} {message}"


def span(trace, span_id, parent, name, kind, start, end, failed, rng):
    out = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [
            {"key": "http.response.status_code", "value": {"intValue": "502" if failed else "200"}}
        ],
        "status": {"code": 2, "message": fill(ERRORS[0], rng)} if failed else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def trace_spans(count, rng):
    """`count` spans (rounded down to whole traces) as (service, OTLP/JSON span) pairs: traces
    of four spans over three services."""
    out = []
    for _ in range(count // 4):
        trace = "%032x" % rng.getrandbits(128)
        ids = ["%016x" % rng.getrandbits(64) for _ in range(4)]
        now = time.time_ns()
        failed = rng.random() < 0.02
        out.append(("checkout", span(trace, ids[0], None, "GET /checkout", 2, now - 9_000_000,
                                     now, failed, rng)))
        out.append(("checkout", span(trace, ids[1], ids[0], "POST orders", 3, now - 8_000_000,
                                     now - 1_000_000, failed, rng)))
        out.append(("orders", span(trace, ids[2], ids[1], "POST /orders", 2, now - 7_000_000,
                                   now - 2_000_000, failed, rng)))
        out.append(("inventory", span(trace, ids[3], ids[2], "SELECT stock", 3,
                                      now - 6_000_000, now - 3_000_000, failed, rng)))
    return out


def trace_batch(pairs):
    """(service, span) pairs as one OTLP/JSON request, one resource per service."""
    by_service = {s: [] for s in SERVICES}
    for service, sp in pairs:
        by_service[service].append(sp)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": s}}]
                },
                "scopeSpans": [{"spans": spans}],
            }
            for s, spans in by_service.items()
            if spans
        ]
    }


def trace_batch_proto(batch):
    """The same request as OTLP/gRPC protobuf (`ExportTraceServiceRequest`) from the JSON form
    built by `trace_batch`."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    def value(v):
        if "intValue" in v:
            return common_pb2.AnyValue(int_value=int(v["intValue"]))
        return common_pb2.AnyValue(string_value=v["stringValue"])

    def attributes(kvs):
        return [common_pb2.KeyValue(key=kv["key"], value=value(kv["value"])) for kv in kvs]

    request = trace_service_pb2.ExportTraceServiceRequest()
    for rs in batch["resourceSpans"]:
        out = request.resource_spans.add(
            resource=resource_pb2.Resource(attributes=attributes(rs["resource"]["attributes"])))
        scope = out.scope_spans.add()
        for sp in rs["scopeSpans"][0]["spans"]:
            span_out = scope.spans.add(
                trace_id=bytes.fromhex(sp["traceId"]), span_id=bytes.fromhex(sp["spanId"]),
                name=sp["name"], kind=sp["kind"],
                start_time_unix_nano=int(sp["startTimeUnixNano"]),
                end_time_unix_nano=int(sp["endTimeUnixNano"]),
                attributes=attributes(sp["attributes"]),
                status=trace_pb2.Status(code=sp["status"]["code"],
                                        message=sp["status"].get("message", "")))
            if "parentSpanId" in sp:
                span_out.parent_span_id = bytes.fromhex(sp["parentSpanId"])
    return request


class GrpcExporter:
    """OTLP/gRPC trace export over one channel, as the SDKs' gRPC exporters keep one."""

    def __init__(self, address):
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        self.grpc = grpc
        self.channel = grpc.insecure_channel(address)
        self.stub = trace_service_pb2_grpc.TraceServiceStub(self.channel)

    def export(self, batch):
        try:
            self.stub.Export(trace_batch_proto(batch), timeout=10)
        except self.grpc.RpcError as e:
            raise OSError(f"gRPC {e.code()}") from None


class Goroutines(BaseHTTPRequestHandler):
    # Keep-alive, as a Go service's pprof or Prometheus page (net/http) answers the agent's
    # scrape once a second; HTTP/1.0 made it a new connection a second (with
    # --connection-per-request, still so).
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"# TYPE go_goroutines gauge\ngo_goroutines 42\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain; version=0.0.4")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def churn(per_second):
    """Opens and closes `per_second` loopback connections a second until the process ends: each
    leaves a socket in TIME-WAIT for a minute on the side that closed first. Paced every 100 ms
    against the wall clock; a connection that fails is skipped (the next tick tries again)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    address = listener.getsockname()

    def accept():
        while True:
            conn, _ = listener.accept()
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    start = time.monotonic()
    done = tick = 0
    while True:
        tick += 1
        due = start + tick * 0.1
        for _ in range(int(per_second * (due - start)) - done):
            try:
                socket.create_connection(address, timeout=1).close()
            except OSError:
                pass
            done += 1
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def port_churn(per_minute, stopping):
    """Opens a new loopback listening port every 60 / `per_minute` seconds with 40 connections
    to it, and closes each port's connections and listener 45 s after it opened, until
    `stopping` is set. At most about 0.75 x `per_minute` ports are open at once."""
    open_ports = []
    period = 60.0 / per_minute
    start = time.monotonic()
    tick = 0
    while not stopping.is_set():
        tick += 1
        try:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            clients = [socket.create_connection(listener.getsockname(), timeout=1)
                       for _ in range(40)]
            servers = [listener.accept()[0] for _ in clients]
            open_ports.append((time.monotonic() + 45, listener, clients + servers))
        except OSError as e:
            print(f"generator: port churn: {e}", file=sys.stderr)
        while open_ports and open_ports[0][0] <= time.monotonic():
            _, listener, conns = open_ports.pop(0)
            for conn in conns:
                conn.close()
            listener.close()
        pause = start + tick * period - time.monotonic()
        if pause > 0:
            stopping.wait(pause)
    for _, listener, conns in open_ports:
        for conn in conns:
            conn.close()
        listener.close()


def generate(args):
    """The load: runs until SIGTERM, then writes the spans it sent (accepted with HTTP 200)
    to `args.counts`. Paces itself every 100 ms against the wall clock."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    rng = random.Random(args.seed)
    files = {s: open(os.path.join(args.logs, f"{s}.log"), "a", buffering=1) for s in SERVICES}
    if args.connection_per_request:
        Goroutines.protocol_version = "HTTP/1.0"
    for port in args.task_port.split(","):
        server = ThreadingHTTPServer(("127.0.0.1", int(port)), Goroutines)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.churn > 0:
        threading.Thread(target=churn, args=(args.churn,), daemon=True).start()
    if args.ports > 0:
        threading.Thread(target=port_churn, args=(args.ports, stopping), daemon=True).start()
    host, port = args.otlp_http.rsplit(":", 1)
    grpc_exporter = GrpcExporter(args.otlp_grpc) if args.otlp == "grpc" else None
    # One connection kept alive, as the SDKs' OTLP/HTTP exporters do (Go's net/http, Java's
    # OkHttp, Python's requests session); --connection-per-request opens one per batch (the
    # load of the figures before 2026-12-05 20:00 UTC).
    conn = None
    requests = 0

    def export(pairs):
        """One export request; True when the agent accepted it."""
        nonlocal conn, requests
        requests += 1
        if grpc_exporter is not None:
            try:
                grpc_exporter.export(trace_batch(pairs))
                return True
            except OSError as e:
                print(f"generator: export failed: {e}", file=sys.stderr)
                return False
        body = json.dumps(trace_batch(pairs)).encode()
        ok = False
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("POST", "/v1/traces", body=body,
                         headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            ok = True
        except (OSError, http.client.HTTPException) as e:
            print(f"generator: export failed: {e}", file=sys.stderr)
            conn.close()
            conn = None
        if args.connection_per_request and conn is not None:
            conn.close()
            conn = None
        return ok

    start = time.monotonic()
    lines_done = spans_done = spans_sent = 0
    # --batching sdk: the spans ended but not yet exported, and when the last export went.
    queued = []
    last_export = start
    tick = 0
    while not stopping.is_set():
        tick += 1
        due = start + tick * 0.1
        elapsed = due - start
        want_lines = int(args.lines * elapsed) - lines_done
        now = time.time()
        for _ in range(want_lines):
            service = rng.choice(SERVICES)
            files[service].write(line(service, rng, now) + "\n")
        lines_done += want_lines
        want_spans = int(args.spans * elapsed) - spans_done
        if want_spans >= 4:
            pairs = trace_spans(want_spans, rng)
            spans_done += len(pairs)
            if args.batching == "100ms":
                if export(pairs):
                    spans_sent += len(pairs)
            else:
                queued.extend(pairs)
        if args.batching == "sdk":
            # Full batches at once; what is left when the schedule delay has passed.
            while len(queued) >= SDK_MAX_EXPORT_BATCH or (
                    queued and time.monotonic() - last_export >= SDK_SCHEDULE_DELAY):
                batch, queued = queued[:SDK_MAX_EXPORT_BATCH], queued[SDK_MAX_EXPORT_BATCH:]
                if export(batch):
                    spans_sent += len(batch)
                last_export = time.monotonic()
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    # The SDKs flush their queue on shutdown.
    while queued:
        batch, queued = queued[:SDK_MAX_EXPORT_BATCH], queued[SDK_MAX_EXPORT_BATCH:]
        if export(batch):
            spans_sent += len(batch)
    for f in files.values():
        f.close()
    with open(args.counts, "w") as f:
        json.dump({"lines": lines_done, "spans_sent": spans_sent,
                   "export_requests": requests, "seconds": time.monotonic() - start}, f)


# ---------------------------------------------------------------- the run


def slope_per_10min(points):
    """Least-squares slope of (seconds, MiB) points, in MiB per 10 minutes."""
    if len(points) < 2:
        return float("nan")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 600


def fmt(value):
    """A /metrics reading as an integer, `?` when the agent did not answer."""
    return "?" if value is None else f"{value:.0f}"


def by_minute(samples):
    """Per minute of the run: RSS min and max of its samples, and the counter store's series
    and points at its last sample, so that a slope driven by new series shows at once."""
    minutes = {}
    for s in samples:
        minutes.setdefault(int(s["t"] // 60), []).append(s)
    out = []
    for minute, rows in sorted(minutes.items()):
        rss = [r["agent_rss"] for r in rows]
        out.append((minute, min(rss), max(rss), rows[-1]["counter_series"],
                    rows[-1]["counter_points"]))
    return out


def metrics(base, *names):
    """The values of `faultline_store_<name>` for each of `names`, read from one scrape of
    `/metrics` (`None` for each when the agent did not answer or lacks it). One scrape per
    sample, as one Prometheus would: the agent's cost of a scrape is part of what is measured,
    and three scrapes every 10 s were about 7 % of it."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return [None for _ in names]
    found = {}
    for row in body.splitlines():
        key, _, value = row.rpartition(" ")
        if key.startswith("faultline_store_"):
            found[key[len("faultline_store_"):]] = float(value)
    return [found.get(name) for name in names]


def metric(base, name):
    return metrics(base, name)[0]


def account(base, generator, logs, counts_path):
    """Stops the generator, then waits (at most 60 s) until the agent has counted every line
    in the files; returns lines and spans written, counted, lost and duplicated."""
    generator.send_signal(signal.SIGTERM)
    generator.wait(timeout=30)
    with open(counts_path) as f:
        sent = json.load(f)
    written = 0
    for s in SERVICES:
        with open(os.path.join(logs, f"{s}.log"), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                written += block.count(b"\n")
    deadline = time.monotonic() + 60
    counted = metric(base, "log_records_total")
    while counted != written and time.monotonic() < deadline:
        time.sleep(0.5)
        counted = metric(base, "log_records_total")
    counted = int(counted or 0)
    accepted = int(metric(base, "otlp_spans_accepted_total") or 0)
    return {
        "lines_written": written,
        "lines_generated": sent["lines"],
        "lines_counted": counted,
        "lines_lost": max(written - counted, 0),
        "lines_duplicated": max(counted - written, 0),
        "spans_sent": sent["spans_sent"],
        "export_requests_per_s": sent["export_requests"] / max(sent["seconds"], 1e-9),
        "spans_accepted": accepted,
        "spans_lost": max(sent["spans_sent"] - accepted, 0),
        "spans_duplicated": max(accepted - sent["spans_sent"], 0),
    }


def run(args):
    exe = binary(args.bin)
    work = tempfile.mkdtemp(prefix="faultline-soak-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    for s in SERVICES:
        open(os.path.join(logs, f"{s}.log"), "w").close()
    web, grpc, http = free_port(), free_port(), free_port()
    tasks = [free_port() for _ in range(args.tasks)]
    base = f"http://127.0.0.1:{web}"
    task_args = []
    for i, port in enumerate(tasks):
        task_args += ["--task", f"app{i}=http://127.0.0.1:{port}/metrics"]
    agent = subprocess.Popen(
        [exe, "run", "--listen", f"127.0.0.1:{web}", "--otlp-grpc", f"127.0.0.1:{grpc}",
         "--otlp-http", f"127.0.0.1:{http}", "--data-dir", os.path.join(work, "data"),
         "--log", os.path.join(logs, "*.log")] + task_args
        + (["--config", args.config] if args.config else []),
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.stderr"), "w"),
        env={k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        | ({"RUST_LOG": args.agent_log} if args.agent_log else {}))
    children = [agent]
    try:
        deadline = time.monotonic() + 60
        while metric(base, "log_records_total") is None:
            if agent.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the agent did not come up; see {work}/agent.stderr")
            time.sleep(0.2)
        tail = subprocess.Popen(
            ["tail", "-q", "-n", "0", "-F"] + [os.path.join(logs, f"{s}.log") for s in SERVICES],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(tail)
        counts_path = os.path.join(work, "generator.json")
        generator = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--generate", "--logs", logs,
             "--otlp-http", f"127.0.0.1:{http}", "--otlp-grpc", f"127.0.0.1:{grpc}",
             "--otlp", args.otlp, "--batching", args.batching, "--counts", counts_path,
             "--task-port", ",".join(str(p) for p in tasks),
             "--lines", str(args.lines), "--spans", str(args.spans), "--seed", str(args.seed),
             "--churn", str(args.churn), "--ports", str(args.ports)]
            + (["--connection-per-request"] if args.connection_per_request else []))
        children.append(generator)

        started = time.monotonic()
        end = started + args.minutes * 60
        warm = started + args.warmup * 60
        procs = {"agent": agent.pid, "tail": tail.pid, "generator": generator.pid}
        last = {k: (time.monotonic(), cpu_seconds(p)) for k, p in procs.items()}
        samples = []
        records0 = None
        while time.monotonic() < end:
            time.sleep(args.sample)
            if agent.poll() is not None:
                sys.exit(f"the agent exited with {agent.returncode}; see {work}/agent.stderr")
            now = time.monotonic()
            row = {"t": now - started}
            for k, p in procs.items():
                cpu = cpu_seconds(p)
                t0, c0 = last[k]
                row[f"{k}_cpu"] = (cpu - c0) / (now - t0) * 100
                last[k] = (now, cpu)
            row["agent_rss"] = rss_mib(agent.pid)
            row["tail_rss"] = rss_mib(tail.pid)
            row["agent_fds"] = fds(agent.pid)
            records, row["counter_series"], row["counter_points"] = metrics(
                base, "log_records_total", "counter_series", "counter_points")
            row["records"] = records
            if now >= warm and records0 is None:
                records0 = (now, records)
            samples.append(row)
            if args.progress:
                print(
                    f"{row['t'] / 60:6.1f} min  agent {row['agent_cpu']:5.2f}% "
                    f"{row['agent_rss']:6.1f} MiB {row['agent_fds']} fds  "
                    f"counter series {fmt(row['counter_series'])} "
                    f"points {fmt(row['counter_points'])}  "
                    f"tail -F {row['tail_cpu']:5.2f}%  generator {row['generator_cpu']:5.1f}%",
                    file=sys.stderr, flush=True)
        records1 = (time.monotonic(), metric(base, "log_records_total"))
        fds_end = fds(agent.pid)
        accounting = account(base, generator, logs, counts_path)
        spans = metric(base, "otlp_spans_accepted_total")
    finally:
        for child in reversed(children):
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    steady = [s for s in samples if s["t"] >= args.warmup * 60]
    if len(steady) < 2:
        sys.exit("the run is too short for its warm-up: no steady samples")

    def med(key):
        return statistics.median(s[key] for s in steady)

    def top(key):
        return max(s[key] for s in steady)

    lines_per_s = None
    if records0 and records1[1] is not None and records0[1] is not None:
        lines_per_s = (records1[1] - records0[1]) / (records1[0] - records0[0])
    rss_points = [(s["t"], s["agent_rss"]) for s in steady]
    # The slope once the 15-minute per-sample ring is full, when a flat load should be flat.
    late = [(s["t"], s["agent_rss"]) for s in steady if s["t"] >= 15 * 60]
    report = {
        "otlp": args.otlp,
        "batching": args.batching,
        "tasks": args.tasks,
        "churn_per_s": args.churn,
        "ports_per_min": args.ports,
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"load {os.getloadavg()[0]:.1f} at the end",
        "binary": exe,
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "lines_per_s_asked": args.lines,
        "lines_per_s_counted": lines_per_s,
        "spans_per_s_asked": args.spans,
        "spans_accepted_total": spans,
        "agent_cpu_pct_median": med("agent_cpu"),
        "agent_cpu_pct_max": top("agent_cpu"),
        "tail_f_cpu_pct_median": med("tail_cpu"),
        "generator_cpu_pct_median": med("generator_cpu"),
        "agent_rss_mib_median": med("agent_rss"),
        "agent_rss_mib_max": top("agent_rss"),
        "agent_rss_mib_first": steady[0]["agent_rss"],
        "agent_rss_mib_last": steady[-1]["agent_rss"],
        "agent_rss_slope_mib_per_10min": slope_per_10min(rss_points),
        "agent_rss_slope_from_15min_mib_per_10min": slope_per_10min(late),
        "tail_f_rss_mib_median": med("tail_rss"),
        "agent_fds_max": top("agent_fds"),
        "agent_fds_median": med("agent_fds"),
        "agent_fds_end": fds_end,
        **accounting,
        "samples": samples,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    ratio = report["agent_cpu_pct_median"] / max(report["tail_f_cpu_pct_median"], 1e-9)
    print(f"machine: {report['machine']}")
    print(f"load: {args.lines} lines/s asked ({lines_per_s or float('nan'):.0f} counted), "
          f"{args.spans} spans/s ({args.otlp}, {BATCHING[args.batching]}), "
          f"{args.tasks} task target(s), churn {args.churn}/s, "
          f"{args.ports:g} new ports/min; "
          f"{args.minutes} min, first {args.warmup} min not counted")
    print("| process | CPU % of a core (median / max) | RSS MiB (median / max) |")
    print("|---|---|---|")
    print(f"| faultline | {report['agent_cpu_pct_median']:.2f} / {report['agent_cpu_pct_max']:.2f}"
          f" | {report['agent_rss_mib_median']:.1f} / {report['agent_rss_mib_max']:.1f} |")
    print(f"| tail -F (baseline) | {report['tail_f_cpu_pct_median']:.2f} / "
          f"{top('tail_cpu'):.2f} | {report['tail_f_rss_mib_median']:.1f} / "
          f"{top('tail_rss'):.1f} |")
    print(f"| load generator | {report['generator_cpu_pct_median']:.2f} / "
          f"{top('generator_cpu'):.2f} | - |")
    print(f"agent / tail -F CPU: {ratio:.1f}x")
    print(f"agent RSS after warm-up: {report['agent_rss_mib_first']:.1f} -> "
          f"{report['agent_rss_mib_last']:.1f} MiB, slope "
          f"{report['agent_rss_slope_mib_per_10min']:+.2f} MiB / 10 min; "
          f"fds median {report['agent_fds_median']} max {report['agent_fds_max']} "
          f"end {report['agent_fds_end']}")
    print(f"slope from minute 15 (the per-sample ring full): "
          f"{report['agent_rss_slope_from_15min_mib_per_10min']:+.2f} MiB / 10 min")
    print("| minute | agent RSS MiB (min-max) | counter series | counter points |")
    print("|---:|---|---:|---:|")
    for minute, low, high, series, points in by_minute(samples):
        print(f"| {minute} | {low:.1f}-{high:.1f} | {fmt(series)} | {fmt(points)} |")
    print(f"counter store after warm-up: {steady[0]['counter_series']} -> "
          f"{steady[-1]['counter_series']} series, {steady[0]['counter_points']} -> "
          f"{steady[-1]['counter_points']} points")
    print(f"lines: {report['lines_written']} written, {report['lines_counted']} counted, "
          f"{report['lines_lost']} lost, {report['lines_duplicated']} duplicated; spans: "
          f"{report['spans_sent']} sent, {report['spans_accepted']} accepted, "
          f"{report['spans_lost']} lost, {report['spans_duplicated']} duplicated "
          f"({report['export_requests_per_s']:.2f} export requests/s)")
    print(f"work dir (logs, agent stderr): {work}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--churn", type=int, default=0,
                        help="loopback connections opened and closed per second (default none)")
    parser.add_argument("--ports", type=float, default=0,
                        help="new listening ports a minute, each busy for 45 s (default none)")
    parser.add_argument("--tasks", type=int, default=1,
                        help="task targets the agent scrapes (default 1)")
    parser.add_argument("--sample", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bin")
    parser.add_argument("--json")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--connection-per-request", action="store_true",
                        help="a new connection for every OTLP batch and task scrape (default: "
                        "kept alive, as SDK exporters and Go's net/http do)")
    parser.add_argument("--otlp", choices=["http-json", "grpc"], default="http-json",
                        help="how the spans are sent: OTLP/HTTP JSON (default) or OTLP/gRPC "
                        "protobuf, the official SDKs' default")
    parser.add_argument("--batching", choices=sorted(BATCHING), default="100ms",
                        help="when the spans are sent: a request every 100 ms (default) or as "
                        "the OpenTelemetry SDKs' batch span processors do by default (a "
                        "request as soon as 512 spans are queued, else 5 s after the last)")
    parser.add_argument("--agent-log", help="RUST_LOG for the agent, whose log goes to the work "
                        "dir's agent.stderr (default: the agent's own default); e.g. "
                        "faultline_agent::diagnosis=trace logs each diagnosis pass with how it "
                        "read the counter store (counter_reads)")
    parser.add_argument("--config", help="a configuration file for the agent (default: none, "
                        "the default configuration)")
    # The generator child's own arguments.
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--logs", help=argparse.SUPPRESS)
    parser.add_argument("--otlp-http", help=argparse.SUPPRESS)
    parser.add_argument("--otlp-grpc", help=argparse.SUPPRESS)
    parser.add_argument("--task-port", help=argparse.SUPPRESS)
    parser.add_argument("--counts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
