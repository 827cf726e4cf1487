//! The lab's three services: real axum servers on loopback that call each other with a real
//! HTTP client (reqwest), each with its own log style, its own spans and its own task page.
//!
//! ```text
//! users ─▶ gateway  GET /api/orders/{id}  ─▶ orders  GET /v1/orders/{id} ─▶ inventory GET /v1/stock/{sku}
//!                   GET /api/orders       ─▶ orders  GET /v1/orders
//! ```
//!
//! A caller that fails logs the error string its HTTP client produced, never a made-up one.
//! The faults of [`Scenario`] are done here (in handlers and clients) and in
//! [`super::conn`] (beneath the callee's server, on its sockets).

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::error::Error as _;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt as _;
use opentelemetry::trace::SpanKind;
use opentelemetry::Context;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::conn::{ConnSwitch, Peer};
use super::logger::{Field, Logger};
use super::scenario::{Scenario, ServiceName};
use super::spans::{self, ServiceTracer};
use super::tasks::{TaskGroup, Tasks};

/// How long orders waits for inventory: short, as in-cluster timeouts are, so a callee that
/// hangs (CLOSE_WAIT) shows as timeouts within a second.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the gateway waits for orders: longer than orders' own timeout, so a slow
/// inventory shows as orders' timeouts and not the gateway's.
const ORDERS_TIMEOUT: Duration = Duration::from_secs(3);

/// The name orders calls inventory by in the `dns` scenario: `.invalid` never resolves
/// (RFC 6761), so the failure is the resolver's own answer.
pub const UNRESOLVABLE_HOST: &str = "inventory.faultline-demo.invalid";

/// Most tasks the goroutine-leak fault leaves waiting (about 0.5 KiB each): at the demo's
/// traffic it is reached after about an hour, and the memory stays bounded after.
const MAX_LEAKED_TASKS: usize = 50_000;

/// Stack frames written after a recovered panic: the panicking function and its callers up
/// to the request handler fit well within it.
const MAX_STACK_FRAMES: usize = 24;

/// The fault injected into the running lab, once, after the baseline.
pub type ActiveFault = Arc<OnceLock<Scenario>>;

/// One running service.
pub struct Service {
    /// Which service this is.
    pub name: ServiceName,
    /// Its API address.
    pub local: SocketAddr,
    log: Logger,
    tracer: ServiceTracer,
    /// Its live task counts (served on its debug listener).
    pub tasks: Arc<Tasks>,
    /// The connection mode of its API listener.
    pub conn: Arc<ConnSwitch>,
    callee: Option<(ServiceName, SocketAddr)>,
    pooled: reqwest::Client,
    fresh: reqwest::Client,
    fault: ActiveFault,
    leaked: Mutex<Vec<oneshot::Sender<()>>>,
    requests: AtomicU64,
    stop: CancellationToken,
}

impl Service {
    /// A service named `name` listening on `local`, calling `callee` when it has one.
    pub fn new(
        name: ServiceName,
        local: SocketAddr,
        callee: Option<(ServiceName, SocketAddr)>,
        log: Logger,
        tracer: ServiceTracer,
        fault: ActiveFault,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let timeout = match callee {
            Some((ServiceName::Inventory, _)) => INVENTORY_TIMEOUT,
            _ => ORDERS_TIMEOUT,
        };
        // No proxy: a proxy from the environment must not carry loopback calls elsewhere.
        let client = |idle_per_host: usize| {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .pool_max_idle_per_host(idle_per_host)
                .build()
        };
        Ok(Self {
            name,
            local,
            log,
            tracer,
            tasks: Arc::new(Tasks::default()),
            conn: Arc::new(ConnSwitch::default()),
            callee,
            pooled: client(usize::MAX)?,
            // No idle connection kept: each call opens its own and closes it first.
            fresh: client(0)?,
            fault,
            leaked: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            stop,
        })
    }

