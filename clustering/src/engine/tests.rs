use super::*;
use crate::snapshot::Snapshot;

const MIN: i64 = NANOS_PER_MIN;

fn event<'a>(text: &'a str, service: &str, t: i64) -> ErrorEvent<'a> {
    ErrorEvent {
        text,
        service: Some(match service {
            "a" => "svc-a",
            _ => "svc-b",
        }),
        severity: "error",
        trace_id: None,
        span_id: None,
        time_unix_nanos: t,
        stack: None,
        frame: None,
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn one_failure_reported_by_two_lines_and_two_spans_counts_once() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let traced = |text, service, t| ErrorEvent {
        trace_id: Some(TRACE),
        ..event(text, service, t)
    };
    // The callee's log line and error span, the caller's log line and error span.
    let callee_log = traced("write response: connection reset by peer", "b", t0);
    let first = engine.observe_from(&callee_log, EventSource::FileLog);
    let callee_span = traced("connection reset by peer", "b", t0 + 1);
    let caller_text = "GET http://10.0.0.2:8080/x: read tcp 10.0.0.1:5->10.0.0.2:8080: read: connection reset by peer";
    let caller_log = traced(caller_text, "a", t0 + 2);
    let caller_span = traced(caller_text, "a", t0 + 3);
    let echoes = [
        engine.observe_from(&callee_span, EventSource::Span),
        engine.observe_from(&caller_log, EventSource::FileLog),
        engine.observe_from(&caller_span, EventSource::Span),
    ];
    assert!(!first.echo);
    assert!(echoes.iter().all(|o| o.echo && o.cluster == first.cluster));
    // Another failed request of the same kind, in another trace, and one without a trace.
    let other = ErrorEvent {
        trace_id: Some("00f067aa0ba902b700f067aa0ba902b7"),
        ..event("connection reset by peer", "b", t0 + 4)
    };
    assert!(!engine.observe_from(&other, EventSource::Span).echo);
    assert!(
        !engine
            .observe(&event("connection reset by peer", "b", t0 + 5))
            .echo
    );
    assert!(
        !engine
            .observe(&event("connection reset by peer", "b", t0 + 6))
            .echo
    );

    let id = first.cluster.expect("clustered");
    let detail = engine.cluster(id, t0 + 10 * NANOS_PER_SEC).expect("known");
    assert_eq!(detail.summary.count, 4, "failures, not reports");
    assert_eq!(detail.summary.reports, 7);
    assert_eq!(detail.summary.last_minute_count, 4);
    assert_eq!(detail.per_second.iter().map(|p| p.1).sum::<u64>(), 4);
    assert_eq!(detail.samples.len(), 4);
    // The traced failure was seen in both sources and both services.
    assert_eq!(
        detail.sources,
        [(EventSource::FileLog, 3), (EventSource::Span, 2)]
    );
    assert_eq!(
        detail.services,
        [("svc-b".to_owned(), 4), ("svc-a".to_owned(), 1)]
    );
    // Templates count the reports of their own shape, with the services that wrote them.
    let caller = detail
        .templates
        .iter()
        .find(|t| t.text.starts_with("GET"))
        .expect("the caller's template");
    assert_eq!(caller.count, 2);
    assert_eq!(caller.services, [("svc-a".to_owned(), 2)]);
    let counters = engine.counters().bounds;
    assert_eq!(counters.echo_events, 3);
    assert_eq!(counters.events, 7);
}

