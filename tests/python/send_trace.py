#!/usr/bin/env python3
"""Sends a three-service trace (frontend -> orders -> payments, failing in payments) with the
official OpenTelemetry Python SDK and OTLP exporters, as instrumented services would.

The trace context crosses services through W3C `traceparent` headers (inject/extract), each
service has its own TracerProvider and LoggerProvider with its own `service.name`, logs are
written through the stdlib `logging` bridge inside the active span, and payments also writes a
JSON line to a log file (the file faultline would tail).

Prints one JSON object: the trace id and the SERVER span id of each service (hex).

Usage: send_trace.py --protocol grpc|http --endpoint HOST:PORT --log-file PATH
"""

import argparse
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporters(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(endpoint=f"http://{endpoint}/v1/traces"),
        OTLPLogExporter(endpoint=f"http://{endpoint}/v1/logs"),
    )


class Service:
    def __init__(self, name, protocol, endpoint):
        resource = Resource.create({"service.name": name})
        span_exporter, log_exporter = exporters(protocol, endpoint)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        self.tracer = self.tracer_provider.get_tracer(name)
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        self.log = logging.getLogger(name)
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=self.logger_provider))

    def shutdown(self):
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--log-file", required=True)
    args = parser.parse_args()

    frontend = Service("frontend", args.protocol, args.endpoint)
    orders = Service("orders", args.protocol, args.endpoint)
    payments = Service("payments", args.protocol, args.endpoint)
    ids = {}

    def hexid(span):
        ctx = span.get_span_context()
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    def payments_charge(headers):
        with payments.tracer.start_as_current_span(
            "POST /charge", context=extract(headers), kind=SpanKind.SERVER
        ) as span:
            trace_id, span_id = hexid(span)
            ids["trace_id"], ids["payments"] = trace_id, span_id
            error = ConnectionResetError(
                "read tcp 10.0.0.7:41234->10.0.0.9:5432: read: connection reset by peer"
            )
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, "charge failed: connection reset by peer"))
            payments.log.error("charge failed: read: connection reset by peer")
            with open(args.log_file, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps(
                        {
                            "level": "error",
                            "msg": "charge failed",
                            "error": "read: connection reset by peer",
                            "trace_id": trace_id,
                            "span_id": span_id,
                        }
                    )
                    + "\n"
                )
            return 502

    def orders_create(headers):
        with orders.tracer.start_as_current_span(
            "POST /orders", context=extract(headers), kind=SpanKind.SERVER
        ) as span:
            ids["orders"] = hexid(span)[1]
            with orders.tracer.start_as_current_span("POST payments", kind=SpanKind.CLIENT) as call:
                outgoing = {}
                inject(outgoing)
                status = payments_charge(outgoing)
                call.set_status(Status(StatusCode.ERROR, f"{status} from payments"))
            orders.log.warning("payment call failed: %d", status)
            span.set_status(Status(StatusCode.ERROR, "upstream payments failed"))
            span.set_attribute("http.response.status_code", 502)
            return 502

    with frontend.tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        ids["frontend"] = hexid(root)[1]
        with frontend.tracer.start_as_current_span("POST orders", kind=SpanKind.CLIENT) as call:
            outgoing = {}
            inject(outgoing)
            status = orders_create(outgoing)
            call.set_status(Status(StatusCode.ERROR, f"{status} from orders"))
        root.set_status(Status(StatusCode.ERROR, "checkout failed"))

    for service in (payments, orders, frontend):
        service.shutdown()
    json.dump(ids, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
