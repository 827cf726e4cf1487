//! The live engine: observe error events, answer queries about error patterns.
//!
//! [`Engine`] is shared by the agent's tasks (`Arc<Engine>`); its state sits behind one
//! mutex held only for short, bounded work. [`Engine::observe`] masks the message, finds its
//! template key (one hash look-up for a known shape) and updates the counters of its root;
//! a new shape also computes its root and places it in the nearest cluster. The slower work
//! runs in [`Engine::maintain`], which the agent calls from a background task every few
//! seconds: template consolidation (short, under the lock) and the DBSCAN re-run over roots
//! (on a copy, outside the lock; the result is adopted under the lock afterwards).
//!
//! Statistics are kept per *root* (the innermost error kind) and summed per cluster at query
//! time, so a DBSCAN re-run that regroups roots never loses or double-counts an event.
//!
//! A root counts *failures*, not reports of them (see [`crate::occurrence`]): within one
//! trace, the first report of a pattern is an occurrence and every later report of it (the
//! caller's echo, the error span carrying the same text) only adds where it was seen. Counts,
//! per-minute and per-second series, samples and emergence are by occurrence; a template
//! counts the reports of its own shape.
//!
//! Ids: a template's and a cluster's id are content hashes, and the groupings they name are
//! functions of the set of shapes and roots seen once [`Engine::maintain`] ran (see
//! [`crate::template`] and [`crate::cluster`]), so two nodes that saw the same errors in any
//! order give the same ids. An id that a consolidation, a re-run or an eviction retires stays
//! an alias of the id that took its place ([`Engine::resolve_template`],
//! [`Engine::resolve_cluster`]; [`Engine::cluster`] follows them), kept in snapshots.
//!
//! Bounds: at most `max_templates` keys and `max_clusters` roots. When a bound is reached the
//! least useful tenth is evicted (templates: fewest events; roots: not seen within the
//! emergence baseline first, then fewest events), so a new kind of error still gets its own
//! pattern after months of uptime; an event that fits nowhere even then is counted in the
//! "other" bucket ([`EngineCounters`]), never lost silently. Samples, services and parameter
//! values per root are bounded too, and at most [`MAX_CLUSTER_ALIASES`] cluster aliases are
//! kept (oldest leave first).
//!
//! Files: this one holds the engine and its state, observing events and answering queries;
//! `event` makes an [`ErrorEvent`] of a log record, `answers` holds the query and answer
//! types, `summary` sums a cluster's list row over its roots, `evict` applies the bounds and
//! `persist` writes the state to a [`Snapshot`](crate::snapshot::Snapshot) and restores it.

mod answers;
mod event;
mod evict;
mod persist;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};

use parking_lot::Mutex;

use crate::alias::AliasMap;
use crate::batch::cut;
use crate::cluster::{ClusterId, RootClusters, RootIndex, VectorParams};
use crate::config::ClusteringConfig;
use crate::mask::{MaskedLine, ParamKind};
use crate::occurrence::{sources_of, EventSource, RecentTraces, ReportKind, Retraction, RootRef};
use crate::root::{reports_http_status, root_signature};
use crate::snapshot::Migration;
use crate::template::{display_template, KeyIndex, TemplateId, TemplateMiner};

pub use answers::{
    ClusterCounts, ClusterDetail, ClusterQuery, ClusterSamples, ClusterSummary, EngineCounters,
    EngineCounts, Observation, Sample, TemplateSummary,
};
pub use event::{severity, ErrorEvent, RecordIds};

const NANOS_PER_MIN: i64 = 60_000_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;
const MAX_SERVICES: usize = 32;
/// Services counted per template: the few that write that exact shape.
const MAX_TEMPLATE_SERVICES: usize = 8;
/// The current rate is the count of the last this many seconds, per minute.
const RATE_WINDOW_SECS: i64 = 60;

/// Most cluster aliases kept: ten times the default `max_clusters` (2,000), so every pattern
/// can be merged or renamed ten times before its oldest alias (a link older than most
/// dashboards) leaves. Memory: about 40 bytes each, under 1 MB.
pub const MAX_CLUSTER_ALIASES: usize = 20_000;
/// Most former ids a [`ClusterDetail`] lists: a pattern is renamed a handful of times in its
/// life; the bound keeps a look-up by every former id (trace tags) short.
pub const MAX_FORMER_IDS: usize = 16;

