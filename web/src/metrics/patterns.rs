//! The error patterns on `/metrics`: bounded, stable series per cluster id.
//!
//! Which patterns get series of their own is decided once per pattern, at the first scrape
//! that sees it, and kept until the pattern leaves the cluster store (evicted): a series once
//! exported never disappears while its pattern exists, and a pattern counted in `other`
//! stays there, so neither its own counter nor `other`'s ever jumps back (Prometheus would
//! read a drop as a reset). While fewer than the bound have series, a new pattern gets one;
//! when several arrive at once and slots are scarce, emerging and busier patterns come first.
//!
//! `other`'s event counter is accumulated from the growth of the patterns it holds, so a
//! pattern evicted from `other` does not make it fall. Memory: one entry per pattern in the
//! cluster store (which is bounded), no history.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{family, single, Value};
use crate::model::{ClusterSummary, ClusterView};

/// The label value of the sum of the patterns beyond the bound.
const OTHER: &str = "other";

/// Longest template text on `faultline_cluster_info`, in characters.
const MAX_TEMPLATE_CHARS: usize = 200;

/// Which patterns have series of their own, and what `other` has counted.
#[derive(Debug, Default)]
pub(super) struct PatternSeries {
    /// Most patterns with series of their own.
    max: usize,
    /// Patterns with series of their own.
    own: HashSet<String>,
    /// Patterns summed in `other`, with the count they had at the last scrape.
    in_other: HashMap<String, u64>,
    /// Events of the patterns in `other`, accumulated (never falls).
    other_events: u64,
}

/// One scrape's view of the patterns: those with series of their own, by id, and `other`.
#[derive(Debug)]
pub(super) struct Assignment<'a> {
    /// Patterns with series of their own, ordered by id.
    pub(super) own: Vec<&'a ClusterSummary>,
    /// The sum of the rest.
    pub(super) other: OtherPatterns,
}

/// The patterns beyond the bound, summed.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct OtherPatterns {
    /// How many.
    pub(super) patterns: u64,
    /// Their events since they were first scraped (plus their counts then).
    pub(super) events: u64,
    /// Their summed rate per minute.
    pub(super) rate_per_minute: f64,
    /// How many of them are emerging.
    pub(super) emerging: u64,
}

impl PatternSeries {
    /// At most `max` patterns with series of their own.
    pub(super) fn new(max: usize) -> PatternSeries {
        PatternSeries {
            max,
            ..PatternSeries::default()
        }
    }

    /// Places every pattern of `clusters` (the store's current summaries) and forgets the
    /// patterns no longer in it.
    pub(super) fn assign<'a>(&mut self, clusters: &'a [ClusterSummary]) -> Assignment<'a> {
        let present: HashSet<&str> = clusters.iter().map(|c| c.id.as_str()).collect();
        self.own.retain(|id| present.contains(id.as_str()));
        self.in_other.retain(|id, _| present.contains(id.as_str()));

        let mut newcomers: Vec<&ClusterSummary> = clusters
            .iter()
            .filter(|c| !self.own.contains(&c.id) && !self.in_other.contains_key(&c.id))
            .collect();
        newcomers.sort_by(|a, b| most_needed_first(a, b));
        for c in newcomers {
            if self.own.len() < self.max {
                self.own.insert(c.id.clone());
            } else {
                // Counted from 0: its occurrences so far join `other` at this scrape.
                self.in_other.insert(c.id.clone(), 0);
            }
        }

        let mut own = Vec::with_capacity(self.own.len());
        let mut other = OtherPatterns::default();
        for c in clusters {
            if self.own.contains(&c.id) {
                own.push(c);
            } else if let Some(last) = self.in_other.get_mut(&c.id) {
                // A count that fell (the store restarted the pattern) adds nothing; its growth
                // from there on counts.
                self.other_events = self
                    .other_events
                    .saturating_add(c.total_count.saturating_sub(*last));
                *last = c.total_count;
                other.patterns += 1;
                other.rate_per_minute += c.rate_per_minute;
                other.emerging += u64::from(c.emergence.is_some());
            }
        }
        other.events = self.other_events;
        own.sort_by(|a, b| a.id.cmp(&b.id));
        Assignment { own, other }
    }
}

/// One sample per pattern of `own` (its value by `value`), then `other`'s.
fn with_other<'a>(
    own: &'a [&'a ClusterSummary],
    value: impl Fn(&ClusterSummary) -> Value + 'a,
    other: Value,
) -> impl Iterator<Item = ([(&'static str, &'a str); 1], Value)> + 'a {
    own.iter()
        .map(move |c| ([("cluster_id", c.id.as_str())], value(c)))
        .chain(std::iter::once(([("cluster_id", OTHER)], other)))
}

