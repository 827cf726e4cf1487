//! The engine's state to and from a [`Snapshot`] (the on-disk structs live in
//! [`crate::snapshot`]).

use std::collections::VecDeque;

use super::{Engine, EngineCounters, KeyStats, RootStats, Sample, MAX_FAILED_BEFORE};
use crate::cluster::{ClusterId, RootIndex};
use crate::config::ClusteringConfig;
use crate::occurrence::EventSource;
use crate::snapshot::{
    CountersV1, KeyStatsV1, KeyV1, Migration, RootStatsV1, RootV1, SampleV1, Snapshot,
    SnapshotError, SnapshotV2, CURRENT_FORMAT,
};
use crate::template::{KeyIndex, TemplateId};

impl Engine {
    /// The state as a snapshot value, for a caller that stores it inside a larger atomic
    /// file (the agent keeps it together with the tail offsets it was derived from).
    pub fn snapshot(&self) -> Snapshot {
        let s = self.state.lock();
        let (labels, canonical) = s.roots.labels();
        let c = s.counters;
        Snapshot::V2(SnapshotV2 {
            keys: s
                .keys
                .iter()
                .enumerate()
                .map(|(k, ks)| KeyV1 {
                    shape: s.miner.key_text(k as KeyIndex).to_string(),
                    stats: KeyStatsV1 {
                        count: ks.count,
                        first: ks.first,
                        last: ks.last,
                        root: ks.root,
                        services: ks.services.clone(),
                        kinds: ks.kinds.clone(),
                    },
                })
                .collect(),
            roots: s
                .root_stats
                .iter()
                .enumerate()
                .map(|(r, rs)| RootV1 {
                    text: s.roots.root_text(r as RootIndex).to_string(),
                    label: labels[r],
                    stats: RootStatsV1 {
                        count: rs.count,
                        first: rs.first,
                        last: rs.last,
                        minutes: rs.minutes.iter().copied().collect(),
                        services: rs.services.clone(),
                        severities: rs.severities.clone(),
                        samples: rs
                            .samples
                            .iter()
                            .map(|x| SampleV1 {
                                message: x.message.clone(),
                                service: x.service.clone(),
                                trace_id: x.trace_id.clone(),
                                span_id: x.span_id.clone(),
                                time_unix_nanos: x.time_unix_nanos,
                            })
                            .collect(),
                        values: rs.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                        values_total: rs.values_total,
                        reports: rs.reports,
                        sources: rs
                            .sources
                            .iter()
                            .map(|(source, c)| (source.name().to_owned(), *c))
                            .collect(),
                        failed_before: rs
                            .failed_before
                            .iter()
                            .map(|(other, n)| (other.to_string(), *n))
                            .collect(),
                        untraced: rs.untraced,
                    },
                })
                .collect(),
            canonical,
            counters: CountersV1 {
                events: c.events,
                other_events: c.other_events,
                templates_refused: c.templates_refused,
                templates_evicted: c.templates_evicted,
                evicted_events: c.evicted_events,
                roots_refused: c.roots_refused,
                roots_evicted: c.roots_evicted,
                root_evicted_events: c.root_evicted_events,
                truncated: c.truncated,
                blank: c.blank,
                echo_events: c.echo_events,
                recent_traces_evicted: c.recent_traces_evicted,
            },
            template_aliases: s
                .miner
                .aliases()
                .into_iter()
                .map(|(from, to)| (from.to_string(), to.to_string()))
                .collect(),
            cluster_aliases: s
                .cluster_aliases
                .iter()
                .map(|(from, to)| (from.to_string(), to.to_string()))
                .collect(),
        })
    }

