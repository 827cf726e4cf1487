#!/usr/bin/env python3
"""Writes the first seeds of the fuzz corpora (see README.md); the corpora in corpus/ grew from
them under the fuzzer and were minimised (`cargo fuzz cmin`). Run as `fuzz/make_seeds.py [STATE_JSON [COUNTERS_JSON [DATA_DIR]]]`
with the shared data next to the repository (`../shared/data`); it only adds files, named by
content hash.

Log lines are small excerpts of the shared data: the errcorpus dev set (one line per logger
style) and the Loghub-2k raw logs (https://github.com/logpai/loghub, see
../shared/data/loghub2k/README.md for their source and licence), plus hand-written multi-line
records. OTLP requests are built with the opentelemetry-proto Python package.
"""

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(ROOT, "..", "..", "shared", "data")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(ROOT, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def data_file(*parts):
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        sys.exit(f"missing {path}: the seeds need the shared data next to the repository")
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


MULTILINE = [
    # A Go panic with its goroutine dump.
    "panic: runtime error: invalid memory address or nil pointer dereference\n"
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b4f2a]\n\n"
    "goroutine 42 [running]:\n"
    "main.(*Server).handle(0xc0000a4000, {0x7f1c40, 0xc0001b2000})\n"
    "\t/app/server.go:88 +0x2a\n"
    "created by net/http.(*Server).Serve in goroutine 1\n"
    "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4\n"
    "exit status 2\n",
    # net/http's recovered panic.
    "2024/03/11 08:22:20 http: panic serving 127.0.0.1:50632: boom\n"
    "goroutine 7 [running]:\nnet/http.(*conn).serve.func1()\n\t/usr/lib/go/src/net/http/server.go:1868 +0xb9\n",
    # A Java trace with a cause.
    "2024-03-11 08:22:20,123 ERROR [main] c.e.App - request failed\n"
    "java.io.IOException: Connection reset by peer\n"
    "\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)\n"
    "Caused by: java.net.SocketException: Broken pipe\n\t... 12 more\n",
    # A Python traceback.
    "Traceback (most recent call last):\n"
    '  File "/app/main.py", line 10, in <module>\n    main()\n'
    "ConnectionRefusedError: [Errno 111] Connection refused\n",
    # Gin's request line and its error lines, Windows line ends.
    '[GIN] 2024/03/11 - 08:22:18 | 500 |   47.977857ms |       127.0.0.1 | GET      "/api/v1/products"\r\n'
    "Error #01: dial tcp 127.0.0.1:5432: connect: connection refused\r\n"
    "Error #02: sql: database is closed\r\n",
    # syslog RFC 5424 with a JSON payload, klog, nginx access and error.
    '<11>1 2024-03-11T08:22:18.003Z node-1 checkout 1234 - - {"level":"error","msg":"payment failed","error":"EOF"}\n'
    'E0311 08:22:18.003123    1234 controller.go:114] "sync failed" err="context deadline exceeded" pod="a/b"\n'
    '127.0.0.1 - - [11/Mar/2024:08:22:18 +0000] "GET /api HTTP/1.1" 502 157 "-" "curl/8.0"\n'
    "2024/03/11 08:22:18 [error] 31#31: *5 connect() failed (111: Connection refused) while connecting to upstream\n",
    # Times the parser must not believe: 1970, year 3000, a Unix stamp of 0.
    '{"level":"error","ts":0,"msg":"clock not set"}\n'
    'time="1970-01-01T00:00:01Z" level=error msg="boot" err="EOF"\n'
    '{"level":"error","time":"3000-01-01T00:00:00Z","msg":"future"}\n',
    # A NUL hole left by copytruncate, then a line.
    "before\n" + "\0" * 64 + "after the hole level=error err=EOF\n",
]


def log_lines():
    truth = data_file("errcorpus", "dev.truth.tsv")[1:]
    lines = data_file("errcorpus", "dev.log")
    seen = set()
    for row in truth:
        number, root, style = row.split("\t")
        if (root, style) in seen or len(seen) >= 40:
            continue
        seen.add((root, style))
        write("log_lines", b"\x00\x02" + lines[int(number) - 1].encode() + b"\n")
    for system in ["Linux", "OpenSSH", "Apache", "HDFS", "Hadoop", "Spark", "Zookeeper", "OpenStack"]:
        raw = data_file("loghub2k", f"{system}.raw.log")
        write("log_lines", b"\x01\x02" + "\n".join(raw[:4]).encode() + b"\n")
    for zone, record in enumerate(MULTILINE):
        write("log_lines", bytes([zone, 2]) + record.encode())
        write("log_lines", bytes([zone, 0]) + record.encode())


def mask():
    truth = data_file("errcorpus", "dev.truth.tsv")[1:]
    lines = data_file("errcorpus", "dev.log")
    by_root = {}
    for row in truth:
        number, root, _ = row.split("\t")
        by_root.setdefault(root, []).append(lines[int(number) - 1])
    for root, group in sorted(by_root.items()):
        write("mask", "\n".join(group[:3]) + "\n")
    for system in ["Linux", "HDFS", "OpenStack"]:
        write("mask", "\n".join(data_file("loghub2k", f"{system}.content.txt")[:5]) + "\n")
    write("mask", MULTILINE[0].replace("\n\t", "\n\t", 1))


