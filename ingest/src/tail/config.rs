//! What the tailer is told: the sources (`[[logs]]`) and the knobs (`TailConfig`).

use serde::{Deserialize, Serialize};

/// Where to start in a file that has no checkpoint and was present at the very first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Skip the history: start after the last complete line (the default; an agent installed
    /// during an incident should show the incident, not last month).
    #[default]
    End,
    /// Read the whole file.
    Beginning,
}

/// One `[[logs]]` table: a glob and the service its lines belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    /// A path or glob (`/var/log/user-svc/*.log`). Files matching it are picked up while the
    /// tailer runs.
    pub path: String,
    /// The service of every record of these files; `None`: taken from the record.
    #[serde(default)]
    pub service: Option<String>,
}

/// The tailer's settings. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// Start position of files present at the first start (no checkpoint at all). Files that
    /// appear later are always read from their beginning; after a restart every known file
    /// resumes at its checkpoint.
    pub start_at: StartAt,
    /// Longest line kept, in bytes; longer lines are cut, marked truncated and counted.
    pub max_line_bytes: usize,
    /// How often files are checked for new data when no file-system event arrives (the
    /// polling fallback for NFS, overlay file systems and missed events).
    pub poll_interval_ms: u64,
    /// How often the globs are expanded again to find new files (also done on every
    /// file-system event in a watched directory).
    pub glob_interval_ms: u64,
    /// How long a pending multi-line record waits for a continuation line.
    pub multiline_timeout_ms: u64,
    /// How long a renamed or deleted file is still read after it last grew.
    pub rotated_grace_ms: u64,
    /// Most records in one batch.
    pub max_batch_records: usize,
    /// Most bytes read from files for one batch.
    pub max_batch_bytes: usize,
    /// How often the consumer commits the offsets together with what it derived from the
    /// lines (the agent: its state file, when something changed; a failed commit is retried
    /// at this interval). A crash repeats at most this much work, never counts it twice.
    /// Default 5 s: a commit (state file written, fsynced and renamed, with the cluster
    /// snapshot) every second was ~3 % of the agent's CPU at 1,000 lines/s + 1,000 spans/s,
    /// and only the work re-done after a crash (and the OTLP records received since the
    /// last commit, which cannot be read again) depends on it (BENCHMARKS.md).
    pub checkpoint_interval_ms: u64,
    /// Zone (seconds east of UTC) of timestamps that do not name one.
    pub naive_utc_offset_secs: i32,
    /// Most files tailed at once; further files are counted and skipped until a slot frees.
    pub max_open_files: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            start_at: StartAt::End,
            max_line_bytes: 64 * 1024,
            poll_interval_ms: 250,
            glob_interval_ms: 1000,
            multiline_timeout_ms: 1000,
            rotated_grace_ms: 5000,
            max_batch_records: 1024,
            max_batch_bytes: 1 << 20,
            checkpoint_interval_ms: 5000,
            naive_utc_offset_secs: 0,
            max_open_files: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: TailConfig = serde_json::from_str(r#"{"start_at":"beginning"}"#).unwrap();
        assert_eq!(c.start_at, StartAt::Beginning);
        assert_eq!(c.max_line_bytes, 65536);
        let err = serde_json::from_str::<TailConfig>(r#"{"max_line":1}"#).unwrap_err();
        assert!(err.to_string().contains("max_line"));
        let s: LogSource = serde_json::from_str(r#"{"path":"/var/log/*.log"}"#).unwrap();
        assert_eq!(s.service, None);
    }
}