#[test]
fn a_status_echo_is_seen_by_its_traces_failure_in_either_order() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let in_trace = |trace, text, service, t| ErrorEvent {
        trace_id: Some(trace),
        ..event(text, service, t)
    };
    let failure = "upstream call failed: Get \"http://127.0.0.1:41234/users/7\": EOF";
    let span_502 = "HTTP 502 from GET /internal/checkout/:id";
    let caller_502 =
        "GET http://127.0.0.1:33125/internal/checkout/7: unexpected status 502 Bad Gateway";
    // Trace 1: the failure first, then its echoes up the chain.
    let t1 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let eof = engine.observe_from(&in_trace(t1, failure, "b", t0), EventSource::FileLog);
    let echo = engine.observe_from(&in_trace(t1, span_502, "b", t0 + 1), EventSource::Span);
    let up = engine.observe_from(&in_trace(t1, caller_502, "a", t0 + 2), EventSource::FileLog);
    assert!(!eof.echo && echo.echo && up.echo);
    assert_eq!(
        echo.cluster, eof.cluster,
        "tagged with the failure's pattern"
    );
    // Trace 2: the echoes arrive first (another file, another exporter); the failure then
    // takes them back.
    let t2 = "00f067aa0ba902b700f067aa0ba902b7";
    let early = engine.observe_from(&in_trace(t2, span_502, "a", t0 + 3), EventSource::Span);
    assert!(!early.echo, "no failure known yet: it counts");
    let caller = engine.observe_from(&in_trace(t2, caller_502, "a", t0 + 4), EventSource::FileLog);
    assert!(!caller.echo);
    let late = engine.observe_from(&in_trace(t2, failure, "b", t0 + 5), EventSource::FileLog);
    assert!(!late.echo);
    assert!(
        engine
            .observe_from(&in_trace(t2, span_502, "b", t0 + 6), EventSource::Span)
            .echo
    );
    // Trace 3: a 502 and nothing else: the only word of that failure, it counts.
    let t3 = "0af7651916cd43dd8448eb211c80319c";
    let alone = engine.observe_from(&in_trace(t3, span_502, "b", t0 + 7), EventSource::Span);
    assert!(!alone.echo);

    let now = t0 + 10 * NANOS_PER_SEC;
    let detail = engine
        .cluster(eof.cluster.expect("clustered"), now)
        .expect("known");
    assert_eq!(detail.summary.count, 2, "one per failed request");
    assert_eq!(
        detail.sources,
        [(EventSource::FileLog, 2), (EventSource::Span, 2)],
        "seen in the echoes' sources too"
    );
    let status = engine
        .cluster(alone.cluster.expect("clustered"), now)
        .expect("known");
    assert_eq!(
        status.summary.count, 1,
        "only the trace without another failure"
    );
    assert_eq!(status.summary.last_minute_count, 1);
    assert_eq!(status.per_second.iter().map(|p| p.1).sum::<u64>(), 1);
    // The caller's 502 log lines echoed failures every time: no failure kind of their own.
    assert!(engine
        .cluster(caller.cluster.expect("clustered"), now)
        .is_none_or(|d| d.summary.id == eof.cluster.expect("clustered")));
    let listed: Vec<u64> = engine
        .clusters(&ClusterQuery {
            now_unix_nanos: now,
            ..ClusterQuery::default()
        })
        .iter()
        .map(|row| row.count)
        .collect();
    assert_eq!(
        listed.iter().sum::<u64>(),
        3,
        "three failed requests: {listed:?}"
    );
}

#[test]
fn stacks_give_the_pattern_its_frames_and_latest_stack() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let text = "runtime error: index out of range [2] with length 0";
    let mut last = None;
    for (i, frame) in [
        "main.priceOf service.go:245",
        "main.priceOf service.go:245",
        "main.load db.go:9",
    ]
    .into_iter()
    .enumerate()
    {
        let stack = format!("goroutine {i} [running]:\n{frame}");
        last = engine
            .observe(&ErrorEvent {
                stack: Some(&stack),
                frame: Some(frame),
                ..event(text, "b", t0 + i as i64)
            })
            .cluster;
    }
    engine.observe(&event(text, "b", t0 + 5));
    let detail = engine.cluster(last.expect("clustered"), t0).expect("known");
    assert_eq!(
        detail.frames,
        [
            ("main.priceOf service.go:245".to_owned(), 2),
            ("main.load db.go:9".to_owned(), 1)
        ]
    );
    assert_eq!(detail.frames_total, 3);
    assert_eq!(
        detail.stack.map(|(text, _)| text).as_deref(),
        Some("goroutine 2 [running]:\nmain.load db.go:9"),
        "the latest stack"
    );
}