/// Seconds of per-second counts kept per root: as long as the node counters' full-resolution
/// history (15 min at 1 s by default), beside which they are read to tell whether a counter
/// moved a few seconds before or after a pattern began. Per-minute counts cover the rest.
/// Memory: at most this many `(second, count)` pairs per root, and only roots with events in
/// those seconds hold any.
pub const SECOND_HISTORY: usize = 900;

/// Stacks are kept cut to this many bytes: a goroutine dump's first frames are where the
/// failure is; a dump of every goroutine can be megabytes.
const MAX_STACK_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub(crate) struct KeyStats {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) root: RootIndex,
    pub(crate) services: BTreeMap<String, u64>,
    /// The [`ParamKind`] codes of the key's placeholders, for display only (absent in
    /// snapshots written before kinds existed: those show `<*>`).
    pub(crate) kinds: String,
    /// Whether the key's reports only tell an HTTP error status
    /// ([`crate::root::reports_http_status`]), read from its first report after a start.
    pub(crate) status: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RootStats {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) minutes: VecDeque<(i64, u64)>,
    /// (Unix second, count) of the most recent seconds with events, oldest first, at most
    /// [`SECOND_HISTORY`] of them. Kept out of snapshots (see [`ClusterDetail::per_second`]).
    pub(crate) seconds: VecDeque<(i64, u32)>,
    pub(crate) services: BTreeMap<String, u64>,
    pub(crate) severities: BTreeMap<String, u64>,
    pub(crate) samples: VecDeque<Sample>,
    pub(crate) values: HashMap<String, u64>,
    /// All parameter values counted, including those beyond the `values` table.
    pub(crate) values_total: u64,
    /// Reports, echoes included (`count` is occurrences).
    pub(crate) reports: u64,
    /// Occurrences reported without a (readable) trace id, one per record (see
    /// [`ClusterSummary::untraced`]).
    pub(crate) untraced: u64,
    /// Occurrences per source that reported them.
    pub(crate) sources: BTreeMap<EventSource, u64>,
    /// Top application frames of the stacks reported, bounded like `values`.
    pub(crate) frames: HashMap<String, u64>,
    pub(crate) frames_total: u64,
    /// The latest stack reported, with its trace id.
    pub(crate) stack: Option<(String, Option<String>)>,
    /// Occurrences in traces that had already failed with another pattern, by that pattern
    /// (its id then; resolved through the aliases when read), at most
    /// [`MAX_FAILED_BEFORE`] patterns.
    pub(crate) failed_before: BTreeMap<ClusterId, u64>,
}

/// Patterns a root remembers it shared failed requests with (see
/// [`ClusterSummary::failed_before`]): a request fails in more than a few ways rarely.
pub const MAX_FAILED_BEFORE: usize = 8;

struct State {
    config: ClusteringConfig,
    miner: TemplateMiner,
    masked: MaskedLine,
    keys: Vec<KeyStats>,
    roots: RootClusters,
    root_stats: Vec<RootStats>,
    recent: RecentTraces,
    counters: EngineCounters,
    /// Cluster ids retired by re-runs, evictions and migrations, to their successors.
    cluster_aliases: AliasMap<ClusterId>,
    /// Bumped when roots are renumbered (evicted), so that the root references the
    /// occurrence counting keeps ([`RootRef`]) never touch another root.
    root_generation: u64,
}

