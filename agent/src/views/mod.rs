//! The web crate's read-only views over the agent's real stores.
//!
//! `faultline-web` reads everything through traits of its own
//! ([`ClusterView`](faultline_web::ClusterView), [`TraceView`](faultline_web::TraceView),
//! [`CounterView`](faultline_web::CounterView), [`DiagnosisView`](faultline_web::DiagnosisView)) and returns its own documents (DTOs), so
//! that neither side depends on the other's insides. This module is the one place where the
//! two meet: one adapter per trait, one file each, maps the clustering [`Engine`], the
//! [`TraceStore`] and the [`CounterStore`] onto those documents, and [`build`] bundles them
//! into the [`Views`] the router is given:
//!
//! - [`clusters`]: the cluster rows and details;
//! - [`traces`]: call chains and the trace list;
//! - [`counters`]: the counters document, laid on one regular time axis by [`axis`];
//! - [`diagnosis`]: builds the diagnosis' inputs and asks `faultline-diagnosis` (what moved);
//!   nothing here judges a counter or dates an onset.
//!
//! The mapping follows the web model's conventions: ids are lowercase hex, pattern and counter
//! times are Unix milliseconds, span times Unix microseconds. Where a document asks for
//! something a store does not keep, the field says so in its mapping function and is left
//! empty rather than made up.
//!
//! Cost: the cluster list is read on every list request and every `/metrics` scrape, so the
//! rows are cached behind an `Arc<[ClusterSummary]>` and rebuilt at most every
//! [`ROWS_REFRESH`] (and only every [`clusters::ROWS_IDLE_REFRESH`] while the engine saw no new
//! event); the per-minute counts behind each row's sparkline are fetched again only for
//! clusters whose counts changed.

mod axis;
mod clusters;
mod counters;
mod diagnosis;
mod kept;
mod traces;

pub use clusters::ROWS_REFRESH;
pub use counters::KeptCounters;
pub(crate) use diagnosis::traffic_series;
pub use traces::CLUSTER_ID_ATTRIBUTE;

use clusters::ClusterAdapter;
use counters::CounterAdapter;
use diagnosis::DiagnosisAdapter;
use traces::TraceAdapter;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use faultline_clustering::Engine;
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::TraceStore;
use faultline_web::model::StoreCounter;
use faultline_web::{CounterView, LiveUpdates, Views};

pub(super) const NANOS_PER_MS: i64 = 1_000_000;
pub(super) const NANOS_PER_US: i64 = 1_000;
pub(super) const NANOS_PER_MIN: i64 = 60_000_000_000;
pub(super) const MS_PER_MIN: i64 = 60_000;

/// "Now" in Unix nanoseconds; the system clock in the agent, a fixed time in tests and replays.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Counters of the pipeline around the stores (records dropped, queues full, ...), exported with
/// the cluster store's own counters.
pub type PipelineCounters = Arc<dyn Fn() -> Vec<StoreCounter> + Send + Sync>;

/// Builds the web crate's views over the real stores.
#[cfg_attr(not(test), allow(dead_code))]
pub fn build(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    live: LiveUpdates,
    pipeline_counters: PipelineCounters,
    board: Arc<crate::diagnosis::IncidentBoard>,
) -> Views {
    build_with_board(
        engine,
        traces,
        counters,
        live,
        pipeline_counters,
        Arc::new(system_now_unix_nanos),
        board,
    )
}

/// [`build`] with another notion of "now" (Unix nanoseconds), e.g. the time of the last
/// replayed record, so that emergence, rates and sparklines are judged at that time.
#[cfg_attr(not(test), allow(dead_code))]
pub fn build_with_clock(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    live: LiveUpdates,
    pipeline_counters: PipelineCounters,
    clock: Clock,
) -> Views {
    build_with_board(
        engine,
        traces,
        counters,
        live,
        pipeline_counters,
        clock,
        Arc::new(crate::diagnosis::IncidentBoard::default()),
    )
}

/// [`build_with_clock`] with the board the diagnosis loop fills: its incidents are served, and
/// "what moved" reads what it learnt of the node's services (who listens and calls where,
/// which service restarted).
pub fn build_with_board(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    counters: Arc<CounterStore>,
    live: LiveUpdates,
    pipeline_counters: PipelineCounters,
    clock: Clock,
    board: Arc<crate::diagnosis::IncidentBoard>,
) -> Views {
    Views {
        clusters: Arc::new(ClusterAdapter::new(
            Arc::clone(&engine),
            Arc::clone(&traces),
            Arc::clone(&counters),
            pipeline_counters,
            Arc::clone(&clock),
            ROWS_REFRESH,
        )),
        traces: Arc::new(TraceAdapter {
            store: Arc::clone(&traces),
            engine: Arc::clone(&engine),
            counters: Arc::clone(&counters),
        }),
        counters: Arc::new(CounterAdapter::new(
            Arc::clone(&counters),
            Arc::clone(&traces),
        )),
        diagnosis: Arc::new(DiagnosisAdapter {
            engine,
            traces,
            counters,
            clock,
            board,
        }),
        live,
    }
}