#[test]
fn two_roots_of_one_pattern_in_one_trace_count_once() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    // The CLIENT span's text and the caller's stdlib-log line with a logfmt tail: two
    // roots, which DBSCAN puts in one pattern.
    let span_text = "Get \"http://127.0.0.1:9/x\": context deadline exceeded";
    let line = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let first = engine.observe(&event(span_text, "a", t0));
    engine.observe(&event(line, "a", t0));
    engine.maintain();
    let traced = |text, t| ErrorEvent {
        trace_id: Some(TRACE),
        ..event(text, "a", t)
    };
    let a = engine.observe_from(&traced(span_text, t0 + 1), EventSource::Span);
    let b = engine.observe_from(&traced(line, t0 + 2), EventSource::FileLog);
    assert_eq!(a.cluster, b.cluster, "one pattern");
    assert_eq!(first.cluster, a.cluster);
    assert!(!a.echo && b.echo);
    let detail = engine
        .cluster(a.cluster.expect("clustered"), t0 + NANOS_PER_SEC)
        .expect("known");
    assert_eq!(detail.roots.len(), 2);
    assert_eq!(detail.summary.count, 3, "two untraced, one traced failure");
    assert_eq!(detail.summary.reports, 4);
}

#[test]
fn a_request_that_failed_in_two_patterns_says_so_and_keeps_it_across_a_restart() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    // A hung callee: the dial times out, and the retry's connection waits for headers
    // until the request's deadline. Two error kinds, one failed request.
    let dial = "Get \"http://127.0.0.1:9/x\": dial tcp 127.0.0.1:9: i/o timeout";
    let wait = "Get \"http://127.0.0.1:9/x\": context deadline exceeded";
    let traced = |text, trace, t| ErrorEvent {
        trace_id: Some(trace),
        ..event(text, "a", t)
    };
    let other = "00f92f3577b34da6a3ce929d0e0e4736";
    let d = engine.observe_from(&traced(dial, TRACE, t0), EventSource::Span);
    let w = engine.observe_from(&traced(wait, TRACE, t0 + 1), EventSource::Span);
    // Its log line is an echo of the second failure: nothing more is shared.
    engine.observe_from(&traced(wait, TRACE, t0 + 2), EventSource::FileLog);
    // A request that only waited: its own failure, shared with nothing.
    engine.observe_from(&traced(wait, other, t0 + 3), EventSource::Span);
    engine.maintain();
    let (d, w) = (d.cluster.expect("dial"), w.cluster.expect("wait"));
    assert_ne!(d, w, "two error kinds, two patterns");
    let summary = |id| {
        engine
            .clusters(&ClusterQuery::default())
            .into_iter()
            .find(|s| s.id == id)
            .expect("listed")
    };
    assert_eq!(summary(w).count, 2);
    assert_eq!(summary(w).failed_before, vec![(d, 1)]);
    assert_eq!(summary(d).count, 1);
    assert!(summary(d).failed_before.is_empty(), "it failed first");
    let restored =
        Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default()).expect("restored");
    let again = restored
        .clusters(&ClusterQuery::default())
        .into_iter()
        .find(|s| s.id == w)
        .expect("listed after a restart");
    assert_eq!(again.failed_before, vec![(d, 1)]);
}

#[test]
fn the_current_rate_is_the_last_minute_and_values_beyond_the_top_are_counted() {
    let config = ClusteringConfig {
        top_values: 2,
        ..ClusteringConfig::default()
    };
    let engine = Engine::new(config);
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    // Ten an hour ago... then three in the last minute.
    let mut id = None;
    for i in 0..10 {
        let text = format!("dial tcp 10.0.0.{i}:80: connect: connection refused");
        id = engine.observe(&event(&text, "a", t0 + i)).cluster;
    }
    let now = t0 + 60 * MIN;
    for i in 0..3 {
        let text = format!("dial tcp 10.0.0.{i}:80: connect: connection refused");
        engine.observe(&event(&text, "a", now - (i + 1) * NANOS_PER_SEC));
    }
    let rows = engine.clusters(&ClusterQuery {
        now_unix_nanos: now,
        ..ClusterQuery::default()
    });
    assert_eq!(rows[0].count, 13);
    assert_eq!(rows[0].last_minute_count, 3);
    let detail = engine.cluster(id.expect("clustered"), now).expect("known");
    // Thirteen addresses: two distinct values kept, all thirteen counted.
    assert_eq!(detail.values_total, 13);
    assert!(detail.top_values.iter().map(|v| v.1).sum::<u64>() < 13);
}

