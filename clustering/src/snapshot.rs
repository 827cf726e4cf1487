//! The cluster store's on-disk format: a versioned value the agent stores inside its state
//! file (it is written together with the tail offsets it was derived from, so this crate does
//! no file I/O of its own).
//!
//! The format is a versioned enum ([`Snapshot::V1`], [`Snapshot::V2`]) of structs that belong
//! to the format alone: the engine converts its internal statistics to and from them
//! ([`Engine::snapshot`](crate::Engine::snapshot),
//! [`Engine::from_snapshot`](crate::Engine::from_snapshot)), so changing those internals
//! cannot change the file silently. A new format is added beside the old ones, and old files
//! still read.
//!
//! Versions:
//! - **1**: cluster ids are hashes of each cluster's *oldest* root, so they depended on the
//!   order errors arrived in.
//! - **2**: cluster ids are hashes of each cluster's canonical root chosen by a rule over its
//!   members (see [`crate::cluster`]), and retired cluster ids are kept as aliases. Reading a
//!   format-1 file *migrates* it: the clusters keep their roots and counts, their ids are
//!   recomputed by the rule, every id that changed stays an alias of its new id (links keep
//!   working), and the engine says so ([`Engine::migration`](crate::Engine::migration)).
//!
//! This module depends on nothing else in the crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of the cluster store, tagged with its format (`"version": "V2"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Snapshot {
    /// Format 1 (ids by arrival order; read and migrated, never written).
    V1(SnapshotV1),
    /// Format 2 (ids by rule, cluster aliases).
    V2(SnapshotV2),
}

/// The current format's number, the one [`Engine::snapshot`](crate::Engine::snapshot)
/// writes.
pub const CURRENT_FORMAT: u32 = 2;

impl Snapshot {
    /// The format number of this value.
    pub fn format(&self) -> u32 {
        match self {
            Snapshot::V1(_) => 1,
            Snapshot::V2(_) => 2,
        }
    }
}

/// Format 2: format 1's content read under the rule-based ids, plus the cluster aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotV2 {
    pub(crate) keys: Vec<KeyV1>,
    pub(crate) roots: Vec<RootV1>,
    /// Per cluster label, the index of its canonical root (as it was when written: a root
    /// placed between re-runs does not take the canonical role before the next re-run).
    pub(crate) canonical: Vec<u32>,
    pub(crate) counters: CountersV1,
    /// Template ids merged away, old id to newer id (16 hex digits each), oldest first.
    pub(crate) template_aliases: Vec<(String, String)>,
    /// Cluster ids retired by a merge, a rename or a migration, old id to newer id (16 hex
    /// digits each), oldest first.
    pub(crate) cluster_aliases: Vec<(String, String)>,
}

impl From<SnapshotV1> for SnapshotV2 {
    /// The same content; the ids it implies are format 1's until the engine migrates them.
    fn from(v1: SnapshotV1) -> Self {
        SnapshotV2 {
            keys: v1.keys,
            roots: v1.roots,
            canonical: v1.canonical,
            counters: v1.counters,
            template_aliases: v1.template_aliases,
            cluster_aliases: Vec::new(),
        }
    }
}

/// Format 1: template keys with their counters, roots with their statistics and cluster
/// labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotV1 {
    pub(crate) keys: Vec<KeyV1>,
    pub(crate) roots: Vec<RootV1>,
    /// Per cluster label, the index of its canonical root.
    pub(crate) canonical: Vec<u32>,
    pub(crate) counters: CountersV1,
    /// Template ids merged away, old id to newer id (16 hex digits each), oldest first, so
    /// links to a merged template keep resolving after a restart (added to format 1 with a
    /// default: older files have none).
    #[serde(default)]
    pub(crate) template_aliases: Vec<(String, String)>,
}

/// One template key (an exact masked shape) and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyV1 {
    pub(crate) shape: String,
    pub(crate) stats: KeyStatsV1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyStatsV1 {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// Index into [`SnapshotV1::roots`].
    pub(crate) root: u32,
    /// Reports per service that wrote this shape (added to format 1 with a default: files
    /// written before it read as "no services known").
    #[serde(default)]
    pub(crate) services: BTreeMap<String, u64>,
    /// One `ParamKind` code per placeholder of the shape, for display names only (added to
    /// format 1 with a default: older files show plain `<*>`).
    #[serde(default)]
    pub(crate) kinds: String,
}