    /// The service's API routes.
    pub fn router(self: &Arc<Self>) -> Router {
        let routes = match self.name {
            ServiceName::Gateway => Router::new()
                .route("/api/orders/{id}", get(gateway_order))
                .route("/api/orders", get(gateway_orders)),
            ServiceName::Orders => Router::new()
                .route("/v1/orders/{id}", get(orders_order))
                .route("/v1/orders", get(orders_list)),
            ServiceName::Inventory => Router::new().route("/v1/stock/{sku}", get(inventory_stock)),
        };
        routes.with_state(self.clone())
    }

    /// The log written at start, in the service's own style.
    pub fn log_start(&self, debug: SocketAddr) {
        match self.name {
            ServiceName::Gateway => {
                self.log
                    .gin_debug(&format!("Listening and serving HTTP on {}", self.local));
            }
            ServiceName::Orders => self.log.zap(
                "info",
                "orders started",
                &[
                    ("service", Field::Str("orders")),
                    ("addr", Field::Str(&self.local.to_string())),
                    ("pprof", Field::Str(&debug.to_string())),
                ],
                None,
            ),
            ServiceName::Inventory => self.log.stdlog(&format!(
                "inventory listening on {} (pprof on {debug})",
                self.local
            )),
        }
    }

    /// Flushes and stops the span exporter; blocks up to the SDK's export timeout.
    pub fn shutdown_spans(&self) {
        self.tracer.shutdown();
    }

    fn active(&self, scenario: Scenario) -> bool {
        self.fault.get() == Some(&scenario)
    }