#[test]
fn wrappers_and_services_share_a_cluster_with_samples_and_counts() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * 1_000_000_000;
    let a = engine.observe(&ErrorEvent {
        trace_id: Some(TRACE),
        ..event(
            "failed to call user service: Get \"http://u:80/1\": EOF",
            "a",
            t0,
        )
    });
    let b = engine.observe(&event("GetUser(42): EOF", "b", t0 + MIN));
    let c = engine.observe(&event("read body: unexpected EOF", "a", t0 + MIN));
    engine.maintain();
    assert_eq!(a.cluster, b.cluster);
    assert_ne!(a.cluster, c.cluster);
    let id = a.cluster.expect("clustered");
    let detail = engine.cluster(id, t0 + 2 * MIN).expect("known");
    assert_eq!(detail.summary.count, 2);
    assert_eq!(detail.summary.services, ["svc-a", "svc-b"]);
    assert_eq!(detail.samples.len(), 2);
    assert_eq!(detail.samples[1].trace_id.as_deref(), Some(TRACE));
    assert_eq!(detail.templates.len(), 2);
}

/// A row of the list reads its per-minute counts without the whole detail: the same counts,
/// summed over the cluster's roots (here a wrapper and a plain report of one EOF).
#[test]
fn a_clusters_minutes_are_its_details_per_minute_counts() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_040 * 1_000_000_000;
    let a = engine.observe(&event(
        "failed to call user service: Get \"http://u:80/1\": EOF",
        "a",
        t0,
    ));
    engine.observe(&event("GetUser(42): EOF", "b", t0 + MIN));
    engine.observe(&event("GetUser(43): EOF", "b", t0 + MIN + 1));
    engine.maintain();
    let id = a.cluster.expect("clustered");
    let detail = engine.cluster(id, t0 + 2 * MIN).expect("known");
    assert_eq!(detail.summary.count, 3, "one cluster: {:?}", detail.roots);
    let minute = 1_700_000_040 / 60 * 60;
    assert_eq!(detail.per_minute, [(minute, 1), (minute + 60, 2)]);
    assert_eq!(engine.cluster_minutes(id), Some(detail.per_minute));
    let unknown = ClusterId::of("no such pattern");
    assert_eq!(engine.cluster_minutes(unknown), None);
}

/// What the diagnosis reads of a pattern at every pass (its newest samples, its counts per
/// second) is the detail's, summed over its roots where their seconds meet.
#[test]
fn a_clusters_samples_and_seconds_are_its_details_over_every_root() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_040 * NANOS_PER_SEC;
    // Two roots DBSCAN puts in one pattern (see `two_roots_of_one_pattern_in_one_trace_count_once`),
    // their seconds interleaved and shared.
    let span_text = "Get \"http://127.0.0.1:9/x\": context deadline exceeded";
    let line = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let a = engine.observe(&event(span_text, "a", t0));
    engine.observe(&event(line, "b", t0 + 1));
    engine.observe(&event(line, "b", t0 + 2 * NANOS_PER_SEC));
    engine.observe(&event(span_text, "a", t0 + 2 * NANOS_PER_SEC + 5));
    engine.observe(&event(line, "b", t0 + NANOS_PER_SEC));
    engine.maintain();
    let id = a.cluster.expect("clustered");
    let detail = engine.cluster(id, t0 + MIN).expect("known");
    assert_eq!(detail.roots.len(), 2, "two roots: {:?}", detail.roots);
    let s0 = t0 / NANOS_PER_SEC;
    assert_eq!(detail.per_second, [(s0, 2), (s0 + 1, 1), (s0 + 2, 2)]);
    let found = engine.cluster_samples(id).expect("known");
    assert_eq!(found.per_second, detail.per_second);
    let times =
        |samples: &[Sample]| -> Vec<i64> { samples.iter().map(|s| s.time_unix_nanos).collect() };
    assert_eq!(times(&found.samples), times(&detail.samples));
    assert_eq!(found.samples[0].message, detail.samples[0].message);
    assert_eq!(found.samples.len(), 5);
}

