#!/usr/bin/env python3
"""Exports one two-span trace with the official OpenTelemetry Python SDK's OTLP exporter over
TLS, with or without a bearer token, and reports what the exporter itself concluded.

The spans are made by a real TracerProvider (collected in memory), then handed to the real
OTLP exporter once, so that its result (SUCCESS or FAILURE) is the receiver's answer and not
a retry loop's.

Prints one JSON object: {"result": "SUCCESS"|"FAILURE", "trace_id": "<hex>"}.

Usage: send_with_token.py --protocol grpc|http --endpoint HOST:PORT --ca CERT.pem
                          [--token TOKEN] [--service NAME]
"""

import argparse
import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


def exporter(protocol, endpoint, ca, token):
    headers = {"authorization": f"Bearer {token}"} if token else None
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return OTLPSpanExporter(
            endpoint=f"https://{endpoint}",
            credentials=credentials,
            headers=headers,
            timeout=10,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=f"https://{endpoint}/v1/traces",
        certificate_file=ca,
        headers=headers,
        timeout=10,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token")
    parser.add_argument("--service", default="checkout")
    args = parser.parse_args()

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": args.service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(args.service)
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT):
            pass
        trace_id = format(root.get_span_context().trace_id, "032x")
    spans = memory.get_finished_spans()

    otlp = exporter(args.protocol, args.endpoint, args.ca, args.token)
    result = otlp.export(spans)
    otlp.shutdown()
    print(json.dumps({"result": result.name, "trace_id": trace_id}))


if __name__ == "__main__":
    main()