TRACE = "5b8efff798038103d269b633813fc60c"


def otlp():
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    def resource(name):
        return resource_pb2.Resource(attributes=[common_pb2.KeyValue(
            key="service.name", value=common_pb2.AnyValue(string_value=name))])

    trace_id = bytes.fromhex(TRACE)
    spans = [
        trace_pb2.Span(trace_id=trace_id, span_id=bytes.fromhex("eee19b7ec3c1b174"), name="GET /api",
                       kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=1_767_225_600_000_000_000,
                       end_time_unix_nano=1_767_225_600_200_000_000,
                       status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="EOF"),
                       attributes=[common_pb2.KeyValue(key="http.response.status_code",
                                                       value=common_pb2.AnyValue(int_value=502))]),
        trace_pb2.Span(trace_id=trace_id, span_id=bytes.fromhex("eee19b7ec3c1b175"),
                       parent_span_id=bytes.fromhex("eee19b7ec3c1b174"), name="SELECT",
                       kind=trace_pb2.Span.SPAN_KIND_CLIENT, start_time_unix_nano=1_767_225_600_010_000_000,
                       end_time_unix_nano=1_767_225_600_190_000_000,
                       events=[trace_pb2.Span.Event(name="exception", attributes=[common_pb2.KeyValue(
                           key="exception.message",
                           value=common_pb2.AnyValue(string_value="dial tcp 10.0.0.1:5432: connect: connection refused"))])]),
    ]
    traces = trace_pb.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource("checkout"), scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])
    logs = logs_pb.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource("checkout"), scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(
            time_unix_nano=1_767_225_600_000_000_000, severity_number=17, severity_text="ERROR",
            body=common_pb2.AnyValue(string_value='{"level":"error","msg":"x","error":"EOF"}'),
            trace_id=trace_id, span_id=bytes.fromhex("eee19b7ec3c1b174"))])])])
    gauge = metrics_pb2.Metric(name="go.goroutine.count", gauge=metrics_pb2.Gauge(data_points=[
        metrics_pb2.NumberDataPoint(time_unix_nano=1_767_225_600_000_000_000, as_int=1234)]))
    other = metrics_pb2.Metric(name="http.server.duration", histogram=metrics_pb2.Histogram(data_points=[
        metrics_pb2.HistogramDataPoint(count=3, sum=1.5, bucket_counts=[1, 2], explicit_bounds=[0.5])]))
    metrics = metrics_pb.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource("checkout"), scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[gauge, other])])])
    # Selector byte: signal = b % 3, compression = b / 3 % 3 (0 plain, 1 gzip made by the harness).
    for signal, message in enumerate([traces, logs, metrics]):
        for compression in (0, 1):
            write("otlp_protobuf", bytes([signal + 3 * compression]) + message.SerializeToString())
    json_traces = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "a"}}]}, "scopeSpans": [{"spans": [{
            "traceId": TRACE, "spanId": "eee19b7ec3c1b174", "parentSpanId": "eee19b7ec3c1b175",
            "name": "x", "kind": 2, "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225600200000000", "status": {"code": 2, "message": "m"},
            "attributes": [{"key": "k", "value": {"arrayValue": {"values": [{"intValue": "3"}, {
                "kvlistValue": {"values": [{"key": "z", "value": {"bytesValue": "AAEC"}}]}}]}}}],
            "events": [{"name": "exception", "attributes": [
                {"key": "exception.message", "value": {"stringValue": "e"}}]}]}]}]}]}
    json_logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "severityNumber": "SEVERITY_NUMBER_ERROR", "timeUnixNano": "1767225600000000000",
        "body": {"stringValue": "{\"level\":\"error\",\"msg\":\"x\"}"}, "traceId": TRACE,
        "attributes": [{"key": "d", "value": {"doubleValue": 1.5}}]}]}]}]}
    json_metrics = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "a"}}]}, "scopeMetrics": [{"metrics": [
            {"name": "process.runtime.go.goroutines", "gauge": {"dataPoints": [
                {"asInt": "12", "timeUnixNano": "1767225600000000000"}]}},
            {"name": "x", "sum": {"dataPoints": [{"asDouble": 1.0}], "isMonotonic": True,
                                   "aggregationTemporality": 2}}]}]}]}
    for signal, message in enumerate([json_traces, json_logs, json_metrics]):
        for compression in (0, 1):
            write("otlp_json", bytes([signal + 3 * compression]) + json.dumps(message).encode())