#[test]
fn names_show_typed_placeholders_and_ids_hash_the_plain_shape() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let mut obs = None;
    for i in 0..3 {
        obs = Some(engine.observe(&event(
            &format!("read tcp 10.0.0.{i}:4{i}->10.0.0.9:80: read: connection reset by peer"),
            "a",
            t0 + i64::from(i),
        )));
    }
    engine.observe(&event("reset: connection reset by peer", "a", t0 + 9));
    engine.maintain();
    let obs = obs.expect("observed");
    let id = obs.cluster.expect("clustered");
    // Ids are hashes of the `<*>` forms, whatever the display says.
    assert_eq!(id, ClusterId::of("connection reset by peer"));
    assert_eq!(
        obs.template,
        Some(TemplateId::of(
            "read tcp <*>-><*>: read: connection reset by peer"
        ))
    );
    let detail = engine.cluster(id, t0 + MIN).expect("known");
    assert_eq!(
        detail.summary.name,
        "read tcp <ip:port>-><ip:port>: read: connection reset by peer"
    );
    assert_eq!(detail.summary.canonical, "connection reset by peer");
    assert_eq!(detail.templates[0].text, detail.summary.name);
}

#[test]
fn a_merged_template_id_still_resolves_after_a_restart() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let first = engine
        .observe(&event("cache alpha: connection refused", "a", t0))
        .template
        .expect("templated");
    for (i, name) in ["beta", "gamma", "delta", "epsilon", "zeta"]
        .iter()
        .enumerate()
    {
        engine.observe(&event(
            &format!("cache {name}: connection refused"),
            "a",
            t0 + i as i64,
        ));
    }
    engine.maintain();
    let merged = TemplateId::of("cache <*>: connection refused");
    assert_ne!(first, merged);
    assert_eq!(engine.resolve_template(first), Some(merged));
    let restored =
        Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default()).expect("restored");
    assert_eq!(restored.resolve_template(first), Some(merged));
    assert_eq!(restored.resolve_template(merged), Some(merged));
    // Either template id leads to the pattern that holds the template now.
    let cluster = engine
        .cluster_of_template(first)
        .expect("the merged-away template id leads to its pattern");
    assert_eq!(engine.cluster_of_template(merged), Some(cluster));
    assert_eq!(restored.cluster_of_template(first), Some(cluster));
    let detail = engine.cluster(cluster, t0 + MIN).expect("live");
    assert!(detail.templates.iter().any(|t| t.id == merged));
    assert_eq!(engine.cluster_of_template(TemplateId(7)), None);
}

#[test]
fn a_renamed_cluster_id_still_resolves_after_a_restart() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let long = "Get \"http://u:80/x\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let first = engine.observe(&event(long, "a", t0)).cluster;
    engine.maintain();
    let old = first.expect("clustered");
    // The plain wording of the same kind arrives later: the pattern is named after it
    // from the next maintenance on, and the old id stays an alias.
    engine.observe(&event("call user: context deadline exceeded", "a", t0 + 1));
    engine.maintain();
    let new = ClusterId::of("context deadline exceeded");
    assert_ne!(old, new);
    assert_eq!(engine.resolve_cluster(old), Some(new));
    let detail = engine
        .cluster(old, t0 + MIN)
        .expect("the old id still answers");
    assert_eq!(detail.summary.id, new);
    assert_eq!(detail.summary.count, 2);
    assert_eq!(
        detail.former_ids,
        [old],
        "the old id is listed for older tags"
    );

    let text = serde_json::to_string(&engine.snapshot()).expect("serialised");
    assert!(text.contains("\"version\":\"V2\""), "{text}");
    let restored = Engine::from_snapshot(
        serde_json::from_str(&text).expect("read back"),
        ClusteringConfig::default(),
    )
    .expect("restored");
    assert_eq!(
        restored.migration(),
        None,
        "the current format needs no migration"
    );
    assert_eq!(restored.resolve_cluster(old), Some(new));
    assert_eq!(restored.resolve_cluster(new), Some(new));
    assert_eq!(
        restored.cluster(old, t0 + MIN).map(|d| d.summary.id),
        Some(new)
    );
    assert_eq!(restored.resolve_cluster(ClusterId(7)), None);
}

