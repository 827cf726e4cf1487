//! Property and model tests of trace assembly: whatever order spans and logs arrive in, and
//! however broken their parent links (missing parents, cycles, absurd depth), the call chain
//! holds every span exactly once, flags orphans, places logs under their spans and names a
//! failing span whose children did not fail as the origin; the store's bounds and eviction
//! counters match a simple reference model.

use std::collections::{HashMap, HashSet, VecDeque};

use faultline_ingest::traces::{
    CallChain, ChainNode, Span, SpanEvent, SpanKind, StatusCode, TraceFilter, TraceStore,
    TraceStoreConfig, TraceSummary, MAX_TREE_DEPTH,
};
use faultline_ingest::{Level, LogRecord, Origin, SpanId, TraceId};
use proptest::prelude::*;

const TRACE: TraceId = TraceId([0xab; 16]);

fn sid(i: usize) -> SpanId {
    let mut id = [0u8; 8];
    id[..8].copy_from_slice(&((i as u64) + 1).to_be_bytes());
    SpanId(id)
}

#[derive(Debug, Clone)]
enum Parent {
    Root,
    Index(usize),
    Missing,
}

#[derive(Debug, Clone)]
struct SpanSpec {
    parent: Parent,
    service: u8,
    start: i64,
    duration: i64,
    failed: bool,
    exception: bool,
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        prop_oneof![
            1 => Just(Parent::Root),
            6 => (0usize..64).prop_map(Parent::Index),
            1 => Just(Parent::Missing),
        ],
        0u8..4,
        0i64..1_000_000,
        0i64..1_000_000,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(parent, service, start, duration, failed, exception)| SpanSpec {
                parent,
                service,
                start,
                duration,
                failed,
                exception: failed && exception,
            },
        )
}

fn build_spans(specs: &[SpanSpec]) -> Vec<Span> {
    let n = specs.len();
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| Span {
            trace_id: TRACE,
            span_id: sid(i),
            parent_span_id: match s.parent {
                Parent::Root => None,
                Parent::Index(j) => Some(sid(j % n)),
                Parent::Missing => Some(SpanId([0xee; 8])),
            },
            service: format!("svc-{}", s.service),
            name: format!("op-{i}"),
            kind: SpanKind::Server,
            start_unix_nanos: s.start,
            end_unix_nanos: s.start + s.duration,
            status: if s.failed {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: String::new(),
            attributes: Vec::new(),
            events: if s.exception {
                vec![SpanEvent {
                    name: "exception".into(),
                    time_unix_nanos: s.start,
                    attributes: vec![("exception.message".into(), "boom".into())],
                }]
            } else {
                Vec::new()
            },
        })
        .collect()
}

fn log_for(span: Option<SpanId>, time: i64, error: bool) -> LogRecord {
    LogRecord {
        time_unix_nanos: Some(time),
        observed_unix_nanos: time,
        level: if error { Level::Error } else { Level::Info },
        service: None,
        message: format!("log at {time}"),
        error: None,
        http_status: None,
        trace_id: Some(TRACE),
        span_id: span,
        attributes: Vec::new(),
        origin: Origin::OtlpLog,
        truncated: false,
    }
}

fn walk<'a>(node: &'a ChainNode, depth: usize, out: &mut Vec<(&'a ChainNode, usize)>) {
    out.push((node, depth));
    for child in &node.children {
        assert_eq!(child.span.parent_span_id, Some(node.span.span_id));
        assert!(!child.orphan && !child.detached);
        walk(child, depth + 1, out);
    }
}

/// A trace list row, read without building the chain, says what the chain says.
fn row_agrees_with_chain(row: &TraceSummary, chain: &CallChain) {
    let root = chain.roots.first().map(|n| &n.span);
    assert_eq!(row.trace_id, chain.trace_id);
    assert_eq!(
        row.root_service.as_deref(),
        root.map(|s| s.service.as_str())
    );
    assert_eq!(row.root_operation.as_deref(), root.map(|s| s.name.as_str()));
    assert_eq!(row.services, chain.services);
    assert_eq!(row.start_unix_nanos, chain.start_unix_nanos);
    assert_eq!(row.duration_nanos, chain.duration_nanos);
    assert_eq!(row.span_count, chain.span_count);
    assert_eq!(row.cluster_ids, chain.cluster_ids);
    let mut nodes = Vec::new();
    for r in &chain.roots {
        walk_all(r, &mut nodes);
    }
    let placed_logs: usize = nodes.iter().map(|n| n.logs.len()).sum();
    assert_eq!(row.log_count, placed_logs + chain.unplaced_logs.len());
    let errors = nodes.iter().filter(|n| n.failed).count()
        + nodes
            .iter()
            .flat_map(|n| &n.logs)
            .chain(&chain.unplaced_logs)
            .filter(|l| l.is_errorish())
            .count();
    assert_eq!(row.error_count, errors);
    assert_eq!(row.error, errors > 0);
}