/// Emerging patterns first (by score), then the most occurrences, then the id.
fn most_needed_first(a: &ClusterSummary, b: &ClusterSummary) -> Ordering {
    let score = |c: &ClusterSummary| c.emergence.as_ref().map(|e| e.score);
    match (score(a), score(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| b.total_count.cmp(&a.total_count))
    .then_with(|| a.id.cmp(&b.id))
}

/// The pattern metrics, read from the cluster store at each scrape.
pub(super) struct PatternCollector {
    clusters: Arc<dyn ClusterView>,
    series: Mutex<PatternSeries>,
}

impl PatternCollector {
    /// Pattern series of at most `max` patterns over `clusters`.
    pub(super) fn new(clusters: Arc<dyn ClusterView>, max: usize) -> PatternCollector {
        PatternCollector {
            clusters,
            series: Mutex::new(PatternSeries::new(max)),
        }
    }
}

impl fmt::Debug for PatternCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternCollector")
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

impl Collector for PatternCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let clusters = self.clusters.summaries();
        // A panic while the lock was held left consistent data (each step is a plain
        // update), so a poisoned lock is used as is.
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let max = series.max;
        let Assignment { own, other } = series.assign(&clusters);
        drop(series);

        let bound = format!(
            "At most {max} patterns have series of their own (web.max_pattern_series), each kept \
             until its pattern is evicted; the patterns beyond are summed in cluster_id=\"other\"."
        );
        family(
            &mut encoder,
            "faultline_cluster_events",
            &format!("Occurrences of each error pattern. {bound}"),
            MetricType::Counter,
            with_other(
                &own,
                |c| Value::from(c.total_count),
                Value::from(other.events),
            ),
        )?;
        family(
            &mut encoder,
            "faultline_cluster_rate_per_minute",
            &format!("Current rate of each error pattern, per minute. {bound}"),
            MetricType::Gauge,
            with_other(
                &own,
                |c| Value::from(c.rate_per_minute),
                Value::from(other.rate_per_minute),
            ),
        )?;
        family(
            &mut encoder,
            "faultline_cluster_emerging",
            &format!(
                "1 while the error pattern is emerging (new or surging); for cluster_id=\"other\", \
                 how many of the patterns beyond the bound are. {bound}"
            ),
            MetricType::Gauge,
            with_other(
                &own,
                |c| Value::from(u64::from(c.emergence.is_some())),
                Value::from(other.emerging),
            ),
        )?;
        let templates: Vec<(String, &str)> = own
            .iter()
            .map(|c| {
                let template = c.canonical_template.chars().take(MAX_TEMPLATE_CHARS);
                (template.collect(), c.id.as_str())
            })
            .collect();
        family(
            &mut encoder,
            "faultline_cluster_info",
            "Canonical template of each error pattern with series of its own (always 1).",
            MetricType::Gauge,
            templates.iter().map(|(template, id)| {
                (
                    [("cluster_id", *id), ("template", template.as_str())],
                    Value::Int(1),
                )
            }),
        )?;
        single(
            &mut encoder,
            "faultline_clusters",
            "Error patterns known to the agent.",
            MetricType::Gauge,
            Value::from(clusters.len()),
        )?;
        single(
            &mut encoder,
            "faultline_cluster_series_overflow",
            "Error patterns summed in cluster_id=\"other\" because the bound on pattern series \
             (web.max_pattern_series) was reached when they appeared.",
            MetricType::Gauge,
            Value::from(other.patterns),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Emergence, EmergenceKind, MinuteCounts};

    fn pattern(id: &str, count: u64, emerging: bool) -> ClusterSummary {
        ClusterSummary {
            id: id.into(),
            canonical_template: format!("error {id}"),
            services: Vec::new(),
            first_seen_unix_ms: 0,
            last_seen_unix_ms: 0,
            total_count: count,
            untraced_count: 0,
            rate_per_minute: 1.0,
            template_count: 1,
            emergence: emerging.then(|| Emergence {
                kind: EmergenceKind::New,
                reason: "new".into(),
                score: 1.0,
                since_unix_ms: 0,
            }),
            sparkline: MinuteCounts::default(),
            culprit: None,
            failed_before: Vec::new(),
        }
    }

    fn ids(a: &Assignment<'_>) -> Vec<String> {
        a.own.iter().map(|c| c.id.clone()).collect()
    }

    #[test]
    fn series_stay_until_their_pattern_is_evicted_and_other_never_falls() {
        let mut series = PatternSeries::new(2);
        let first = vec![pattern("a", 10, false), pattern("b", 5, false)];
        assert_eq!(ids(&series.assign(&first)), ["a", "b"]);

        // A louder, emerging newcomer does not take a slot from a pattern that has one.
        let second = vec![
            pattern("a", 11, false),
            pattern("b", 5, false),
            pattern("c", 900, true),
        ];
        let a = series.assign(&second);
        assert_eq!(ids(&a), ["a", "b"]);
        assert_eq!(a.other.patterns, 1);
        assert_eq!(a.other.events, 900);
        assert_eq!(a.other.emerging, 1);

        // `b` is evicted: its slot goes to a newcomer, never back to `c` (that would make
        // `other` fall), and `other` keeps counting `c`'s growth.
        let third = vec![
            pattern("a", 12, false),
            pattern("c", 950, true),
            pattern("d", 1, false),
        ];
        let a = series.assign(&third);
        assert_eq!(ids(&a), ["a", "d"]);
        assert_eq!(a.other.events, 950);

        // `c` is evicted from `other`: `other` keeps what it counted.
        let fourth = vec![pattern("a", 12, false), pattern("d", 2, false)];
        let a = series.assign(&fourth);
        assert_eq!(a.other.patterns, 0);
        assert_eq!(a.other.events, 950);
    }

    #[test]
    fn scarce_slots_go_to_emerging_then_busier_patterns() {
        let mut series = PatternSeries::new(2);
        let clusters = vec![
            pattern("quiet", 1, false),
            pattern("busy", 500, false),
            pattern("new", 3, true),
        ];
        let a = series.assign(&clusters);
        assert_eq!(ids(&a), ["busy", "new"]);
        assert_eq!(a.other.events, 1);
        let none = PatternSeries::new(0).assign(&clusters).other;
        assert_eq!((none.patterns, none.events), (3, 504));
    }
}
