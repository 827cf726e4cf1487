//! The parser against the labelled Go error corpus (`shared/data/errcorpus/dev.log`): every
//! line is an error, so every record must be error-ish, and its cluster text must be the error
//! itself, not the logger's wrapping (no timestamps, no JSON, no `key=value` pairs, no stack).

use faultline_ingest::parse::parse_line;
use faultline_ingest::{LogRecord, Origin};

/// The corpus, from the project's shared folder beside the checkout. It is referenced, not
/// copied (5,000 lines with their labels); a checkout without it fails here, saying what is
/// missing, rather than passing with nothing checked.
fn corpus() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/errcorpus/dev.log");
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => panic!(
            "the labelled Go error corpus is missing: cannot read {} ({err}); this test needs \
             the project's shared folder (shared/data/errcorpus) beside the checkout",
            path.display()
        ),
    }
}

fn parse_all(text: &str) -> Vec<LogRecord> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            parse_line(
                line,
                Origin::File {
                    path: "dev.log".into(),
                    offset: i as u64,
                },
            )
        })
        .collect()
}

#[test]
fn every_corpus_line_is_errorish_with_a_clean_cluster_text() {
    let text = corpus();
    let records = parse_all(&text);
    assert_eq!(records.len(), 5000);
    let mut bad = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let t = r.cluster_text();
        let wrapped = t.is_empty()
            || t.starts_with("2024")
            || t.starts_with('{')
            || t.starts_with("time=")
            || t.starts_with("[GIN]")
            || t.starts_with("Error #")
            || t.contains("\\ngoroutine")
            || t.contains('\n')
            || t.contains("goroutine ")
            || t.contains(" level=");
        if wrapped || !r.is_errorish() {
            bad.push(format!("{}: errorish={} {t:?}", i + 1, r.is_errorish()));
        }
    }
    assert!(
        bad.is_empty(),
        "{} bad lines, first: {:#?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
}

#[test]
fn corpus_records_carry_times_and_trace_ids() {
    let text = corpus();
    let records = parse_all(&text);
    let dated_line = |l: &str| {
        l.starts_with('{')
            || l.starts_with("time=")
            || l.starts_with("[GIN] ")
            || l.starts_with("2024/")
    };
    for (line, r) in text.lines().zip(&records) {
        if dated_line(line) {
            assert!(r.time_unix_nanos.is_some(), "no time read from {line}");
        }
    }
    let traced = records.iter().filter(|r| r.trace_id.is_some()).count();
    let with_trace_text = text.lines().filter(|l| l.contains("trace_id")).count();
    assert_eq!(
        traced, with_trace_text,
        "every trace_id in the text is read"
    );
}