/// Every node of a subtree, orphans' and detached ones' children included.
fn walk_all<'a>(node: &'a ChainNode, out: &mut Vec<&'a ChainNode>) {
    out.push(node);
    for child in &node.children {
        walk_all(child, out);
    }
}

fn check(chain: &CallChain, spans: &[Span], logs: &[LogRecord]) {
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let mut nodes = Vec::new();
    for root in &chain.roots {
        match root.span.parent_span_id {
            None => assert!(!root.orphan && !root.detached),
            Some(p) if !ids.contains(&p) => assert!(root.orphan, "missing parent: orphan"),
            Some(_) => assert!(root.detached, "cycle or depth cut: detached"),
        }
        walk(root, 0, &mut nodes);
    }
    // Every span exactly once.
    let seen: Vec<SpanId> = nodes.iter().map(|(n, _)| n.span.span_id).collect();
    let unique: HashSet<SpanId> = seen.iter().copied().collect();
    assert_eq!(seen.len(), spans.len());
    assert_eq!(unique, ids);
    assert_eq!(chain.span_count, spans.len());
    assert!(nodes.iter().all(|(_, d)| *d < MAX_TREE_DEPTH));
    // Services: exactly those of the spans.
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        chain
            .services
            .iter()
            .map(String::as_str)
            .collect::<HashSet<_>>(),
        services
    );
    assert_eq!(chain.services.len(), services.len(), "no duplicates");
    // Logs: under their span, or unplaced; none lost.
    let placed: usize = nodes.iter().map(|(n, _)| n.logs.len()).sum();
    assert_eq!(placed + chain.unplaced_logs.len(), logs.len());
    for (node, _) in &nodes {
        assert!(node
            .logs
            .iter()
            .all(|l| l.span_id == Some(node.span.span_id)));
        assert!(node
            .logs
            .windows(2)
            .all(|w| w[0].time_unix_nanos <= w[1].time_unix_nanos));
    }
    // The origin, as culprit attribution places it: a failing span whose children did not
    // fail, as deep as any such span — or a span below it holding an error log of another
    // service (the failure was followed down to a callee that logged its own error).
    let any_failed = nodes.iter().any(|(n, _)| n.failed);
    match &chain.error_origin {
        Some(origin) => {
            let (node, depth) = nodes
                .iter()
                .find(|(n, _)| n.span.span_id == origin.span_id)
                .expect("origin is in the tree");
            if any_failed {
                let deepest = nodes
                    .iter()
                    .filter(|(n, _)| n.failed && n.children.iter().all(|c| !c.failed))
                    .map(|(_, d)| *d)
                    .max();
                if node.failed {
                    assert!(node.children.iter().all(|c| !c.failed));
                    assert_eq!(Some(*depth), deepest);
                } else {
                    assert!(node.logs.iter().any(LogRecord::is_errorish));
                    assert!(Some(*depth) > deepest);
                }
            } else {
                assert!(node.logs.iter().any(LogRecord::is_errorish));
            }
            if let Some(log) = &origin.first_error_log {
                assert_eq!(log.span_id, Some(origin.span_id));
            }
        }
        None => {
            assert!(!any_failed);
            assert!(!nodes
                .iter()
                .any(|(n, _)| n.logs.iter().any(LogRecord::is_errorish)));
        }
    }
    // The critical path descends the tree from the first root.
    if let Some(root) = chain.roots.first() {
        assert_eq!(chain.critical_path.first(), Some(&root.span.span_id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_arrival_order_gives_the_same_sound_chain(
        specs in prop::collection::vec(span_spec(), 1..64),
        log_specs in prop::collection::vec((0usize..80, any::<bool>()), 0..20),
        seed in any::<u64>(),
    ) {
        let spans = build_spans(&specs);
        let logs: Vec<LogRecord> = log_specs
            .iter()
            .enumerate()
            .map(|(i, (target, error))| {
                // Indices past the spans name no span of the trace (or none at all).
                let span = if *target < spans.len() { Some(sid(*target)) } else if target % 2 == 0 { Some(SpanId([0x77; 8])) } else { None };
                log_for(span, i as i64, *error)
            })
            .collect();

        let in_order = TraceStore::new(TraceStoreConfig::default());
        in_order.insert_spans(spans.clone());
        in_order.attach_logs(logs.clone());
        let chain = in_order.call_chain(TRACE).expect("trace");
        check(&chain, &spans, &logs);
        let rows = in_order.list(&TraceFilter::default());
        prop_assert_eq!(rows.len(), 1);
        row_agrees_with_chain(&rows[0], &chain);

        // Logs first, spans shuffled and in small batches: the same chain.
        let mut shuffled = spans.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let other = TraceStore::new(TraceStoreConfig::default());
        other.attach_logs(logs.clone());
        for batch in shuffled.chunks(3) {
            other.insert_spans(batch.to_vec());
        }
        prop_assert_eq!(other.call_chain(TRACE).expect("trace"), chain);
    }
}

#[test]
fn a_chain_deeper_than_the_limit_is_cut_not_overflowed() {
    let n = 20_000;
    let specs: Vec<SpanSpec> = (0..n)
        .map(|i| SpanSpec {
            parent: if i == 0 {
                Parent::Root
            } else {
                Parent::Index(i - 1)
            },
            service: (i % 3) as u8,
            start: i as i64,
            duration: 10,
            failed: i == n - 1,
            exception: false,
        })
        .collect();
    let spans = build_spans(&specs);
    let store = TraceStore::new(TraceStoreConfig {
        max_spans_per_trace: n,
        ..TraceStoreConfig::default()
    });
    assert_eq!(store.insert_spans(spans.clone()).stored, n);
    let chain = store.call_chain(TRACE).expect("trace");
    check(&chain, &spans, &[]);
    assert!(chain.roots.len() > 1 && chain.roots[1..].iter().all(|r| r.detached));
    assert_eq!(chain.error_origin.map(|o| o.span_id), Some(sid(n - 1)));
    let json = serde_json::to_string(&store.call_chain(TRACE)).expect("serialisable");
    assert!(json.len() > 1000);
}

#[test]
fn a_service_with_a_skewed_clock_is_laid_out_inside_its_caller() {
    let mut spans = build_spans(&[
        SpanSpec {
            parent: Parent::Root,
            service: 0,
            start: 1_000,
            duration: 1_000,
            failed: false,
            exception: false,
        },
        // Another service, its clock 10 s ahead: starts "after" its caller ended.
        SpanSpec {
            parent: Parent::Index(0),
            service: 1,
            start: 10_000_001_200,
            duration: 400,
            failed: true,
            exception: false,
        },
        SpanSpec {
            parent: Parent::Index(1),
            service: 1,
            start: 10_000_001_300,
            duration: 100,
            failed: false,
            exception: false,
        },
    ]);
    spans[2].service = spans[1].service.clone();
    let store = TraceStore::new(TraceStoreConfig::default());
    store.insert_spans(spans);
    let chain = store.call_chain(TRACE).expect("trace");
    let root = &chain.roots[0];
    let child = &root.children[0];
    let grandchild = &child.children[0];
    assert_eq!(
        chain.duration_nanos, 1_000,
        "the skew does not inflate the trace"
    );
    assert!(child.offset_nanos >= 0 && child.offset_nanos + child.duration_nanos <= 1_000);
    assert_eq!(
        child.clock_skew_nanos, grandchild.clock_skew_nanos,
        "same process, same shift"
    );
    assert_eq!(grandchild.offset_nanos - child.offset_nanos, 100);
    assert_eq!(
        chain.error_origin.map(|o| o.service),
        Some("svc-1".to_owned())
    );
}

#[derive(Debug, Clone)]
enum Op {
    Span { trace: u8, span: u8 },
    Log { trace: u8 },
    Tag { trace: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0u8..8).prop_map(|(trace, span)| Op::Span { trace, span }),
        2 => (0u8..12).prop_map(|trace| Op::Log { trace }),
        1 => (0u8..12).prop_map(|trace| Op::Tag { trace }),
    ]
}

fn tid(t: u8) -> TraceId {
    TraceId([t + 1; 16])
}

/// The reference: traces in least-recently-touched order, with their span ids and log count.
#[derive(Default)]
struct Model {
    order: VecDeque<u8>,
    traces: HashMap<u8, (HashSet<u8>, usize)>,
    evicted: u64,
    refused: u64,
    dropped: u64,
}

impl Model {
    fn touch(&mut self, t: u8, max_traces: usize) -> &mut (HashSet<u8>, usize) {
        if let Some(at) = self.order.iter().position(|&x| x == t) {
            self.order.remove(at);
        } else {
            while self.traces.len() >= max_traces {
                if let Some(old) = self.order.pop_front() {
                    self.traces.remove(&old);
                    self.evicted += 1;
                }
            }
        }
        self.order.push_back(t);
        self.traces.entry(t).or_default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn store_bounds_and_counters_follow_the_model(ops in prop::collection::vec(op(), 0..300)) {
        let config = TraceStoreConfig {
            max_traces: 5,
            max_spans_per_trace: 4,
            max_logs_per_trace: 3,
            max_total_spans: 1_000,
            max_total_logs: 1_000,
            max_clusters_per_trace: 2,
            retention_secs: 3_600,
        };
        let store = TraceStore::new(config.clone());
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Span { trace, span } => {
                    let spans = build_spans(&[SpanSpec { parent: Parent::Root, service: 0, start: 0, duration: 1, failed: false, exception: false }]);
                    let mut s = spans[0].clone();
                    s.trace_id = tid(trace);
                    s.span_id = SpanId([span + 1; 8]);
                    let outcome = store.insert_spans(vec![s]);
                    let refused = {
                        let entry = model.touch(trace, config.max_traces);
                        if entry.0.contains(&span) || entry.0.len() < config.max_spans_per_trace {
                            entry.0.insert(span);
                            false
                        } else {
                            true
                        }
                    };
                    if refused { model.refused += 1; }
                    prop_assert_eq!(outcome.refused, usize::from(refused));
                }
                Op::Log { trace } => {
                    let mut log = log_for(None, 0, true);
                    log.trace_id = Some(tid(trace));
                    store.attach_log(log);
                    let entry = model.touch(trace, config.max_traces);
                    if entry.1 < config.max_logs_per_trace { entry.1 += 1; } else { model.dropped += 1; }
                }
                Op::Tag { trace } => {
                    for c in ["a", "b", "c"] {
                        store.tag_cluster(tid(trace), None, c);
                    }
                    if let Some(chain) = store.call_chain(tid(trace)) {
                        prop_assert_eq!(chain.cluster_ids, vec!["a".to_owned(), "b".to_owned()]);
                    }
                }
            }
            let stats = store.stats();
            prop_assert!(stats.traces <= config.max_traces);
            prop_assert_eq!(stats.traces, model.traces.len());
            prop_assert_eq!(stats.spans, model.traces.values().map(|t| t.0.len()).sum::<usize>());
            prop_assert_eq!(stats.logs, model.traces.values().map(|t| t.1).sum::<usize>());
            prop_assert_eq!(stats.evicted_traces, model.evicted);
            prop_assert_eq!(stats.refused_spans, model.refused);
            prop_assert_eq!(stats.dropped_logs, model.dropped);
        }
        for t in model.traces.keys() {
            prop_assert!(store.call_chain(tid(*t)).is_some());
        }
    }
}

