//! The lab services' spans: one OpenTelemetry SDK tracer provider per service (its own
//! `service.name`), exporting over OTLP/HTTP (protobuf) to the agent's own receiver, and W3C
//! `traceparent` propagation between the services.
//!
//! Spans follow the current HTTP semantic conventions: a SERVER span per request received
//! (`http.request.method`, `http.route`, `url.path`, `server.address`, `server.port`,
//! `client.address`, `http.response.status_code`) and a CLIENT span per call made
//! (`http.request.method`, `url.full`, `server.address`, `server.port`, and the status code or
//! `error.type`). The batch exporter runs on the SDK's own thread, sends every
//! [`EXPORT_DELAY`] and holds at most the SDK's default queue (2,048 spans; past it the SDK
//! drops and counts).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

/// How often finished spans are sent: short, so the demo's traces reach the agent within
/// about a second of the request (the SDK's default of 5 s made the first error trace lag
/// the first error log line by seconds).
const EXPORT_DELAY: Duration = Duration::from_millis(500);

/// One service's tracer and its exporter.
pub struct ServiceTracer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl ServiceTracer {
    /// A tracer for `service` exporting to the agent's OTLP/HTTP receiver at `otlp_http`.
    pub fn new(service: &str, otlp_http: SocketAddr) -> anyhow::Result<Self> {
        let url = format!("http://{otlp_http}/v1/traces");
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&url)
            .build()
            .with_context(|| format!("cannot build the lab's OTLP exporter for {url}"))?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        let resource = Resource::builder()
            .with_service_name(service.to_owned())
            .with_attribute(KeyValue::new("service.namespace", "faultline-demo"))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("faultline-lab");
        Ok(Self { provider, tracer })
    }

    /// Starts the SERVER span of a request, continuing the caller's trace when its headers
    /// carry one. Returns the context to work and call in.
    pub fn server_span(
        &self,
        headers: &HeaderMap,
        route: &str,
        path: &str,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Context {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(format!("GET {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("server.address", local.ip().to_string()),
                KeyValue::new("server.port", i64::from(local.port())),
                KeyValue::new("client.address", peer.ip().to_string()),
                KeyValue::new("network.peer.address", peer.ip().to_string()),
                KeyValue::new("network.peer.port", i64::from(peer.port())),
            ])
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Starts the CLIENT span of a call to `url` (host and port named separately) under
    /// `parent`. Returns its context and the headers that carry it to the callee.
    pub fn client_span(
        &self,
        parent: &Context,
        url: &str,
        host: &str,
        port: u16,
    ) -> (Context, Vec<(String, String)>) {
        let span = self
            .tracer
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.full", url.to_owned()),
                KeyValue::new("server.address", host.to_owned()),
                KeyValue::new("server.port", i64::from(port)),
            ])
            .start_with_context(&self.tracer, parent);
        let cx = parent.with_span(span);
        let mut headers = HeaderInjector(Vec::new());
        TraceContextPropagator::new().inject_context(&cx, &mut headers);
        (cx, headers.0)
    }

    /// Flushes the spans not sent yet and stops the exporter (blocking, bounded by the SDK's
    /// export timeout).
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::debug!("lab span exporter: {err}");
        }
    }
}

/// Ends a span with its HTTP outcome: the status code, and an error status for a 5xx on a
/// SERVER span or a 4xx/5xx on a CLIENT span (the semantic conventions' rule).
pub fn end_with_status(cx: &Context, kind: SpanKind, status: u16) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    let failed = match kind {
        SpanKind::Client => status >= 400,
        _ => status >= 500,
    };
    if failed {
        span.set_attribute(KeyValue::new("error.type", status.to_string()));
        span.set_status(Status::error(""));
    }
    span.end();
}

/// Ends a span whose request failed with `error` (no response): `error.type` and the error's
/// text as the status description.
pub fn end_with_error(cx: &Context, error_type: &'static str, message: &str) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(Status::error(message.to_owned()));
    span.end();
}

/// The trace and span id of a context, as log fields (`trace_id`, `span_id`).
pub fn ids(cx: &Context) -> (String, String) {
    let span = cx.span();
    let context = span.span_context();
    (
        context.trace_id().to_string(),
        context.span_id().to_string(),
    )
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct HeaderInjector(Vec<(String, String)>);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}