#[test]
fn a_format_1_snapshot_is_migrated_to_rule_ids_and_says_so() {
    // Written by the previous version: one cluster of two roots, named after the oldest
    // (the long wording).
    let long = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let stats = r#"{"count":3,"first":1,"last":2,"minutes":[[0,3]],"services":{"a":3},
        "severities":{"error":3},"samples":[],"values":{}}"#;
    let text = format!(
        r#"{{"version":"V1","keys":[
            {{"shape":"call: {long}","stats":{{"count":3,"first":1,"last":2,"root":0}}}},
            {{"shape":"call: context deadline exceeded","stats":{{"count":3,"first":1,"last":2,"root":1}}}}],
        "roots":[{{"text":"{long}","label":0,"stats":{stats}}},
            {{"text":"context deadline exceeded","label":0,"stats":{stats}}}],
        "canonical":[0],"counters":{{"events":6}}}}"#
    );
    let snapshot: Snapshot = serde_json::from_str(&text).expect("format 1 reads");
    let engine = Engine::from_snapshot(snapshot, ClusteringConfig::default()).expect("restored");
    let old = ClusterId::of(long);
    let new = ClusterId::of("context deadline exceeded");
    let migration = engine.migration().expect("a migration is reported");
    assert_eq!(
        *migration,
        Migration {
            from_format: 1,
            to_format: 2,
            cluster_ids_changed: 1
        }
    );
    assert!(migration.to_string().contains("1 pattern ids changed"));
    let rows = engine.clusters(&ClusterQuery::default());
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].count), (new, 6));
    assert_eq!(engine.resolve_cluster(old), Some(new));
    // Written back in the current format, with the alias.
    let again = Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default())
        .expect("restored again");
    assert_eq!(again.migration(), None);
    assert_eq!(again.resolve_cluster(old), Some(new));
}

#[test]
fn a_burst_of_a_new_error_is_emerging_and_old_steady_one_is_not() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * 1_000_000_000;
    for m in 0..60 {
        engine.observe(&event(
            "dial tcp 10.0.0.1:5432: connect: connection refused",
            "a",
            t0 + m * MIN,
        ));
    }
    for i in 0..20 {
        engine.observe(&event(
            "write tcp 1.2.3.4:1->5.6.7.8:2: write: broken pipe",
            "b",
            t0 + 59 * MIN + i,
        ));
    }
    let now = t0 + 59 * MIN + 30_000_000_000;
    let emerging = engine.emerging(now, 10);
    assert_eq!(emerging.len(), 1, "{emerging:?}");
    assert_eq!(emerging[0].canonical, "broken pipe");
    let e = emerging[0].emergence.as_ref().expect("reason");
    assert_eq!(e.kind, crate::emergence::EmergenceKind::New);
}