#[test]
fn traces_expire_after_the_retention_and_are_counted() {
    let store = TraceStore::new(TraceStoreConfig {
        retention_secs: 60,
        ..TraceStoreConfig::default()
    });
    store.insert_spans(build_spans(&[SpanSpec {
        parent: Parent::Root,
        service: 0,
        start: 0,
        duration: 1,
        failed: false,
        exception: false,
    }]));
    let now = std::time::Instant::now();
    assert_eq!(store.expire(now), 0);
    assert_eq!(store.expire(now + std::time::Duration::from_secs(61)), 1);
    let stats = store.stats();
    assert_eq!((stats.traces, stats.spans, stats.expired_traces), (0, 0, 1));
    assert!(store.call_chain(TRACE).is_none());
}

#[test]
fn list_filters_by_cluster_service_and_errors() {
    let store = TraceStore::new(TraceStoreConfig::default());
    for t in 0..10u8 {
        let mut spans = build_spans(&[SpanSpec {
            parent: Parent::Root,
            service: t % 2,
            start: i64::from(t),
            duration: 5,
            failed: t % 3 == 0,
            exception: false,
        }]);
        spans[0].trace_id = tid(t);
        store.insert_spans(spans);
    }
    store.tag_cluster(tid(3), None, "c-eof");
    store.tag_cluster(tid(6), Some(sid(0)), "c-eof");
    let by_cluster = store.list(&faultline_ingest::traces::TraceFilter {
        clusters: vec!["c-eof".into()],
        ..Default::default()
    });
    assert_eq!(
        by_cluster.iter().map(|s| s.trace_id).collect::<Vec<_>>(),
        vec![tid(6), tid(3)],
        "most recent first"
    );
    let errors = store.list(&faultline_ingest::traces::TraceFilter {
        errors_only: true,
        ..Default::default()
    });
    assert_eq!(errors.len(), 4);
    assert!(errors.iter().all(|s| s.error && s.error_count > 0));
    for row in &errors {
        let chain = store.call_chain(row.trace_id).expect("a listed trace");
        assert!(chain.error_origin.is_some(), "{row:?}");
        row_agrees_with_chain(row, &chain);
    }
    let svc = store.list(&faultline_ingest::traces::TraceFilter {
        service: Some("svc-1".into()),
        limit: Some(2),
        ..Default::default()
    });
    assert_eq!(svc.len(), 2);
    assert!(svc.iter().all(|s| s.services == vec!["svc-1".to_owned()]));
}