    /// Runs one request: SERVER span, task count, panic recovery, access log.
    async fn handle<F, Fut>(
        self: &Arc<Self>,
        headers: &HeaderMap,
        peer: SocketAddr,
        route: &str,
        path: &str,
        work: F,
    ) -> Response
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<Value, Failure>>,
    {
        let _task = self.tasks.enter(TaskGroup::Request);
        let number = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let started = Instant::now();
        let cx = self
            .tracer
            .server_span(headers, route, path, self.local, peer);
        let outcome = AssertUnwindSafe(InHandler(work(cx.clone())))
            .catch_unwind()
            .await;
        let (status, body, errors) = match outcome {
            Ok(Ok(body)) => (200, body, Vec::new()),
            Ok(Err(failure)) => (
                failure.status,
                json!({ "error": failure.error }),
                vec![failure.error],
            ),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                let stack = LAST_PANIC_STACK.with(|slot| slot.borrow_mut().take());
                self.log_panic(&cx, &message, stack.as_deref(), number);
                let error = format!("panic: {message}");
                (500, json!({ "error": error }), vec![error])
            }
        };
        if self.name == ServiceName::Gateway {
            self.log.gin_request(
                status,
                started.elapsed(),
                &peer.ip().to_string(),
                "GET",
                path,
                &errors,
            );
        }
        spans::end_with_status(&cx, SpanKind::Server, status);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, Json(body)).into_response()
    }

    /// Calls the callee at `path` under the request's context.
    async fn call(&self, cx: &Context, path: &str) -> Result<Value, Failure> {
        let Some((callee, addr)) = self.callee else {
            return Err(Failure::internal("this service calls no one"));
        };
        let host = if callee == ServiceName::Inventory && self.active(Scenario::Dns) {
            UNRESOLVABLE_HOST.to_owned()
        } else {
            addr.ip().to_string()
        };
        let url = format!("http://{host}:{}{path}", addr.port());
        let client = if callee == ServiceName::Inventory && self.active(Scenario::TimeWait) {
            &self.fresh
        } else {
            &self.pooled
        };
        let (call_cx, headers) = self.tracer.client_span(cx, &url, &host, addr.port());
        let mut request = client.get(&url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await;
        let result = match response {
            Ok(response) => {
                let status = response.status();
                let body = response.json::<Value>().await;
                match body {
                    Ok(body) if status.is_success() => {
                        spans::end_with_status(&call_cx, SpanKind::Client, status.as_u16());
                        Ok(body)
                    }
                    Ok(_) => {
                        spans::end_with_status(&call_cx, SpanKind::Client, status.as_u16());
                        Err(Failure::bad_gateway(format!("GET {url}: {status}")))
                    }
                    Err(err) => {
                        let text = error_chain(&err);
                        spans::end_with_error(&call_cx, error_type(&err), &text);
                        Err(Failure::bad_gateway(text))
                    }
                }
            }
            Err(err) => {
                let text = error_chain(&err);
                spans::end_with_error(&call_cx, error_type(&err), &text);
                Err(Failure::bad_gateway(text))
            }
        };
        if let (ServiceName::Orders, Err(failure)) = (self.name, &result) {
            let (trace_id, span_id) = spans::ids(cx);
            self.log.zap(
                "error",
                "inventory call failed",
                &[
                    ("service", Field::Str("orders")),
                    ("trace_id", Field::Str(&trace_id)),
                    ("span_id", Field::Str(&span_id)),
                    ("url", Field::Str(&url)),
                    ("error", Field::Str(&failure.error)),
                ],
                None,
            );
        }
        result
    }

    fn log_panic(&self, cx: &Context, message: &str, stack: Option<&str>, number: u64) {
        let (trace_id, span_id) = spans::ids(cx);
        let stack = stack.map(|frames| format!("goroutine {number} [running]:\n{frames}"));
        self.log.zap(
            "error",
            "panic recovered",
            &[
                ("service", Field::Str(self.name.as_str())),
                ("trace_id", Field::Str(&trace_id)),
                ("span_id", Field::Str(&span_id)),
                ("error", Field::Str(message)),
            ],
            stack.as_deref(),
        );
    }

    /// The goroutine-leak fault: a task that waits for a confirmation whose sender is kept
    /// and never used, until the lab stops.
    fn leak_a_task(&self) {
        let mut senders = self.leaked.lock().unwrap_or_else(|e| e.into_inner());
        if senders.len() >= MAX_LEAKED_TASKS {
            return;
        }
        let (confirm, confirmation) = oneshot::channel::<()>();
        senders.push(confirm);
        let guard = self.tasks.enter(TaskGroup::Leaked);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let _guard = guard;
            tokio::select! {
                _ = confirmation => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// A request that failed, with the status to answer and the error to report.
pub struct Failure {
    status: u16,
    error: String,
}

impl Failure {
    fn bad_gateway(error: String) -> Self {
        Self { status: 502, error }
    }

    fn internal(error: &str) -> Self {
        Self {
            status: 500,
            error: error.to_owned(),
        }
    }
}

type Svc = State<Arc<Service>>;
type Caller = ConnectInfo<Peer>;

async fn gateway_order(
    State(svc): Svc,
    ConnectInfo(Peer(peer)): Caller,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/api/orders/{id}");
    let inner = svc.clone();
    svc.handle(&headers, peer, "/api/orders/{id}", &path, |cx| async move {
        inner.call(&cx, &format!("/v1/orders/{id}")).await
    })
    .await
}

async fn gateway_orders(
    State(svc): Svc,
    ConnectInfo(Peer(peer)): Caller,
    headers: HeaderMap,
) -> Response {
    let inner = svc.clone();
    svc.handle(
        &headers,
        peer,
        "/api/orders",
        "/api/orders",
        |cx| async move { inner.call(&cx, "/v1/orders").await },
    )
    .await
}

/// The item whose stock an order checks: its first line's. With the panic fault the order has
/// no lines, and this indexing panics as a Go slice index would. Never inlined, so the stack
/// names it as Go names the function that panicked (`main.first_sku`).
#[inline(never)]
fn first_sku(lines: &[u32]) -> u32 {
    lines[0]
}

async fn orders_order(
    State(svc): Svc,
    ConnectInfo(Peer(peer)): Caller,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/orders/{id}");
    let inner = svc.clone();
    svc.handle(&headers, peer, "/v1/orders/{id}", &path, |cx| async move {
        let lines = order_lines(id, inner.active(Scenario::Panic));
        let sku = first_sku(&lines);
        let stock = inner.call(&cx, &format!("/v1/stock/{sku}")).await?;
        Ok(json!({ "order": id, "lines": lines, "stock": stock }))
    })
    .await
}

async fn orders_list(
    State(svc): Svc,
    ConnectInfo(Peer(peer)): Caller,
    headers: HeaderMap,
) -> Response {
    svc.handle(
        &headers,
        peer,
        "/v1/orders",
        "/v1/orders",
        |_cx| async move { Ok(json!({ "orders": (1..=20).collect::<Vec<u32>>() })) },
    )
    .await
}

async fn inventory_stock(
    State(svc): Svc,
    ConnectInfo(Peer(peer)): Caller,
    Path(sku): Path<u32>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/stock/{sku}");
    let inner = svc.clone();
    svc.handle(&headers, peer, "/v1/stock/{sku}", &path, |_cx| async move {
        if inner.active(Scenario::GoroutineLeak) {
            inner.leak_a_task();
        }
        Ok(json!({ "sku": sku, "available": (sku * 7) % 23 }))
    })
    .await
}

/// The items of an order; `lost` gives the empty list the panic fault's bug produces.
fn order_lines(id: u32, lost: bool) -> Vec<u32> {
    if lost {
        return Vec::new();
    }
    (0..1 + id % 3).map(|i| (id + i) % 50).collect()
}

/// The task page of one service, for its debug listener.
pub fn debug_router(name: ServiceName, tasks: Arc<Tasks>) -> Router {
    Router::new().route(
        "/debug/pprof/goroutine",
        get(move |Query(page): Query<PageQuery>| {
            let tasks = tasks.clone();
            async move {
                if page.debug == Some(2) {
                    tasks.stacks_page()
                } else {
                    tasks.page(name.as_str())
                }
            }
        }),
    )
}

/// The task page's query: `debug=2` asks for every task's stack, as pprof's does.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    debug: Option<u8>,
}

/// An error and its sources, joined as `outer: inner: innermost` (reqwest's own text names
/// only the outermost layer: "error sending request for url (...)").
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// `error.type` of a failed call: a low-cardinality class, as the conventions ask.
fn error_type(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "response_body"
    } else {
        "request"
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_owned())
}

thread_local! {
    /// Set while a lab handler is being polled on this thread: its panics are recovered by
    /// the handler, so the hook keeps quiet and keeps the stack for the handler to log.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
    /// The stack of the last recovered panic on this thread, taken by the handler.
    static LAST_PANIC_STACK: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) the panic hook that captures the stack of panics in lab
/// handlers and leaves every other panic to the previous hook.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HANDLER.with(Cell::get) {
                let stack = go_layout(&Backtrace::force_capture().to_string());
                LAST_PANIC_STACK.with(|slot| *slot.borrow_mut() = Some(stack));
            } else {
                previous(info);
            }
        }));
    });
}