#[test]
fn per_second_counts_place_late_events_and_keep_only_recent_seconds() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * NANOS_PER_SEC;
    let text = "read tcp 10.0.0.1:1->10.0.0.2:80: read: connection reset by peer";
    // Three in second 0, one in second 2, then a late one in second 1.
    for dt in [0, 10, 20] {
        engine.observe(&event(text, "a", t0 + dt));
    }
    engine.observe(&event(text, "a", t0 + 2 * NANOS_PER_SEC));
    let obs = engine.observe(&event(text, "a", t0 + NANOS_PER_SEC + 5));
    let id = obs.cluster.expect("clustered");
    let detail = engine.cluster(id, t0 + 3 * NANOS_PER_SEC).expect("known");
    let s0 = 1_700_000_000;
    assert_eq!(detail.per_second, [(s0, 3), (s0 + 1, 1), (s0 + 2, 1)]);

    // One event per second for longer than the bound: only the latest seconds stay.
    let later = t0 + 10 * NANOS_PER_SEC;
    for i in 0..(SECOND_HISTORY as i64 + 100) {
        engine.observe(&event(text, "a", later + i * NANOS_PER_SEC));
    }
    let detail = engine
        .cluster(id, later + 2_000 * NANOS_PER_SEC)
        .expect("known");
    assert_eq!(detail.per_second.len(), SECOND_HISTORY);
    let last = s0 + 10 + SECOND_HISTORY as i64 + 99;
    assert_eq!(detail.per_second.last(), Some(&(last, 1)));
    assert_eq!(detail.per_second[0], (last - SECOND_HISTORY as i64 + 1, 1));
}

#[test]
fn snapshot_restores_ids_and_counts() {
    let engine = Engine::new(ClusteringConfig::default());
    let t0 = 1_700_000_000 * 1_000_000_000;
    let mut obs = Vec::new();
    for i in 0..10 {
        obs.push(engine.observe(&event(
            &format!("GetUser({i}): record not found"),
            "a",
            t0 + i,
        )));
        obs.push(engine.observe(&event("read: connection reset by peer", "b", t0 + i)));
    }
    engine.maintain();
    let mut before = engine.clusters(&ClusterQuery {
        now_unix_nanos: t0,
        ..Default::default()
    });
    // Per-second counts are not persisted (see `ClusterDetail::per_second`), so the
    // current rate starts again from zero after a restart.
    for row in &mut before {
        row.last_minute_count = 0;
    }
    // Through the file format, as the agent stores it.
    let text = serde_json::to_string(&engine.snapshot()).expect("serialised");
    let snapshot = serde_json::from_str(&text).expect("read back");
    let restored = Engine::from_snapshot(snapshot, ClusteringConfig::default()).expect("restored");
    let after = restored.clusters(&ClusterQuery {
        now_unix_nanos: t0,
        ..Default::default()
    });
    assert_eq!(before, after);
    let again = restored.observe(&event("GetUser(99): record not found", "a", t0 + 50));
    assert_eq!(again, obs[0]);
}

#[test]
fn an_explosion_of_kinds_stays_bounded_and_a_new_kind_still_gets_its_pattern() {
    let config = ClusteringConfig {
        max_templates: 100,
        max_clusters: 50,
        ..ClusteringConfig::default()
    };
    let engine = Engine::new(config);
    let t0 = 1_700_000_000 * (NANOS_PER_MIN / 60);
    let mut known = None;
    for i in 0..100 {
        known = engine
            .observe(&event(
                &format!("dial tcp 1.2.3.{i}:80: connect: connection refused"),
                "a",
                t0 + i64::from(i),
            ))
            .cluster;
    }
    for i in 0..5_000u32 {
        // Distinct words, never repeating: every message a new shape and a new root.
        let word: String = format!("{i:x}")
            .chars()
            .map(|c| (b'g' + c as u8 % 16) as char)
            .collect();
        engine.observe(&event(
            &format!("zz{word} failure of kind{word}"),
            "b",
            t0 + 1_000 + i64::from(i),
        ));
    }
    let EngineCounts {
        bounds: counters,
        templates,
        clusters,
    } = engine.counters();
    assert!(templates <= 100 && clusters <= 50, "{templates} {clusters}");
    assert!(counters.roots_evicted > 4_000, "{counters:?}");
    assert_eq!(counters.other_events, 0, "{counters:?}");
    // The frequent pattern kept its id and every one of its events.
    let rows = engine.clusters(&ClusterQuery {
        now_unix_nanos: t0 + 10_000,
        ..ClusterQuery::default()
    });
    let refused = rows.iter().find(|r| Some(r.id) == known).expect("kept");
    assert_eq!(refused.count, 100);
    // A kind never seen before still becomes its own pattern.
    let new = engine.observe(&event(
        "x509: certificate has expired or is not yet valid",
        "c",
        t0 + 20_000,
    ));
    assert!(new.cluster.is_some() && new.cluster != known);
    let again = engine.observe(&event(
        "dial tcp 5.6.7.8:81: connect: connection refused",
        "a",
        t0 + 20_001,
    ));
    assert_eq!(again.cluster, known);
}