/// The listing by pattern reads an index of the tags: it must follow evictions (an evicted
/// trace is not listed, and a trace id that comes back untagged is not either), and a limit
/// keeps the newest.
#[test]
fn a_pattern_lists_only_its_live_traces_newest_first() {
    let store = TraceStore::new(TraceStoreConfig {
        max_traces: 4,
        ..TraceStoreConfig::default()
    });
    let add = |t: u8| {
        let mut spans = build_spans(&[SpanSpec {
            parent: Parent::Root,
            service: 0,
            start: i64::from(t),
            duration: 5,
            failed: true,
            exception: false,
        }]);
        spans[0].trace_id = tid(t);
        store.insert_spans(spans);
    };
    let listed = |limit: usize| {
        store
            .list(&faultline_ingest::traces::TraceFilter {
                clusters: vec!["c-eof".into()],
                limit: Some(limit),
                ..Default::default()
            })
            .iter()
            .map(|s| s.trace_id)
            .collect::<Vec<_>>()
    };
    for t in 0..6u8 {
        add(t);
        store.tag_cluster(tid(t), None, "c-eof");
    }
    // The ids alone (what a pattern's detail and the diagnosis read) follow the same index.
    let ids = |limit: usize| {
        store
            .tagged(&["c-other".into(), "c-eof".into()], limit)
            .into_iter()
            .map(|(_, id)| id)
            .collect::<Vec<_>>()
    };
    // Traces 0 and 1 were evicted by 4 and 5.
    assert_eq!(listed(10), vec![tid(5), tid(4), tid(3), tid(2)]);
    assert_eq!(listed(2), vec![tid(5), tid(4)]);
    assert_eq!(ids(10), listed(10));
    assert_eq!(ids(2), listed(2));
    // Trace 0 comes back, untagged: not the pattern's.
    add(0);
    assert_eq!(listed(10), vec![tid(5), tid(4), tid(3)]);
    assert_eq!(ids(10), listed(10));
    assert_eq!(store.stats().traces, 4);
}

