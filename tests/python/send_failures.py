#!/usr/bin/env python3
"""Sends failed requests of a two-service chain (frontend -> orders) with the official
OpenTelemetry Python SDK and OTLP/HTTP exporter, each reported the way real services report
one failure several times, and writes the services' JSON log lines to a log file (the file
faultline tails).

Scenarios:

- `echoes`: orders fails on its own (its database connection is reset). Orders logs the error
  and records it on its SERVER span; frontend logs the echo and records it on its CLIENT span.
  One failure, two log lines, two error spans.
- `callee-closes`: orders closes the connection without a response and logs nothing; its
  SERVER span's status stays unset. Frontend's CLIENT span fails with Go's
  `Get "http://127.0.0.1:<port>/orders/<n>": EOF`, carries the peer attributes
  (`server.address`, `server.port`) and frontend logs the same error.
- `callee-closes-unlinked`: as `callee-closes`, but orders does not take part in the trace
  (no context propagation) and the client span has no peer attributes: the only link from
  the error to orders is the `127.0.0.1:<port>` in its text and orders' SERVER spans of other
  requests, which name the port it listens on.

Prints one JSON object: the trace ids sent, the port orders "listens" on.

Usage: send_failures.py --endpoint HOST:PORT --log-file PATH --scenario NAME --requests N
       [--port P]
"""

import argparse
import json
import sys

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


class Service:
    def __init__(self, name, endpoint, log_file):
        resource = Resource.create({"service.name": name})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}/v1/traces"))
        )
        self.tracer = self.provider.get_tracer(name)
        self.name = name
        self.log_file = log_file

    def log(self, span, msg, error):
        ctx = span.get_span_context()
        line = {
            "level": "error",
            "msg": msg,
            "service": self.name,
            "error": error,
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
        }
        with open(self.log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def shutdown(self):
        self.provider.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument(
        "--scenario", choices=["echoes", "callee-closes", "callee-closes-unlinked"], required=True
    )
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()

    frontend = Service("frontend", args.endpoint, args.log_file)
    orders = Service("orders", args.endpoint, args.log_file)
    port = args.port
    traces = []

    def orders_server(headers, n, linked):
        # Not linked: a fresh, empty context (None would mean the current one, the caller's).
        context = extract(headers) if linked else Context()
        with orders.tracer.start_as_current_span(
            "GET /orders/:id",
            context=context,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/orders/:id",
                "url.path": f"/orders/{n}",
                "server.address": "127.0.0.1",
                "server.port": port,
            },
        ) as span:
            if args.scenario == "echoes":
                error = "read tcp 127.0.0.1:41234->127.0.0.1:5432: read: connection reset by peer"
                span.set_status(Status(StatusCode.ERROR, f"query orders: {error}"))
                orders.log(span, "query failed", f"query orders: {error}")
                return error
            # The handler hijacks and closes the connection: nothing logged, status unset.
            return "EOF"

    for n in range(args.requests):
        with frontend.tracer.start_as_current_span(
            "GET /checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout"}
        ) as root:
            traces.append(format(root.get_span_context().trace_id, "032x"))
            unlinked = args.scenario == "callee-closes-unlinked"
            attributes = {"http.request.method": "GET"}
            if not unlinked:
                attributes.update({"server.address": "127.0.0.1", "server.port": port})
            with frontend.tracer.start_as_current_span(
                "GET", kind=SpanKind.CLIENT, attributes=attributes
            ) as call:
                headers = {}
                inject(headers)
                inner = orders_server(headers, n, linked=not unlinked)
                error = f'Get "http://127.0.0.1:{port}/orders/{n}": {inner}'
                call.set_status(Status(StatusCode.ERROR, error))
            frontend.log(root, "order lookup failed", error)
            root.set_status(Status(StatusCode.ERROR))
            root.set_attribute("http.response.status_code", 502)

    if args.scenario == "callee-closes-unlinked":
        # A request that worked: orders' SERVER span names the port it listens on.
        with orders.tracer.start_as_current_span(
            "GET /healthz",
            kind=SpanKind.SERVER,
            attributes={"server.address": "127.0.0.1", "server.port": port, "url.path": "/healthz"},
        ):
            pass

    for service in (orders, frontend):
        service.shutdown()
    json.dump({"traces": traces, "port": port}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