/// The counters view alone, over the counter store and the services' traffic, as
/// [`build`] gives it to the router (`GET /api/v1/counters` reads it): for the benchmark of
/// the counters document (`benches/counters_document.rs`).
pub fn counter_view(counters: Arc<CounterStore>, traces: Arc<TraceStore>) -> Arc<dyn CounterView> {
    Arc::new(CounterAdapter::new(counters, traces))
}

/// A counter about a store, for `store_counters`.
pub(super) fn counter(name: &str, help: &str, value: f64) -> StoreCounter {
    StoreCounter {
        name: name.to_owned(),
        help: help.to_owned(),
        value,
    }
}

fn system_now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {

    use super::*;
    use faultline_web::model::TraceQuery;

    use crate::views::test_support::*;

    #[test]
    fn empty_stores_give_empty_views_on_the_system_clock() {
        let stores = stores();
        let views = build(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            Arc::new(Vec::new),
            Arc::new(crate::diagnosis::IncidentBoard::default()),
        );
        let c = views.counters.snapshot();
        assert_eq!(c.sampled_at_unix_ms, 0);
        assert!(c.sockets.is_empty() && c.sockstat.is_empty() && c.tasks.is_empty());
        assert!(c.step_ms >= 1);
        assert!(views.clusters.summaries().is_empty());
        assert!(views
            .traces
            .find(&TraceQuery {
                limit: 5,
                ..TraceQuery::default()
            })
            .is_empty());
        // Events observed now are in the current minute of the system clock's sparkline.
        stores.engine.observe(&error_event(
            "EOF",
            "user-svc",
            None,
            system_now_unix_nanos(),
        ));
        let views = build(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            Arc::new(Vec::new),
            Arc::new(crate::diagnosis::IncidentBoard::default()),
        );
        let rows = views.clusters.summaries();
        assert_eq!(rows.len(), 1);
        let sparkline = &rows[0].sparkline.counts;
        // The minute may have turned between observing and reading.
        assert_eq!(sparkline[58..].iter().sum::<u64>(), 1, "{sparkline:?}");
    }
}

/// What the views' tests share: fixed clocks, the stores, and samples of a node.
#[cfg(test)]
mod test_support {
    use super::*;
    use faultline_clustering::{ClusteringConfig, ErrorEvent};
    use faultline_ingest::counters::process::ProcessCounters;
    use faultline_ingest::counters::reader::CensusReading;
    use faultline_ingest::counters::sockets::{Family, SocketSource};
    use faultline_ingest::counters::store::{NodeSample, TaskScrape};
    use faultline_ingest::counters::{
        CounterError, CountersConfig, SocketCensus, SocketEntry, SocketState as S,
    };
    use faultline_ingest::traces::{Span, TraceStoreConfig};
    use faultline_ingest::traces::{SpanKind, StatusCode};
    use faultline_ingest::SpanId;
    use faultline_ingest::TraceId;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    pub(super) const MIN: i64 = NANOS_PER_MIN;
    /// 2023-11-14T22:13:00Z plus 30 s, in Unix nanoseconds: mid-minute, so minute buckets are
    /// unambiguous.
    pub(super) const NOW: i64 = 1_700_000_000 / 60 * 60 * 1_000_000_000 + 30_000_000_000;

    pub(super) fn trace_id(n: u8) -> TraceId {
        TraceId([
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0, 0, 0, n,
        ])
    }

    pub(super) fn span_id(n: u8) -> SpanId {
        SpanId([0xa1, 0, 0, 0, 0, 0, 0, n])
    }

    pub(super) struct Stores {
        pub(super) engine: Arc<Engine>,
        pub(super) traces: Arc<TraceStore>,
        pub(super) counters: Arc<CounterStore>,
    }

    pub(super) fn stores() -> Stores {
        Stores {
            engine: Arc::new(Engine::new(ClusteringConfig::default())),
            traces: Arc::new(TraceStore::new(TraceStoreConfig::default())),
            counters: Arc::new(CounterStore::new(&CountersConfig::default())),
        }
    }

    pub(super) fn views_at(stores: &Stores, now: i64) -> Views {
        let pipeline: PipelineCounters = Arc::new(|| {
            vec![StoreCounter {
                name: "pipeline_records_dropped_total".into(),
                help: "Records dropped by the pipeline.".into(),
                value: 3.0,
            }]
        });
        build_with_clock(
            Arc::clone(&stores.engine),
            Arc::clone(&stores.traces),
            Arc::clone(&stores.counters),
            LiveUpdates::new(),
            pipeline,
            Arc::new(move || now),
        )
    }