    /// An engine restored from a snapshot value taken with [`snapshot`](Self::snapshot):
    /// same template and cluster ids, same counts, same aliases. A snapshot that contradicts
    /// itself is refused whole ([`SnapshotError::Corrupt`]), never half applied.
    ///
    /// A format-1 snapshot (ids by arrival order) is migrated: its clusters are re-run under
    /// the rule-based ids at once, every id that changed becomes an alias of its new id, and
    /// [`migration`](Self::migration) says how many changed.
    pub fn from_snapshot(
        snapshot: Snapshot,
        config: ClusteringConfig,
    ) -> Result<Engine, SnapshotError> {
        let from_format = snapshot.format();
        let snap: SnapshotV2 = match snapshot {
            Snapshot::V1(v1) => v1.into(),
            Snapshot::V2(v2) => v2,
        };
        let mut engine = Engine::new(config);
        let mut migration = None;
        {
            let mut s = engine.state.lock();
            let s = &mut *s;
            for root in &snap.roots {
                if s.roots.find(&root.text).is_some() {
                    return Err(SnapshotError::Corrupt(format!(
                        "the root {:?} is listed twice",
                        root.text
                    )));
                }
                s.roots.insert(&root.text);
                let st = &root.stats;
                s.root_stats.push(RootStats {
                    count: st.count,
                    first: st.first,
                    last: st.last,
                    minutes: st.minutes.iter().copied().collect(),
                    seconds: VecDeque::new(),
                    services: st.services.clone(),
                    severities: st.severities.clone(),
                    samples: st
                        .samples
                        .iter()
                        .map(|x| Sample {
                            message: x.message.clone(),
                            service: x.service.clone(),
                            trace_id: x.trace_id.clone(),
                            span_id: x.span_id.clone(),
                            time_unix_nanos: x.time_unix_nanos,
                        })
                        .collect(),
                    values: st.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    values_total: st.values_total,
                    reports: st.reports.max(st.count),
                    sources: st
                        .sources
                        .iter()
                        .filter_map(|(name, c)| Some((EventSource::from_name(name)?, *c)))
                        .collect(),
                    failed_before: st
                        .failed_before
                        .iter()
                        .filter_map(|(id, n)| Some((ClusterId::try_from(id.clone()).ok()?, *n)))
                        .take(MAX_FAILED_BEFORE)
                        .collect(),
                    untraced: st.untraced.min(st.count),
                    // Stacks and frames are not persisted (see `ClusterDetail::frames`).
                    ..RootStats::default()
                });
            }
            let labels: Vec<u32> = snap.roots.iter().map(|r| r.label).collect();
            if !s.roots.restore_labels(&labels, &snap.canonical) {
                s.roots.rerun();
            }
            for key in &snap.keys {
                if key.stats.root as usize >= s.root_stats.len() {
                    return Err(SnapshotError::Corrupt(
                        "a template names an unknown root".into(),
                    ));
                }
                // A shape listed twice would be one key of the miner with two entries of
                // statistics: every later index past the first would point beyond the miner's
                // keys.
                if s.miner.insert_shape(&key.shape) as usize != s.keys.len() {
                    return Err(SnapshotError::Corrupt(format!(
                        "the template shape {:?} is listed twice",
                        key.shape
                    )));
                }
                s.keys.push(KeyStats {
                    count: key.stats.count,
                    first: key.stats.first,
                    last: key.stats.last,
                    root: key.stats.root,
                    services: key.stats.services.clone(),
                    kinds: key.stats.kinds.clone(),
                    status: None,
                });
            }
            s.miner.consolidate();
            let aliases: Vec<(TemplateId, TemplateId)> = snap
                .template_aliases
                .iter()
                .filter_map(|(from, to)| {
                    Some((
                        TemplateId::try_from(from.clone()).ok()?,
                        TemplateId::try_from(to.clone()).ok()?,
                    ))
                })
                .collect();
            s.miner.restore_aliases(&aliases);
            for (from, to) in &snap.cluster_aliases {
                if let (Ok(from), Ok(to)) = (
                    ClusterId::try_from(from.clone()),
                    ClusterId::try_from(to.clone()),
                ) {
                    s.cluster_aliases.insert(from, to);
                }
            }
            if from_format < CURRENT_FORMAT {
                // Format 1 named clusters after their oldest root: re-run now under the rule,
                // so the ids are right from the first query, and alias every changed id.
                let before = s.roots.id_table();
                s.roots.rerun();
                let changed = s.alias_retired(&before, None);
                migration = Some(Migration {
                    from_format,
                    to_format: CURRENT_FORMAT,
                    cluster_ids_changed: changed,
                });
            }
            let c = snap.counters;
            s.counters = EngineCounters {
                events: c.events,
                other_events: c.other_events,
                templates_refused: c.templates_refused,
                templates_evicted: c.templates_evicted,
                evicted_events: c.evicted_events,
                roots_refused: c.roots_refused,
                roots_evicted: c.roots_evicted,
                root_evicted_events: c.root_evicted_events,
                truncated: c.truncated,
                blank: c.blank,
                echo_events: c.echo_events,
                recent_traces_evicted: c.recent_traces_evicted,
            };
        }
        engine.migration = migration;
        Ok(engine)
    }
}