/// One root (innermost error kind), its cluster label and its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RootV1 {
    pub(crate) text: String,
    pub(crate) label: u32,
    pub(crate) stats: RootStatsV1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RootStatsV1 {
    pub(crate) count: u64,
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// (minute start in Unix seconds, count), oldest first.
    pub(crate) minutes: Vec<(i64, u64)>,
    pub(crate) services: BTreeMap<String, u64>,
    pub(crate) severities: BTreeMap<String, u64>,
    /// Newest first.
    pub(crate) samples: Vec<SampleV1>,
    pub(crate) values: BTreeMap<String, u64>,
    // Added to format 1 with defaults (one count per failure, #11): older files read with
    // reports = count and no sources known.
    /// Every parameter value counted, those beyond `values` included.
    #[serde(default)]
    pub(crate) values_total: u64,
    /// Reports, echoes of an occurrence included (`count` is occurrences).
    #[serde(default)]
    pub(crate) reports: u64,
    /// Occurrences per source name (`file_log`, `otlp_log`, `span`).
    #[serde(default)]
    pub(crate) sources: BTreeMap<String, u64>,
    /// Occurrences in traces that had already failed with another pattern, by that
    /// pattern's id (16 hex digits; added with a default: older files know none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) failed_before: BTreeMap<String, u64>,
    /// Occurrences without a trace id (added with a default: older files know none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) untraced: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SampleV1 {
    pub(crate) message: String,
    pub(crate) service: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) span_id: Option<String>,
    pub(crate) time_unix_nanos: i64,
}

/// What the bounds did; fields added later default to 0 in older files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CountersV1 {
    pub(crate) events: u64,
    pub(crate) other_events: u64,
    pub(crate) templates_refused: u64,
    pub(crate) templates_evicted: u64,
    pub(crate) evicted_events: u64,
    pub(crate) roots_refused: u64,
    pub(crate) roots_evicted: u64,
    pub(crate) root_evicted_events: u64,
    pub(crate) truncated: u64,
    pub(crate) blank: u64,
    pub(crate) echo_events: u64,
    pub(crate) recent_traces_evicted: u64,
}

/// What restoring an older format changed, for the agent to say at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The format read.
    pub from_format: u32,
    /// The format the state is in now ([`CURRENT_FORMAT`]).
    pub to_format: u32,
    /// Clusters whose id changed; each old id resolves to its new one through an alias.
    pub cluster_ids_changed: usize,
}

impl std::fmt::Display for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cluster store migrated from format {} to format {}: {} pattern ids changed \
             (ids no longer depend on the order errors arrived in); each old id still \
             resolves to its new one",
            self.from_format, self.to_format, self.cluster_ids_changed
        )
    }
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot reads but contradicts itself (an index out of range, a root twice).
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 1 as written by earlier versions still reads: the file format is this
    /// module's, not the engine's.
    #[test]
    fn format_1_reads() {
        let text = r#"{"version":"V1","keys":[{"shape":"read: <*>","stats":{"count":2,"first":1,"last":2,"root":0}}],
            "roots":[{"text":"EOF","label":0,"stats":{"count":2,"first":1,"last":2,"minutes":[[0,2]],
            "services":{"a":2},"severities":{"error":2},"samples":[{"message":"read: EOF","service":"a",
            "trace_id":null,"span_id":null,"time_unix_nanos":2}],"values":{"EOF":2}}}],
            "canonical":[0],"counters":{"events":2}}"#;
        let snapshot: Snapshot = serde_json::from_str(text).unwrap();
        let Snapshot::V1(v1) = &snapshot else {
            panic!("read as format {}", snapshot.format());
        };
        assert_eq!(v1.counters.events, 2);
        assert_eq!(v1.roots[0].stats.samples[0].message, "read: EOF");
        let again: Snapshot =
            serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
        assert_eq!(again, snapshot);
    }
}
