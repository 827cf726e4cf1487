#!/usr/bin/env python3
"""Exports a Go-style goroutine gauge with the official OpenTelemetry Python SDK and its OTLP
metric exporter, as an instrumented Go service's runtime metrics would arrive.

The value is driven by the caller: each line read on stdin is the new goroutine count (the
gauge's callback reports the latest one on every export). The script prints "ready" once the
meter is set up, "value N" after each change, and on end of input shuts the meter provider
down (a final export) and exits: the service has gone away.

Usage: send_goroutines.py --protocol grpc|http --endpoint HOST:PORT --service NAME
                          [--metric go.goroutine.count] [--interval-ms 100]
"""

import argparse
import sys
import threading

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=5)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=f"http://{endpoint}/v1/metrics", timeout=5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--metric", default="go.goroutine.count")
    parser.add_argument("--interval-ms", type=int, default=100)
    args = parser.parse_args()

    lock = threading.Lock()
    current = {"value": None}

    def observe(_options):
        with lock:
            value = current["value"]
        # No value yet: report nothing rather than a made-up 0.
        return [] if value is None else [Observation(value)]

    reader = PeriodicExportingMetricReader(
        exporter(args.protocol, args.endpoint), export_interval_millis=args.interval_ms
    )
    provider = MeterProvider(
        resource=Resource.create({"service.name": args.service}), metric_readers=[reader]
    )
    meter = provider.get_meter("runtime")
    meter.create_observable_gauge(
        args.metric, callbacks=[observe], unit="{goroutine}", description="Live goroutines."
    )
    print("ready", flush=True)

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        with lock:
            current["value"] = int(line)
        print(f"value {line}", flush=True)

    provider.shutdown()


if __name__ == "__main__":
    main()
