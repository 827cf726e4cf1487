//! What the tailer shows about itself: per file and in total.

use serde::Serialize;

/// One tailed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileStats {
    /// Where the file was last seen.
    pub path: String,
    /// Bytes read so far (offset of the next read).
    pub offset: u64,
    /// Acknowledged offset: what a restart resumes from.
    pub acked_offset: u64,
    /// File size at the last check.
    pub size: u64,
    /// Bytes written but not read yet (`size - offset`): how far behind the tailer is.
    pub lag_bytes: u64,
    /// Lines read.
    pub lines_read: u64,
    /// Records handed over (a joined multi-line record counts once).
    pub records: u64,
    /// Lines cut at the line limit.
    pub truncated_lines: u64,
    /// The file turned binary and is skipped.
    pub binary: bool,
    /// Bytes skipped because they were binary.
    pub binary_skipped_bytes: u64,
    /// NUL bytes skipped (the hole copytruncate leaves before a writer without `O_APPEND`).
    pub nul_skipped_bytes: u64,
    /// The file was renamed away or deleted and is being read to its end.
    pub rotated: bool,
}

/// One configured source (`[[logs]]` glob).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceStats {
    /// The glob as configured.
    pub path: String,
    /// Files it matched at the last scan.
    pub files: u64,
    /// Why it cannot be read (its directory cannot be listed, or a file it matches cannot be
    /// opened), `None` while it can.
    pub error: Option<String>,
}

/// The whole tailer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TailStats {
    /// Files currently tracked (including rotated files still being drained).
    pub files: Vec<FileStats>,
    /// Every configured source, as of the last scan.
    pub sources: Vec<SourceStats>,
    /// Lines read since start.
    pub lines_read: u64,
    /// Records handed over since start.
    pub records: u64,
    /// Bytes read since start.
    pub bytes_read: u64,
    /// Lines cut at the line limit since start.
    pub truncated_lines: u64,
    /// Files found to be binary and skipped since start.
    pub binary_files: u64,
    /// Bytes skipped as binary since start.
    pub binary_skipped_bytes: u64,
    /// Truncations and in-place rewrites seen.
    pub truncations: u64,
    /// Renames, deletions and copytruncate copies seen.
    pub rotations: u64,
    /// Files not tailed because `max_open_files` was reached (counted per scan).
    pub files_over_limit: u64,
    /// I/O errors while reading (the file is retried at the next poll).
    pub read_errors: u64,
    /// NUL bytes skipped since start (copytruncate holes), the lines after them read on.
    pub nul_skipped_bytes: u64,
    /// Rotated generations that were gone (deleted or compressed) when a restart looked for
    /// them, with lines not read yet: those lines are lost.
    pub lost_files: u64,
    /// Files found again after they left the globs (renamed away and back, or unreadable for
    /// a while) and resumed at their remembered offset instead of read again.
    pub resumed_files: u64,
    /// Files renamed out of the globs while the agent was down, found by their first bytes
    /// or birth time in their directory and read to their end.
    pub adopted_files: u64,
    /// Sum of `lag_bytes` over the files.
    pub lag_bytes: u64,
}