/// The pattern index keeps each tagged trace's start: a span or a log earlier than the trace's
/// start, arriving after the tag, moves the trace in the pattern's order, and a trace tagged
/// with two of a pattern's ids is listed once, in the listing's order.
#[test]
fn a_tagged_trace_moves_in_its_pattern_when_an_earlier_record_arrives() {
    let store = TraceStore::new(TraceStoreConfig::default());
    let span_at = |t: u8, span: usize, start: i64| {
        let mut spans = build_spans(&[SpanSpec {
            parent: Parent::Root,
            service: 0,
            start,
            duration: 5,
            failed: true,
            exception: false,
        }]);
        spans[0].trace_id = tid(t);
        spans[0].span_id = sid(span);
        store.insert_spans(spans);
    };
    for (t, start) in [(1u8, 10), (2, 20), (3, 30), (4, 40)] {
        span_at(t, 0, start);
    }
    for t in [1u8, 2, 3] {
        store.tag_cluster(tid(t), None, "c-a");
    }
    for t in [3u8, 4] {
        store.tag_cluster(tid(t), None, "c-b");
    }
    let both = || vec!["c-a".to_owned(), "c-b".to_owned()];
    let listed = |limit: usize| {
        store
            .list(&faultline_ingest::traces::TraceFilter {
                clusters: both(),
                limit: Some(limit),
                ..Default::default()
            })
            .iter()
            .map(|s| s.trace_id)
            .collect::<Vec<_>>()
    };
    let tagged = |limit: usize| store.tagged(&both(), limit);
    assert_eq!(
        tagged(10),
        vec![(40, tid(4)), (30, tid(3)), (20, tid(2)), (10, tid(1))]
    );
    // Trace 4 gets a span that started first of all: it is now the oldest.
    span_at(4, 1, 5);
    assert_eq!(
        tagged(10),
        vec![(30, tid(3)), (20, tid(2)), (10, tid(1)), (5, tid(4))]
    );
    // Trace 3 (in both patterns) gets a log older than trace 1's start.
    let mut log = log_for(None, 7, true);
    log.trace_id = Some(tid(3));
    assert!(store.attach_log(log));
    assert_eq!(
        tagged(10),
        vec![(20, tid(2)), (10, tid(1)), (7, tid(3)), (5, tid(4))]
    );
    assert_eq!(tagged(2), vec![(20, tid(2)), (10, tid(1))]);
    for limit in [1, 2, 3, 4, 10] {
        let ids: Vec<TraceId> = tagged(limit).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, listed(limit), "limit {limit}");
    }
    // A later record does not move it.
    span_at(2, 1, 50);
    assert_eq!(tagged(1), vec![(20, tid(2))]);
}