def states(path):
    """A `state.json` the agent wrote (run it over a few error lines with a rotation in
    between, stop it, pass the file): whole, with contradicting totals, cut short, and its
    `tail` and `clustering` parts."""
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    whole = json.dumps(state, separators=(",", ":"))
    write("state", whole)
    write("state", whole[:5000])
    contradicting = json.loads(whole)
    contradicting["totals"]["error_records"] = 10**9
    write("state", json.dumps(contradicting, separators=(",", ":")))
    write("tail_state", json.dumps(state["tail"], separators=(",", ":")))
    write("cluster_snapshot", json.dumps(state["clustering"], separators=(",", ":")))


# "Now" of the `counters` harness (harness/counters.rs NOW_UNIX_MS).
COUNTERS_NOW_UNIX_MS = 1_796_500_000_000


def counters(path):
    """A `counters.json` the agent wrote (stop an agent that ran a minute or more, pass the
    file): its times moved to end 2 s before the harness's fixed "now" (by whole minutes, so
    the minute times stay minute starts), whole, with its points cut to the last few, with a
    series whose runs do not add up, and cut short."""
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    shift = (COUNTERS_NOW_UNIX_MS - 2_000 - saved["saved_unix_ms"]) // 60_000 * 60_000
    saved["saved_unix_ms"] += shift
    history = saved["counters"]
    history["second_times"] = [t + shift for t in history["second_times"]]
    history["minute_times"] = [t + shift for t in history["minute_times"]]
    whole = json.dumps(saved, separators=(",", ":"))
    write("counters", whole)
    write("counters", whole[:3000])
    few = json.loads(whole)
    few["counters"]["series"] = few["counters"]["series"][:4]
    write("counters", json.dumps(few, separators=(",", ":")))
    if few["counters"]["series"]:
        few["counters"]["series"][0]["seconds"].append([1.0, 3])
        write("counters", json.dumps(few, separators=(",", ":")))


def counter_files(data_dir):
    """`counters.bin` and `counters-minutes.log` an agent wrote into `data_dir` (run it three
    minutes or more, so that minutes closed and were appended): as the `counter_files`
    harness reads its input (a flags byte, the length of counters.bin's part, that part,
    then the log's). Both files, each alone, with their checksums set right by the harness
    (after a change of a byte in their content), the log cut in the middle of a record, and
    counters.bin cut short. The harness starts 5 s after the times they name, so their
    times are kept."""
    def read(name):
        with open(os.path.join(data_dir, name), "rb") as f:
            return f.read()

    seconds, minutes = read("counters.bin"), read("counters-minutes.log")

    def seed(flags, seconds, minutes):
        write("counter_files", bytes([flags]) + len(seconds).to_bytes(4, "little") + seconds + minutes)

    seed(3, seconds, minutes)
    seed(1, seconds, b"")
    seed(2, b"", minutes)
    seed(3, seconds, minutes[: len(minutes) - 3])
    seed(3, seconds[: len(seconds) // 2], minutes)
    # A byte of content changed, the checksums set right again: the decoders see it.
    if len(seconds) > 40:
        changed = bytearray(seconds)
        changed[20] ^= 0x01
        seed(7, bytes(changed), minutes)
    if len(minutes) > 40:
        changed = bytearray(minutes)
        changed[30] ^= 0x01
        seed(7, seconds, bytes(changed))


CONFIGS = [
    '[web]\nlisten = "127.0.0.1:0"\ntoken = "web-token-0123456789abcdef"\n[web.tls]\n'
    'cert_file = "cert.pem"\nkey_file = "key.pem"\n[otlp]\ngrpc_listen = "127.0.0.1:0"\n'
    'http_listen = "127.0.0.1:0"\ntoken = "otlp-token-fedcba9876543210"\n',
    '[export]\notlp_endpoint = "https://127.0.0.1:4318"\nprotocol = "http/protobuf"\n'
    'ca_file = "ca.pem"\ntimeout_ms = 2000\n[export.headers]\n'
    'authorization = "Bearer upstream-token-0123456789abcdef"\n',
    '[[logs]]\nglob = "/var/log/app/*.log"\nservice = "checkout"\n[[tasks]]\nname = "api"\n'
    'url = "http://127.0.0.1:6060/debug/pprof/goroutine?debug=1"\n[tail]\nmax_line_bytes = 4096\n',
    '[web]\nlisten = "0.0.0.0:7070"\n',
    '[web]\ntoken = "x"\n',
    '[otlp]\ngrpc_listen = "127.0.0.1:4317"\nhttp_listen = "127.0.0.1:4317"\n',
    'data_dir = 3\n[web]\nlisten = "127.0.0.1:7070"\nunknown = true\n',
    '[web.connections]\nmax_connections = 0\n',
]


def configs():
    """The annotated example configuration and a few written for the tests' cases."""
    with open(os.path.join(ROOT, "..", "agent", "faultline.example.toml"), encoding="utf-8") as f:
        write("config", f.read())
    for config in CONFIGS:
        write("config", config)


if __name__ == "__main__":
    log_lines()
    mask()
    otlp()
    configs()
    if len(sys.argv) > 1:
        states(sys.argv[1])
    if len(sys.argv) > 2:
        counters(sys.argv[2])
    if len(sys.argv) > 3:
        counter_files(sys.argv[3])