    pub(super) fn error_event<'a>(
        text: &'a str,
        service: &'a str,
        trace: Option<&'a str>,
        t: i64,
    ) -> ErrorEvent<'a> {
        ErrorEvent {
            text,
            service: Some(service),
            severity: "error",
            trace_id: trace,
            span_id: None,
            time_unix_nanos: t,
            stack: None,
            frame: None,
        }
    }

    /// Six connection resets from two services in the last three minutes, two with a trace id
    /// (one written in upper case by its sender), and one older EOF.
    pub(super) fn reset_storm(engine: &Engine) -> Vec<String> {
        let traces = [
            Some("4BF92F3577B34DA6A3CE929D0E0E4736"),
            None,
            None,
            Some("00f067aa0ba902b700f067aa0ba902b7"),
            None,
            None,
        ];
        let mut messages = Vec::new();
        for (i, trace) in traces.iter().enumerate() {
            let text = format!(
                "read tcp 10.0.0.{i}:5432->10.0.1.9:{}: read: connection reset by peer",
                40_000 + i
            );
            let service = if i % 2 == 0 { "user-svc" } else { "order-svc" };
            let t = NOW - 3 * MIN + i as i64 * 20_000_000_000;
            engine.observe(&error_event(&text, service, *trace, t));
            messages.push(text);
        }
        engine.observe(&error_event(
            "GetUser(42): unexpected EOF",
            "user-svc",
            None,
            NOW - 40 * MIN,
        ));
        engine.maintain();
        messages
    }

    pub(super) fn socket(state: S, local: &str, remote: &str) -> SocketEntry {
        let parse = |a: &str| a.parse::<SocketAddr>().expect("test address");
        SocketEntry {
            family: Family::Ipv4,
            state,
            local: parse(local),
            remote: parse(remote),
            recv_queue: 0,
            send_queue: None,
            inode: 1,
        }
    }

    /// `n` TIME_WAIT sockets of a server on 8080, towards its callers on 10.0.0.3.
    pub(super) fn time_wait_on_8080(n: u16) -> impl Iterator<Item = SocketEntry> {
        (0..n).map(|i| {
            socket(
                S::TimeWait,
                "10.0.0.1:8080",
                &format!("10.0.0.3:{}", 51000 + i),
            )
        })
    }

    /// One sample: a server on 8080 with `time_wait` TIME_WAIT sockets and two established
    /// ones, and `close_wait` CLOSE_WAIT sockets towards a database on 5432.
    pub(super) fn sample(t_ms: i64, time_wait: u16, close_wait: u16, resets: i64) -> NodeSample {
        let mut entries = vec![
            socket(S::Listen, "0.0.0.0:8080", "0.0.0.0:0"),
            socket(S::Established, "10.0.0.1:8080", "10.0.0.2:50001"),
            socket(S::Established, "10.0.0.1:8080", "10.0.0.2:50002"),
        ];
        entries.extend(time_wait_on_8080(time_wait));
        for i in 0..close_wait {
            entries.push(socket(
                S::CloseWait,
                &format!("10.0.0.1:{}", 41000 + i),
                "10.0.0.9:5432",
            ));
        }
        let census = SocketCensus::from_entries(SocketSource::ProcNet, &entries, &(32768..=60999));
        let sockstat = BTreeMap::from([
            ("TCP inuse".to_string(), entries.len() as i64),
            ("TCP tw".to_string(), i64::from(time_wait)),
        ]);
        let protocol = BTreeMap::from([("Tcp EstabResets".to_string(), resets)]);
        NodeSample {
            time_unix_ms: t_ms,
            sockets: CensusReading::of(Ok(census)),
            sockstat: Ok(sockstat),
            protocol: Ok(protocol),
            processes: vec![
                (
                    "user-svc".into(),
                    Ok(ProcessCounters {
                        pids: vec![4242, 4243],
                        open_fds: 64 + u64::from(close_wait),
                        fd_limit: Some(1024),
                        threads: 18,
                        rss_bytes: 1 << 20,
                    }),
                ),
                (
                    "db-proxy".into(),
                    Err(CounterError::NoProcess("db-proxy".into())),
                ),
            ],
            agent_process: None,
            runtime: None,
            scrapes: vec![
                TaskScrape {
                    target: "user-svc".into(),
                    source: "pprof".into(),
                    result: Ok(400.0 + f64::from(close_wait) * 10.0),
                },
                TaskScrape {
                    target: "order-svc".into(),
                    source: "pprof".into(),
                    result: Err("connection refused".into()),
                },
            ],
        }
    }

    pub(super) fn stores_with(config: CountersConfig) -> Stores {
        Stores {
            counters: Arc::new(CounterStore::new(&config)),
            ..stores()
        }
    }

    /// A span of trace `trace`, a server span at the root, failing with a reset when `status`
    /// says so.
    pub(super) fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        name: &str,
        (start, end): (i64, i64),
        status: StatusCode,
    ) -> Span {
        Span {
            trace_id: trace_id(trace),
            span_id: span_id(id),
            parent_span_id: parent.map(span_id),
            service: service.into(),
            name: name.into(),
            kind: if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_unix_nanos: start,
            end_unix_nanos: end,
            status,
            status_message: if status == StatusCode::Error {
                "read: connection reset by peer".into()
            } else {
                String::new()
            },
            attributes: vec![("http.route".into(), name.into())],
            events: Vec::new(),
        }
    }
}