/// The latest traces are read from the eviction order (no scan): the last touched first,
/// traces of logs only left out, the limit kept.
#[test]
fn the_latest_touched_traces_with_spans_come_first() {
    let store = TraceStore::new(TraceStoreConfig::default());
    let span_of = |t: u8, start: i64| {
        let mut spans = build_spans(&[SpanSpec {
            parent: Parent::Root,
            service: 0,
            start,
            duration: 5,
            failed: false,
            exception: false,
        }]);
        spans[0].trace_id = tid(t);
        spans
    };
    let log_only = |t: u8| {
        let mut log = log_for(None, 0, false);
        log.trace_id = Some(tid(t));
        store.attach_log(log);
    };
    // Starts do not decide: trace 1 starts first but is touched last.
    store.insert_spans(span_of(0, 500));
    store.insert_spans(span_of(1, 100));
    log_only(2);
    store.insert_spans(span_of(3, 900));
    log_only(4);
    assert_eq!(store.recent_with_spans(10), vec![tid(3), tid(1), tid(0)]);
    // A log added to trace 0 touches it again.
    let mut log = log_for(None, 0, false);
    log.trace_id = Some(tid(0));
    store.attach_log(log);
    assert_eq!(store.recent_with_spans(2), vec![tid(0), tid(3)]);
    assert!(store.recent_with_spans(0).is_empty());
}

#[test]
fn total_spans_and_logs_are_bounded_by_evicting_the_oldest_traces() {
    let store = TraceStore::new(TraceStoreConfig {
        max_total_spans: 10,
        max_total_logs: 4,
        ..TraceStoreConfig::default()
    });
    let one = |t: u8, k: u8| {
        let mut s = build_spans(&[SpanSpec {
            parent: Parent::Root,
            service: 0,
            start: 0,
            duration: 1,
            failed: false,
            exception: false,
        }]);
        s[0].trace_id = tid(t);
        s[0].span_id = SpanId([k + 1; 8]);
        s.remove(0)
    };
    for t in 0..5u8 {
        store.insert_spans((0..3).map(|k| one(t, k)).collect());
    }
    let stats = store.stats();
    assert!(stats.spans <= 10, "{stats:?}");
    assert_eq!(stats.evicted_traces, 2, "the two oldest traces went");
    assert!(store.call_chain(tid(0)).is_none() && store.call_chain(tid(1)).is_none());
    assert_eq!(store.call_chain(tid(4)).map(|c| c.span_count), Some(3));
    for t in 2..5u8 {
        for _ in 0..2 {
            let mut log = log_for(None, 0, false);
            log.trace_id = Some(tid(t));
            store.attach_log(log);
        }
    }
    let stats = store.stats();
    assert!(stats.logs <= 4, "{stats:?}");
    assert!(
        store.call_chain(tid(4)).is_some(),
        "the trace written last stays"
    );
}