#[test]
fn roots_not_seen_lately_leave_before_recent_ones() {
    let config = ClusteringConfig {
        max_clusters: 10,
        ..ClusteringConfig::default()
    };
    let engine = Engine::new(config);
    let hour = 60 * NANOS_PER_MIN;
    let kinds = [
        "EOF",
        "unexpected EOF",
        "i/o timeout",
        "connection reset by peer",
        "broken pipe",
        "no such host",
        "context canceled",
        "permission denied",
        "disk quota exceeded",
        "too many open files",
    ];
    // One old kind seen many times two hours ago, nine recent rare ones.
    for i in 0..50 {
        engine.observe(&event(kinds[0], "a", i));
    }
    for (i, k) in kinds.iter().enumerate().skip(1) {
        engine.observe(&event(k, "a", 2 * hour + i as i64));
    }
    engine.observe(&event("no space left on device", "a", 2 * hour + 100));
    let counters = engine.counters().bounds;
    assert_eq!(counters.roots_evicted, 1);
    assert_eq!(
        counters.root_evicted_events, 50,
        "the stale kind left, not a recent one"
    );
    let mut rows = engine.clusters(&ClusterQuery {
        now_unix_nanos: 2 * hour + 200,
        ..ClusterQuery::default()
    });
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.canonical != "EOF"));
    // Per-second counts (the current rate) are not kept in snapshots.
    for row in &mut rows {
        row.last_minute_count = 0;
    }
    // The survivors are intact and still answer to their ids after a snapshot round trip.
    let restored =
        Engine::from_snapshot(engine.snapshot(), ClusteringConfig::default()).expect("restore");
    let again = restored.clusters(&ClusterQuery {
        now_unix_nanos: 2 * hour + 200,
        ..ClusterQuery::default()
    });
    assert_eq!(rows, again);
}

/// Found by the `cluster_snapshot` and `state` fuzz targets: a snapshot listing one template
/// shape twice was restored as one key of the miner with two entries of statistics, and the
/// next snapshot (the agent's next commit) or summary indexed past the miner's keys and
/// panicked. It is refused as corrupt, like a root listed twice (the agent sets the state
/// file aside and starts).
#[test]
fn a_snapshot_listing_a_template_shape_twice_is_refused() {
    let key = r#"{"shape":"failed to load message: context canceled","stats":{"count":1,
        "first":1710145337000000000,"last":1710145337000000000,"root":0,"services":{},
        "kinds":""}}"#;
    let text = format!(
        r#"{{"version":"V2","keys":[{key},{key}],"roots":[{{"text":"context canceled",
        "label":0,"stats":{{"count":2,"first":1710145337000000000,"last":1710145337000000000,
        "minutes":[],"services":{{}},"severities":{{"warn":2}},"samples":[],"values":{{}},
        "values_total":0,"reports":2,"sources":{{"file_log":2}}}}}}],"canonical":[0],
        "counters":{{"events":2}},"template_aliases":[],"cluster_aliases":[]}}"#
    );
    let snapshot: Snapshot = serde_json::from_str(&text).expect("a well-formed snapshot");
    match Engine::from_snapshot(snapshot, ClusteringConfig::default()) {
        Err(crate::snapshot::SnapshotError::Corrupt(why)) => {
            assert!(why.contains("listed twice"), "{why}");
        }
        Ok(engine) => {
            // What the agent did next with it: its next commit.
            let _ = engine.snapshot();
            panic!("restored");
        }
    }
}