/// Polls a handler's future with [`IN_HANDLER`] set.
struct InHandler<F>(F);

impl<F: Future> Future for InHandler<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_HANDLER.with(|flag| flag.set(false));
            }
        }
        IN_HANDLER.with(|flag| flag.set(true));
        let _reset = Reset; // also on unwind
                            // SAFETY: the inner future is never moved out of the pinned wrapper.
        unsafe { self.map_unchecked_mut(|wrapper| &mut wrapper.0) }.poll(cx)
    }
}

/// A Rust backtrace laid out as Go prints a goroutine's stack (function at column 0, its
/// file and line on the next line after a tab), from the frame that panicked: the agent is
/// built for Go services, and this is the layout their panics have. The frames are the real
/// ones of this process; only their names are put in Go's shape (see [`go_function`]).
fn go_layout(backtrace: &str) -> String {
    let mut frames: Vec<(String, Option<String>)> = Vec::new();
    for line in backtrace.lines() {
        let trimmed = line.trim_start();
        if let Some(location) = trimmed.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                last.1.get_or_insert_with(|| location.to_owned());
            }
        } else if let Some((index, function)) = trimmed.split_once(": ") {
            if index.chars().all(|c| c.is_ascii_digit()) {
                frames.push((function.to_owned(), None));
            }
        }
    }
    // Skip the capture, this hook and the standard library's panic machinery: the stack
    // starts at the first frame after the panic's entry into `std::panicking`/
    // `core::panicking` that is neither that machinery nor the toolchain's own code (a slice
    // index), as a Go stack starts at the function that panicked after `panic(...)`. (The
    // `catch_unwind` frames further down, where the thread and the handler recover, are
    // `panicking` code too.)
    let machinery = |function: &str, location: Option<&str>| {
        function.contains("install_panic_hook")
            || function.contains("rust_begin_unwind")
            || function.contains("panicking::")
            || location.is_some_and(|at| at.contains("/src/panicking.rs"))
    };
    let entry = frames
        .iter()
        .position(|(function, location)| machinery(function, location.as_deref()))
        .unwrap_or(0);
    let first = frames[entry..]
        .iter()
        .position(|(function, location)| {
            let location = location.as_deref();
            !machinery(function, location) && !location.is_some_and(|at| at.starts_with("/rustc/"))
        })
        .map_or(0, |i| entry + i);
    let mut text = String::new();
    for (function, location) in frames.iter().skip(first).take(MAX_STACK_FRAMES) {
        text.push_str(&go_function(function, location.as_deref()));
        text.push_str("(...)\n");
        if let Some(location) = location {
            text.push('\t');
            text.push_str(location);
            text.push('\n');
        }
    }
    text
}

