//! Reading whole files once, for `faultline replay` and batch tools: the same line limits,
//! binary detection, multi-line joining and parsing as the tailer, without checkpoints.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Instant;

use super::config::TailConfig;
use super::file::TailedFile;
use super::fingerprint::{FileId, Head};
use crate::parse::{now_unix_nanos, ParseOptions};
use crate::record::LogRecord;

/// What reading one file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Bytes read.
    pub bytes: u64,
    /// Physical lines read.
    pub lines: u64,
    /// Records handed to the callback.
    pub records: u64,
    /// Lines cut at the line limit.
    pub truncated_lines: u64,
    /// The file turned binary; the rest of it was skipped.
    pub binary: bool,
}

/// Reads `path` from its beginning to its current end and calls `each` with every record in
/// file order. `service`, when given, is set on every record.
pub fn replay_file(
    path: &Path,
    config: &TailConfig,
    service: Option<&str>,
    mut each: impl FnMut(LogRecord),
) -> io::Result<ReplaySummary> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let head = Head::read(&file, meta.len())?;
    let now = Instant::now();
    let mut tailed = TailedFile::new(
        file,
        path.to_string_lossy().into_owned(),
        FileId::of(&meta),
        head,
        0,
        service.map(str::to_string),
        0,
        meta.len(),
        config.max_line_bytes,
        now,
    );
    let options = ParseOptions {
        naive_utc_offset_secs: config.naive_utc_offset_secs,
    };
    let mut buf = Vec::new();
    let mut summary = ReplaySummary::default();
    loop {
        let out = tailed.read(
            usize::MAX,
            &mut buf,
            config.max_line_bytes,
            &options,
            now_unix_nanos(),
            now,
        )?;
        if out.bytes == 0 {
            break;
        }
        summary.bytes += out.bytes;
        summary.lines += out.lines;
        summary.truncated_lines += out.truncated_lines;
        summary.binary |= tailed.binary;
        summary.records += out.records.len() as u64;
        out.records.into_iter().for_each(&mut each);
    }
    let (rest, lines) = tailed.flush_all(&options, now_unix_nanos(), now);
    summary.lines += lines;
    summary.records += rest.len() as u64;
    rest.into_iter().for_each(each);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_file_with_a_panic_and_no_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(
            &path,
            "2024/03/11 08:22:20 start\npanic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:3 +0x1\nlevel=error msg=x err=EOF",
        )
        .unwrap();
        let mut records = Vec::new();
        let summary = replay_file(&path, &TailConfig::default(), Some("svc"), |r| {
            records.push(r)
        })
        .unwrap();
        assert_eq!((summary.lines, summary.records), (7, 3));
        assert_eq!(records[1].cluster_text(), "boom");
        assert_eq!(records[2].cluster_text(), "EOF");
        assert!(records.iter().all(|r| r.service.as_deref() == Some("svc")));
    }
}