/// The clustering engine (see the module documentation).
pub struct Engine {
    state: Mutex<State>,
    /// What restoring an older snapshot format changed, if it did.
    migration: Option<Migration>,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: ClusteringConfig) -> Self {
        let state = State {
            miner: TemplateMiner::new(config.min_distinct_words),
            roots: RootClusters::new(vector_params(&config)),
            recent: RecentTraces::new(config.recent_traces),
            config,
            masked: MaskedLine::new(),
            keys: Vec::new(),
            root_stats: Vec::new(),
            counters: EngineCounters::default(),
            cluster_aliases: AliasMap::new(MAX_CLUSTER_ALIASES),
            root_generation: 0,
        };
        Engine {
            state: Mutex::new(state),
            migration: None,
        }
    }

    /// Clusters one event from a log file; see [`observe_from`](Self::observe_from).
    pub fn observe(&self, event: &ErrorEvent<'_>) -> Observation {
        self.observe_from(event, EventSource::FileLog)
    }

    /// Clusters one event reported by `source` and returns its template and cluster. Within
    /// one trace, a root counts once however many events report it (see the module
    /// documentation); the echoes only add to the sources and services it was seen in.
    pub fn observe_from(&self, event: &ErrorEvent<'_>, source: EventSource) -> Observation {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        s.counters.events += 1;
        let limit = s.config.max_message_bytes;
        if event.text.len() > limit {
            s.counters.truncated += 1;
        }
        let text = cut(event.text, limit);
        if text.trim().is_empty() {
            s.counters.blank += 1;
            return Observation {
                template: None,
                cluster: None,
                echo: false,
            };
        }
        s.masked.mask(text);
        let key = match s.miner.find(&s.masked) {
            Some(k) => k,
            None => match s.admit(text) {
                Some(k) => k,
                None => {
                    s.counters.other_events += 1;
                    return Observation {
                        template: None,
                        cluster: None,
                        echo: false,
                    };
                }
            },
        };
        let t = event.time_unix_nanos;
        let ks = &mut s.keys[key as usize];
        ks.count += 1;
        ks.last = ks.last.max(t);
        ks.first = ks.first.min(t);
        if let Some(service) = event.service {
            bump_bounded(&mut ks.services, service, MAX_TEMPLATE_SERVICES);
        }
        let root = ks.root;
        let kind = match *ks.status.get_or_insert_with(|| reports_http_status(text)) {
            true => ReportKind::Status,
            false => ReportKind::Failure,
        };
        let cluster = s.roots.cluster_of(root);
        let cfg = &s.config;
        let rs = &mut s.root_stats[root as usize];
        rs.reports += 1;
        bump_bounded(&mut rs.severities, event.severity, 16);
        for &(a, b) in &s.masked.params {
            let value = &text[a..b];
            rs.values_total += 1;
            if let Some(c) = rs.values.get_mut(value) {
                *c += 1;
            } else if rs.values.len() < cfg.top_values {
                rs.values.insert(value.to_string(), 1);
            }
        }
        let evicted_before = s.recent.evicted;
        let here = RootRef {
            root,
            generation: s.root_generation,
        };
        let mut retractions = Vec::new();
        let report = s.recent.report_kind(
            cluster,
            event.trace_id,
            source,
            event.service,
            (kind, here, t),
            &mut retractions,
        );
        s.counters.recent_traces_evicted += s.recent.evicted - evicted_before;
        s.retract(&retractions, root);
        // A folded status report adds where its trace's failure was seen.
        let seen_root = match report.folded_into {
            Some((_, r)) => s.current_root(r),
            None => Some(root),
        };
        if let Some(seen_root) = seen_root {
            let top_values = s.config.top_values;
            let rs = &mut s.root_stats[seen_root as usize];
            // Every report's stack counts, the echoes' too: the record with the stack is
            // often not the failure's first report (its span arrives first).
            if let Some(frame) = event.frame {
                rs.frames_total += 1;
                if let Some(c) = rs.frames.get_mut(frame) {
                    *c += 1;
                } else if rs.frames.len() < top_values {
                    rs.frames.insert(frame.to_string(), 1);
                }
            }
            if let Some(stack) = event.stack {
                rs.stack = Some((
                    cut(stack, MAX_STACK_BYTES).to_string(),
                    event.trace_id.map(str::to_string),
                ));
            }
            if report.new_source {
                *rs.sources.entry(source).or_insert(0) += 1;
            }
            if report.new_service {
                if let Some(service) = event.service {
                    bump_bounded(&mut rs.services, service, MAX_SERVICES);
                }
            }
        }
        let observation = Observation {
            template: Some(s.miner.template_of(key).0),
            cluster: Some(report.folded_into.map_or(cluster, |(c, _)| c)),
            echo: !report.first,
        };
        if !report.first {
            s.counters.echo_events += 1;
            return observation;
        }
        let cfg = &s.config;
        let rs = &mut s.root_stats[root as usize];
        rs.count += 1;
        rs.untraced += u64::from(report.untraced);
        if let Some(other) = report.failed_before_in {
            if let Some(n) = rs.failed_before.get_mut(&other) {
                *n += 1;
            } else if rs.failed_before.len() < MAX_FAILED_BEFORE {
                rs.failed_before.insert(other, 1);
            }
        }
        rs.first = rs.first.min(t);
        rs.last = rs.last.max(t);
        let minute = t.div_euclid(NANOS_PER_MIN);
        match rs.minutes.iter_mut().rev().find(|(m, _)| *m == minute) {
            Some(slot) => slot.1 += 1,
            None => {
                rs.minutes.push_back((minute, 1));
                rs.minutes.make_contiguous().sort_unstable_by_key(|e| e.0);
                while rs.minutes.len() > cfg.history_minutes.max(2) {
                    rs.minutes.pop_front();
                }
            }
        }
        count_second(&mut rs.seconds, t.div_euclid(NANOS_PER_SEC));
        if cfg.samples_per_cluster > 0 {
            if rs.samples.len() >= cfg.samples_per_cluster {
                rs.samples.pop_front();
            }
            rs.samples.push_back(Sample {
                message: cut(text, 2048).to_string(),
                service: event.service.map(str::to_string),
                trace_id: event.trace_id.map(str::to_string),
                span_id: event.span_id.map(str::to_string),
                time_unix_nanos: t,
            });
        }
        observation
    }

    /// Background work: consolidates templates and re-runs DBSCAN over the roots when new
    /// ones arrived. Holds the lock only to copy the roots and to adopt the result.
    pub fn maintain(&self) {
        let copy = {
            let mut s = self.state.lock();
            if s.miner.pending() > 0 {
                s.miner.consolidate();
            }
            if s.roots.since_rerun() == 0 {
                return;
            }
            s.roots.clone()
        };
        let mut copy = copy;
        copy.rerun();
        let mut s = self.state.lock();
        let before = s.roots.id_table();
        s.roots.adopt(copy);
        s.alias_retired(&before, None);
    }

    /// Clusters matching `query`, by window count (then total count) descending.
    pub fn clusters(&self, query: &ClusterQuery) -> Vec<ClusterSummary> {
        let s = self.state.lock();
        let keys_by_root = s.keys_by_root();
        let mut rows: Vec<ClusterSummary> = s
            .groups()
            .into_values()
            .filter_map(|roots| s.summary(&roots, &keys_by_root, query))
            .collect();
        rows.sort_by(|a, b| {
            b.window_count
                .cmp(&a.window_count)
                .then(b.count.cmp(&a.count))
                .then(a.id.cmp(&b.id))
        });
        if query.limit > 0 {
            rows.truncate(query.limit);
        }
        rows
    }

    /// One cluster in detail, `None` when unknown. An id retired by a merge or a rename
    /// gives the cluster that took its place (whose own id the detail carries).
    pub fn cluster(&self, id: ClusterId, now_unix_nanos: i64) -> Option<ClusterDetail> {
        let s = self.state.lock();
        let mut groups = s.groups();
        let id = s
            .cluster_aliases
            .resolve(id, |id| groups.contains_key(&id))?;
        let former_ids = s.former_ids(id, &groups);
        let roots = groups.remove(&id)?;
        let query = ClusterQuery {
            now_unix_nanos,
            ..ClusterQuery::default()
        };
        let summary = s.summary(&roots, &s.keys_by_root(), &query)?;
        let mut root_rows: Vec<(String, u64)> = roots
            .iter()
            .map(|&r| {
                (
                    s.roots.root_text(r).to_string(),
                    s.root_stats[r as usize].count,
                )
            })
            .collect();
        root_rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut templates: HashMap<TemplateId, TemplateSummary> = HashMap::new();
        for (k, ks) in s.keys.iter().enumerate() {
            if !roots.contains(&ks.root) || ks.count == 0 {
                continue;
            }
            let (id, _) = s.miner.template_of(k as KeyIndex);
            let e = templates.entry(id).or_insert_with(|| TemplateSummary {
                id,
                text: s.display(k as KeyIndex),
                count: 0,
                services: Vec::new(),
                first_seen_unix_nanos: ks.first,
                last_seen_unix_nanos: ks.last,
            });
            e.count += ks.count;
            e.first_seen_unix_nanos = e.first_seen_unix_nanos.min(ks.first);
            e.last_seen_unix_nanos = e.last_seen_unix_nanos.max(ks.last);
            // Several keys can share a template id (consolidated shapes): sum their services.
            for (service, c) in &ks.services {
                match e.services.iter_mut().find(|(s, _)| s == service) {
                    Some(slot) => slot.1 += c,
                    None => e.services.push((service.clone(), *c)),
                }
            }
        }
        let mut templates: Vec<TemplateSummary> = templates.into_values().collect();
        for t in &mut templates {
            t.services
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        templates.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        let mut values: HashMap<&str, u64> = HashMap::new();
        let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
        let mut services: BTreeMap<&str, u64> = BTreeMap::new();
        let mut severities: BTreeMap<&str, u64> = BTreeMap::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut values_total = 0u64;
        let mut sources: BTreeMap<EventSource, u64> = BTreeMap::new();
        let mut frames: HashMap<&str, u64> = HashMap::new();
        let mut frames_total = 0u64;
        let mut stack: Option<(i64, &(String, Option<String>))> = None;
        for &r in &roots {
            let rs = &s.root_stats[r as usize];
            values_total += rs.values_total;
            frames_total += rs.frames_total;
            for (v, c) in &rs.frames {
                *frames.entry(v).or_insert(0) += c;
            }
            if let Some(st) = &rs.stack {
                if stack.is_none_or(|(last, _)| rs.last > last) {
                    stack = Some((rs.last, st));
                }
            }
            for (source, c) in &rs.sources {
                *sources.entry(*source).or_insert(0) += c;
            }
            for (v, c) in &rs.values {
                *values.entry(v).or_insert(0) += c;
            }
            for &(m, c) in &rs.minutes {
                *per_minute.entry(m * 60).or_insert(0) += c;
            }
            for (v, c) in &rs.services {
                *services.entry(v).or_insert(0) += c;
            }
            for (v, c) in &rs.severities {
                *severities.entry(v).or_insert(0) += c;
            }
            samples.extend(rs.samples.iter().cloned());
        }
        samples.sort_by_key(|s| std::cmp::Reverse(s.time_unix_nanos));
        samples.truncate(s.config.samples_per_cluster.max(1) * 2);
        Some(ClusterDetail {
            summary,
            former_ids,
            roots: root_rows,
            templates,
            // Snapshots written before `values_total` existed: at least what is listed.
            values_total: values_total.max(values.values().sum::<u64>()),
            top_values: top(values, 10),
            sources: sources.into_iter().collect(),
            per_minute: per_minute.into_iter().collect(),
            per_second: sum_by_time(
                roots
                    .iter()
                    .flat_map(|&r| s.root_stats[r as usize].seconds.iter())
                    .map(|&(sec, c)| (sec, u64::from(c))),
            ),
            services: top(services, MAX_SERVICES),
            severities: top(severities, 16),
            samples,
            frames: top(frames, s.config.top_values),
            frames_total,
            stack: stack.map(|(_, st)| st.clone()),
        })
    }

    /// One cluster's counts per minute (the minute's start in Unix seconds, the count), as
    /// [`cluster`](Self::cluster) gives them, `None` when unknown: what a row of the list
    /// shows (sparkline, rate), without the detail's pass over every key of the engine and its
    /// copies of samples, values and frames. The list asked for the whole detail of each row
    /// whose count moved, every half second under load: O(rows × templates) per rebuild.
    pub fn cluster_minutes(&self, id: ClusterId) -> Option<Vec<(i64, u64)>> {
        let s = self.state.lock();
        let mut groups = s.groups();
        let id = s
            .cluster_aliases
            .resolve(id, |id| groups.contains_key(&id))?;
        let roots = groups.remove(&id)?;
        let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
        for &r in &roots {
            for &(m, c) in &s.root_stats[r as usize].minutes {
                *per_minute.entry(m * 60).or_insert(0) += c;
            }
        }
        Some(per_minute.into_iter().collect())
    }

    /// The newest samples of one cluster (as [`cluster`](Self::cluster) lists them) with its
    /// current and former ids, `None` when unknown: what the diagnosis reads of each pattern
    /// it judges, every run, without the detail's pass over every key of the engine.
    pub fn cluster_samples(&self, id: ClusterId) -> Option<ClusterSamples> {
        let s = self.state.lock();
        let mut groups = s.groups();
        let id = s
            .cluster_aliases
            .resolve(id, |id| groups.contains_key(&id))?;
        let former_ids = s.former_ids(id, &groups);
        let roots = groups.remove(&id)?;
        // The kept samples only are copied (each up to 2 KiB of text); the sort is stable, so
        // the same ones in the same order as sorting copies of them all.
        let mut newest: Vec<&Sample> = roots
            .iter()
            .flat_map(|&r| s.root_stats[r as usize].samples.iter())
            .collect();
        newest.sort_by_key(|s| std::cmp::Reverse(s.time_unix_nanos));
        newest.truncate(s.config.samples_per_cluster.max(1) * 2);
        Some(ClusterSamples {
            id,
            former_ids,
            samples: newest.into_iter().cloned().collect(),
            per_second: sum_by_time(
                roots
                    .iter()
                    .flat_map(|&r| s.root_stats[r as usize].seconds.iter())
                    .map(|&(sec, c)| (sec, u64::from(c))),
            ),
        })
    }

    /// The counts of the clusters `ids` (current or former ids; `None` for one no cluster
    /// has), as their summaries count them, without building any summary: what an incident
    /// is recounted from on every read of the incidents (the dashboard asks every second).
    pub fn counts(&self, ids: &[ClusterId]) -> Vec<Option<ClusterCounts>> {
        let s = self.state.lock();
        let groups = s.groups();
        ids.iter()
            .map(|&id| {
                let id = s
                    .cluster_aliases
                    .resolve(id, |id| groups.contains_key(&id))?;
                let mut counts = ClusterCounts {
                    id,
                    count: 0,
                    untraced: 0,
                    failed_before: Vec::new(),
                };
                let mut failed_before: BTreeMap<ClusterId, u64> = BTreeMap::new();
                for &r in groups.get(&id)? {
                    let rs = &s.root_stats[r as usize];
                    counts.count += rs.count;
                    counts.untraced += rs.untraced;
                    for (&other, &n) in &rs.failed_before {
                        let live = |c: ClusterId| s.roots.is_live(c);
                        if let Some(other) = s.cluster_aliases.resolve(other, live) {
                            *failed_before.entry(other).or_insert(0) += n;
                        }
                    }
                }
                counts.failed_before = failed_before.into_iter().collect();
                counts
                    .failed_before
                    .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                Some(counts)
            })
            .collect()
    }

    /// Emerging clusters now, highest score first.
    pub fn emerging(&self, now_unix_nanos: i64, limit: usize) -> Vec<ClusterSummary> {
        self.clusters(&ClusterQuery {
            emerging_only: true,
            limit: 0,
            now_unix_nanos,
            ..ClusterQuery::default()
        })
        .tap_sort()
        .into_iter()
        .take(if limit == 0 { usize::MAX } else { limit })
        .collect()
    }

    /// The current id of a template id, following merges (aliases survive consolidation,
    /// eviction and restarts); `None` when the id was never seen or its alias left the bound.
    pub fn resolve_template(&self, id: TemplateId) -> Option<TemplateId> {
        self.state.lock().miner.resolve(id)
    }

    /// The cluster that holds the template `id` now (following template merges, see
    /// [`resolve_template`](Self::resolve_template)); `None` when the template is unknown or
    /// no longer counted. Cost: one pass over the template keys.
    pub fn cluster_of_template(&self, id: TemplateId) -> Option<ClusterId> {
        let s = self.state.lock();
        let template = s.miner.resolve(id)?;
        let (_, key) =
            s.keys.iter().enumerate().find(|&(k, ks)| {
                ks.count > 0 && s.miner.template_of(k as KeyIndex).0 == template
            })?;
        Some(s.roots.cluster_of(key.root))
    }

    /// The current id of a cluster id, following merges and renames (aliases survive
    /// re-runs, evictions, restarts and the format-1 migration); `None` when the id was never
    /// seen, its cluster left (evicted), or its alias left the bound.
    pub fn resolve_cluster(&self, id: ClusterId) -> Option<ClusterId> {
        let s = self.state.lock();
        s.cluster_aliases.resolve(id, |id| s.roots.is_live(id))
    }

    /// The ids the live cluster `id` had before (see [`ClusterDetail::former_ids`]): what
    /// traces tagged and links made before a merge or rename hold. Empty for an id that is
    /// not live.
    pub fn former_ids(&self, id: ClusterId) -> Vec<ClusterId> {
        let s = self.state.lock();
        s.former_ids(id, &s.groups())
    }

    /// What restoring the snapshot changed when it was in an older format (the agent logs
    /// it at start); `None` for a fresh engine or a current-format snapshot.
    pub fn migration(&self) -> Option<&Migration> {
        self.migration.as_ref()
    }

    /// What the bounds did so far, plus the current sizes.
    pub fn counters(&self) -> EngineCounts {
        let s = self.state.lock();
        EngineCounts {
            bounds: s.counters,
            templates: s.miner.template_count(),
            clusters: s.groups().len(),
        }
    }
}