/// A Rust symbol in the shape of a Go function name, which has no spaces, no generic
/// arguments and starts with a letter: `<Type<P> as Trait>::method` becomes `Type::method`
/// (the method of the type, as Go names `pkg.(*Type).Method`), generic arguments are dropped
/// (Go prints `[...]`, and a frame inlined by the optimiser is named only by its last part
/// with them: `index<u32>`), and a closure or async block is `funcN` as in Go. A frame of this
/// program's own source (not the toolchain's, not a dependency's) is in package `main`, as
/// the functions of a Go program are: `faultline_agent::lab::service::first_sku` becomes
/// `main.first_sku`, which is how a stack's top application frame is found.
fn go_function(symbol: &str, location: Option<&str>) -> String {
    let mut name = symbol.to_owned();
    if symbol.starts_with('<') {
        let mut depth = 0usize;
        let close = symbol.char_indices().find_map(|(at, c)| {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(at);
                    }
                }
                _ => {}
            }
            None
        });
        if let Some(close) = close {
            let inner = &symbol[1..close];
            let own_type = inner.split(" as ").next().unwrap_or(inner);
            name = format!("{own_type}{}", &symbol[close + 1..]);
        }
    }
    // Generic arguments, at any depth (the `>` of a function type's `->` closes nothing).
    let mut plain = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut previous = ' ';
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' if previous != '-' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
        previous = c;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut closures = 0;
    for part in plain.split("::").filter(|p| !p.is_empty()) {
        let part: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        let bare = part.trim_matches(|c| c == '{' || c == '}');
        if bare.starts_with("closure") || bare.starts_with("async_") {
            closures += 1;
            parts.push(format!("func{closures}"));
        } else if bare.starts_with("impl") || bare.is_empty() {
            continue;
        } else {
            parts.push(bare.to_owned());
        }
    }
    // This program's source: a Rust file that is neither the toolchain's nor a dependency's
    // (the C library's frames at the bottom of a thread are not the program's either).
    let own = location.is_some_and(|at| {
        let file = at.split(':').next().unwrap_or(at);
        file.ends_with(".rs")
            && !at.starts_with("/rustc/")
            && !at.contains("/.cargo/registry/")
            && !at.contains("/.cargo/git/")
    });
    let name = if own {
        // The crate and its modules are the program; what is left is the function.
        let function_at = parts
            .iter()
            .position(|p| p.starts_with("func"))
            .map_or(parts.len().saturating_sub(1), |i| i.saturating_sub(1));
        let own_parts = &parts[function_at.min(parts.len())..];
        format!("main.{}", own_parts.join("."))
    } else {
        parts.join(".")
    };
    name.trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layout_starts_at_the_panicking_frame() {
        let backtrace = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/x/library/std/src/backtrace.rs:312:13\n   1: faultline::lab::service::install_panic_hook::{{closure}}\n             at ./agent/src/lab/service.rs:1:1\n   2: core::panicking::panic_bounds_check\n             at /rustc/x/library/core/src/panicking.rs:280:5\n   3: <usize as core::slice::index::SliceIndex<[T]>>::index\n             at /rustc/x/library/core/src/slice/index.rs:272:10\n   4: faultline::lab::service::orders_order::{{closure}}\n             at ./agent/src/lab/service.rs:300:19\n   5: <futures_util::future::catch_unwind::CatchUnwind<Fut> as core::future::future::Future>::poll\n";
        let stack = go_layout(backtrace);
        assert!(
            stack
                .starts_with("main.orders_order.func1(...)\n\t./agent/src/lab/service.rs:300:19\n"),
            "{stack}"
        );
        assert!(
            stack.ends_with("futures_util.future.catch_unwind.CatchUnwind.poll(...)\n"),
            "{stack}"
        );
    }

    #[test]
    fn an_optimised_backtrace_starts_at_the_function_that_panicked_named_as_go_would() {
        // The release demo's stack (inlined frames are named by their last part only): it
        // started at the panic hook's closure, showed the standard library's panic machinery
        // first, and had no frame the agent reads as the application's.
        let backtrace = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/x/library/std/src/backtrace.rs:331:13\n   1: {closure#0}\n             at /build/agent/src/lab/service.rs:517:40\n   2: std::panicking::panic_with_hook\n             at /rustc/x/library/std/src/panicking.rs:833:13\n   3: rustc::rust_begin_unwind\n             at /rustc/x/library/std/src/panicking.rs:689:5\n   4: core::panicking::panic_bounds_check\n             at /rustc/x/library/core/src/panicking.rs:271:5\n   5: index<u32>\n             at /rustc/x/library/core/src/slice/index.rs:272:10\n   6: faultline_agent::lab::service::first_sku\n             at /build/agent/src/lab/service.rs:390:5\n   7: {async_block#0}\n             at /build/agent/src/lab/service.rs:398:19\n   8: poll<futures_util::future::catch_unwind::CatchUnwind<F>>\n             at /root/.cargo/registry/src/index.crates.io-1/futures-util-0.3.34/src/future/future/catch_unwind.rs:37:9\n";
        let stack = go_layout(backtrace);
        assert_eq!(
            stack,
            "main.first_sku(...)\n\t/build/agent/src/lab/service.rs:390:5\nmain.func1(...)\n\t/build/agent/src/lab/service.rs:398:19\npoll(...)\n\t/root/.cargo/registry/src/index.crates.io-1/futures-util-0.3.34/src/future/future/catch_unwind.rs:37:9\n"
        );
        let text = format!("goroutine 7 [running]:\n{stack}");
        assert_eq!(
            faultline_ingest::parse::top_application_frame(&text).as_deref(),
            Some("main.first_sku service.rs:390:5")
        );
        // A function type's `->` inside generic arguments, and an async fn's body.
        assert_eq!(
            go_function(
                "{async_block#0}<fn(axum::State<A>)->b::{async_fn_env#0}, C>",
                Some("/root/.cargo/registry/src/axum-0.8.9/src/handler/mod.rs:255:43")
            ),
            "func1"
        );
        assert_eq!(
            go_function(
                "{async_fn#0}<a::b>",
                Some("/build/agent/src/lab/service.rs:1:1")
            ),
            "main.func1"
        );
    }

    #[test]
    fn the_agent_joins_a_recovered_panic_and_its_stack_into_one_record() {
        use faultline_ingest::parse::Multiline;
        let stack = go_layout(
            "   0: <(A, B) as x::Y>::call\n             at ./a.rs:1:1\n   1: tokio::spawn\n",
        );
        let text = format!(
            "{{\"level\":\"error\",\"msg\":\"panic recovered\",\"error\":\"boom\"}}\ngoroutine 7 [running]:\n{stack}"
        );
        let mut joiner = Multiline::new(1 << 16);
        let now = std::time::Instant::now();
        let mut records = Vec::new();
        for line in text.lines() {
            records.extend(joiner.push(line, 0, 0, false, now));
        }
        records.extend(joiner.flush());
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(records[0].text.ends_with("tokio.spawn(...)"), "{records:?}");
    }
}