/// `(time, count)` pairs summed by time, oldest first. A cluster's roots each hold their
/// seconds in order ([`count_second`]), so the sort meets sorted runs; an ordered map took an
/// insertion per pair (900 per root), at every diagnosis pass for each pattern it reads.
fn sum_by_time(pairs: impl Iterator<Item = (i64, u64)>) -> Vec<(i64, u64)> {
    let mut all: Vec<(i64, u64)> = pairs.collect();
    all.sort_by_key(|&(t, _)| t);
    let mut out: Vec<(i64, u64)> = Vec::with_capacity(all.len());
    for (t, c) in all {
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Counts one event in `second` (Unix seconds). Events arrive mostly in order, so the usual
/// case is a bump of the last entry or a push; a late event is placed by binary search. The
/// oldest seconds leave once more than [`SECOND_HISTORY`] are held.
fn count_second(seconds: &mut VecDeque<(i64, u32)>, second: i64) {
    match seconds.back_mut() {
        Some(last) if last.0 == second => last.1 = last.1.saturating_add(1),
        Some(last) if last.0 > second => {
            let at = seconds.partition_point(|&(s, _)| s < second);
            match seconds.get_mut(at) {
                Some(slot) if slot.0 == second => slot.1 = slot.1.saturating_add(1),
                _ => seconds.insert(at, (second, 1)),
            }
        }
        _ => seconds.push_back((second, 1)),
    }
    while seconds.len() > SECOND_HISTORY {
        seconds.pop_front();
    }
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<ClusterSummary> {
    fn tap_sort(mut self) -> Self {
        self.sort_by(|a, b| {
            let sa = a.emergence.as_ref().map_or(0.0, |e| e.score);
            let sb = b.emergence.as_ref().map_or(0.0, |e| e.score);
            sb.total_cmp(&sa).then(a.id.cmp(&b.id))
        });
        self
    }
}

impl State {
    /// The index of a root referenced before, `None` when roots were renumbered since.
    fn current_root(&self, r: RootRef) -> Option<RootIndex> {
        (r.generation == self.root_generation && (r.root as usize) < self.root_stats.len())
            .then_some(r.root)
    }

    /// Takes back the occurrences of status reports that turned out to echo the failure
    /// of their trace (see [`crate::occurrence`]): out of their roots' counts, per-minute
    /// and per-second series and sources; their sources go to the failure's root.
    fn retract(&mut self, retractions: &[Retraction], failure_root: RootIndex) {
        for r in retractions {
            self.counters.echo_events += 1;
            let Some(root) = self.current_root(r.root) else {
                continue;
            };
            let rs = &mut self.root_stats[root as usize];
            rs.count = rs.count.saturating_sub(1);
            let minute = r.time_unix_nanos.div_euclid(NANOS_PER_MIN);
            if let Some(slot) = rs.minutes.iter_mut().find(|(m, _)| *m == minute) {
                slot.1 = slot.1.saturating_sub(1);
            }
            let second = r.time_unix_nanos.div_euclid(NANOS_PER_SEC);
            if let Some(slot) = rs.seconds.iter_mut().find(|(at, _)| *at == second) {
                slot.1 = slot.1.saturating_sub(1);
            }
            for source in sources_of(r.sources) {
                if let Some(n) = rs.sources.get_mut(&source) {
                    *n = n.saturating_sub(1);
                }
            }
            let failure = &mut self.root_stats[failure_root as usize];
            for source in sources_of(r.new_failure_sources) {
                *failure.sources.entry(source).or_insert(0) += 1;
            }
        }
    }

    /// Admits a new shape (and its root); `None` when a bound refuses it.
    fn admit(&mut self, text: &str) -> Option<KeyIndex> {
        if self.keys.len() >= self.config.max_templates {
            self.evict_keys();
        }
        if self.keys.len() >= self.config.max_templates {
            self.counters.templates_refused += 1;
            return None;
        }
        let root_text = root_signature(text);
        let root = match self.roots.find(&root_text) {
            Some(r) => r,
            None => {
                if self.roots.len() >= self.config.max_clusters {
                    self.evict_roots();
                }
                if self.roots.len() >= self.config.max_clusters {
                    self.counters.roots_refused += 1;
                    return None;
                }
                let r = self.roots.insert(&root_text);
                self.root_stats.push(RootStats {
                    first: i64::MAX,
                    last: i64::MIN,
                    ..RootStats::default()
                });
                r
            }
        };
        let (key, _) = self.miner.insert(&self.masked);
        self.keys.push(KeyStats {
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
            root,
            services: BTreeMap::new(),
            kinds: self.masked.kinds.iter().map(|k| k.code()).collect(),
            status: None,
        });
        Some(key)
    }

    /// The display form of a key's template (typed placeholders).
    fn display(&self, key: KeyIndex) -> String {
        let kinds: Vec<ParamKind> = self.keys[key as usize]
            .kinds
            .chars()
            .map(ParamKind::from_code)
            .collect();
        let (_, template) = self.miner.template_of(key);
        display_template(template, self.miner.key_text(key), &kinds)
    }

    /// Roots grouped by cluster id.
    /// The retired ids whose aliases end at `id`, newest first, at most [`MAX_FORMER_IDS`];
    /// `groups` are the live clusters ([`groups`](Self::groups)).
    fn former_ids(
        &self,
        id: ClusterId,
        groups: &HashMap<ClusterId, Vec<RootIndex>>,
    ) -> Vec<ClusterId> {
        self.cluster_aliases
            .retired_into(id, |id| groups.contains_key(&id), MAX_FORMER_IDS)
    }

    fn groups(&self) -> HashMap<ClusterId, Vec<RootIndex>> {
        let mut groups: HashMap<ClusterId, Vec<RootIndex>> = HashMap::new();
        for r in 0..self.roots.len() as RootIndex {
            if self.root_stats[r as usize].count > 0 {
                groups.entry(self.roots.cluster_of(r)).or_default().push(r);
            }
        }
        groups
    }

    /// The keys of every root, so that a query touches each key once, not once per cluster.
    fn keys_by_root(&self) -> Vec<Vec<KeyIndex>> {
        let mut by_root = vec![Vec::new(); self.root_stats.len()];
        for (k, ks) in self.keys.iter().enumerate() {
            if ks.count > 0 {
                if let Some(list) = by_root.get_mut(ks.root as usize) {
                    list.push(k as KeyIndex);
                }
            }
        }
        by_root
    }
}

fn vector_params(config: &ClusteringConfig) -> VectorParams {
    VectorParams {
        eps: config.eps,
        ..VectorParams::default()
    }
}

fn bump_bounded(map: &mut BTreeMap<String, u64>, key: &str, max: usize) {
    if let Some(c) = map.get_mut(key) {
        *c += 1;
    } else if map.len() < max {
        map.insert(key.to_string(), 1);
    }
}

fn top<K: ToString>(items: impl IntoIterator<Item = (K, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = items.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
