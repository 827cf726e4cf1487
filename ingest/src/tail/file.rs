//! One tailed file: reading new bytes, cutting them into lines, joining multi-line records and
//! parsing them, while keeping track of the offset that is safe to checkpoint.
//!
//! The safe offset is the start of the first byte not yet in a handed-over record: the start of
//! a pending multi-line record, else the start of an unfinished last line (a writer may be in
//! the middle of it), else the read offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use super::ack::StreamId;
use super::fingerprint::{FileId, Head};
use crate::parse::{parse_line_with, Multiline, MultilineRecord, ParseOptions};
use crate::record::{LogRecord, Origin};

/// Bytes read from a file in one go.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A file being tailed.
#[derive(Debug)]
pub(crate) struct TailedFile {
    pub file: File,
    pub path: String,
    pub id: FileId,
    pub head: Head,
    pub stream: StreamId,
    pub service: Option<String>,
    /// Offset of the next byte to read.
    pub read_offset: u64,
    /// Size at the last check.
    pub last_size: u64,
    /// Modification time at the last identity check.
    pub last_mtime: Option<std::time::SystemTime>,
    /// The unfinished last line (capped at the line limit) and where it starts.
    partial: Vec<u8>,
    partial_start: Option<u64>,
    /// The unfinished line went past the limit: the rest of it is dropped.
    overlong: bool,
    joiner: Multiline,
    /// When the file was found renamed away or deleted.
    pub orphan_since: Option<Instant>,
    /// When new bytes were last read.
    pub last_growth: Instant,
    /// The file turned binary: its bytes are skipped, not parsed.
    pub binary: bool,
    /// The safe offset last put into a batch.
    pub marked: u64,
}

/// What one read produced.
#[derive(Debug, Default)]
pub(crate) struct ReadOutcome {
    pub bytes: u64,
    pub lines: u64,
    pub truncated_lines: u64,
    pub records: Vec<LogRecord>,
    pub became_binary: bool,
    pub binary_skipped: u64,
    pub nul_skipped: u64,
}

/// Whether a chunk looks binary: more than a tenth of its bytes (NUL bytes left out) are
/// control bytes that text logs do not contain.
///
/// NUL bytes do not count: runs of them are the hole that copytruncate leaves when the writer
/// does not use `O_APPEND` (`app > file`): it goes on writing at its old offset, and the
/// file reads as NULs up to there, then text again. They are skipped and counted, and the
/// lines after them are read (a core dump is binary by its other bytes).
fn is_binary(chunk: &[u8]) -> bool {
    let mut len = 0usize;
    let mut odd = 0usize;
    for &b in chunk {
        if b == 0 {
            continue;
        }
        len += 1;
        odd += usize::from(b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b | 0x0c | 0x08));
    }
    len >= 32 && odd * 10 > len
}

/// `bytes` without its NUL bytes (borrowed when it has none) and how many were dropped.
fn without_nuls(bytes: &[u8]) -> (std::borrow::Cow<'_, [u8]>, u64) {
    if memchr::memchr(0, bytes).is_none() {
        return (std::borrow::Cow::Borrowed(bytes), 0);
    }
    let kept: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    let dropped = (bytes.len() - kept.len()) as u64;
    (std::borrow::Cow::Owned(kept), dropped)
}

impl TailedFile {
    /// A file opened at `offset` (a checkpoint, 0, or the end), read as `stream`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        file: File,
        path: String,
        id: FileId,
        head: Head,
        stream: StreamId,
        service: Option<String>,
        offset: u64,
        size: u64,
        max_line_bytes: usize,
        now: Instant,
    ) -> Self {
        TailedFile {
            file,
            path,
            id,
            head,
            stream,
            service,
            read_offset: offset,
            last_size: size,
            last_mtime: None,
            partial: Vec::new(),
            partial_start: None,
            overlong: false,
            joiner: Multiline::new(max_line_bytes),
            orphan_since: None,
            last_growth: now,
            binary: false,
            marked: offset,
        }
    }

    /// The offset up to which every line is in a record already handed over.
    pub fn safe_offset(&self) -> u64 {
        self.joiner
            .pending_start()
            .or(self.partial_start)
            .unwrap_or(self.read_offset)
    }

    /// Whether the file waits for a time rather than for new bytes: a pending multi-line
    /// record (handed over after its timeout) or a rotated file (let go after the grace).
    pub fn waits_for_time(&self) -> bool {
        self.joiner.pending_start().is_some() || self.orphan_since.is_some()
    }

    /// Starts over at offset 0 as a new stream (after a truncation without a copy).
    pub fn restart(&mut self, stream: StreamId, head: Head, size: u64, now: Instant) {
        self.stream = stream;
        self.head = head;
        self.read_offset = 0;
        self.last_size = size;
        self.partial.clear();
        self.partial_start = None;
        self.overlong = false;
        self.binary = false;
        self.marked = 0;
        self.last_growth = now;
    }

    /// Reads up to `budget` new bytes (at most one chunk) and turns them into records.
    pub fn read(
        &mut self,
        budget: usize,
        buf: &mut Vec<u8>,
        max_line_bytes: usize,
        options: &ParseOptions,
        observed: i64,
        now: Instant,
    ) -> io::Result<ReadOutcome> {
        let mut out = ReadOutcome::default();
        let size = self.file.metadata()?.len();
        self.last_size = size;
        if size <= self.read_offset {
            return Ok(out);
        }
        let want = ((size - self.read_offset) as usize).clamp(1, budget.clamp(1, CHUNK));
        buf.resize(want, 0);
        let n = match self.file.read_at(&mut buf[..want], self.read_offset) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(out);
        }
        self.last_growth = now;
        out.bytes = n as u64;
        let chunk = &buf[..n];
        if self.binary || is_binary(chunk) {
            // Skip the whole rest of the file as it is now; what was pending before the binary
            // part is still text and is handed over.
            out.became_binary = !self.binary;
            self.binary = true;
            let skipped = size - self.read_offset;
            out.binary_skipped = skipped;
            self.read_offset = size;
            self.partial.clear();
            self.partial_start = None;
            self.overlong = false;
            if let Some(record) = self.joiner.flush() {
                out.records.push(self.record(record, options, observed));
            }
            return Ok(out);
        }
        let base = self.read_offset;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let line_start = self.partial_start.unwrap_or(base + start as u64);
            let line_end = base + nl as u64 + 1;
            let (piece, nuls) = without_nuls(&chunk[start..nl]);
            out.nul_skipped += nuls;
            let piece = &piece[..];
            let (bytes, cut): (&[u8], bool) = if self.partial_start.is_some() {
                let room = max_line_bytes.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&piece[..piece.len().min(room)]);
                (&self.partial[..], self.overlong || piece.len() > room)
            } else if piece.len() > max_line_bytes {
                (&piece[..max_line_bytes], true)
            } else {
                (piece, false)
            };
            let text = String::from_utf8_lossy(bytes);
            let text = text.strip_suffix('\r').unwrap_or(&text);
            out.lines += 1;
            out.truncated_lines += u64::from(cut);
            if let Some(record) = self.joiner.push(text, line_start, line_end, cut, now) {
                out.records.push(self.record(record, options, observed));
            }
            self.partial.clear();
            self.partial_start = None;
            self.overlong = false;
            start = nl + 1;
        }
        if start < n {
            let (rest, nuls) = without_nuls(&chunk[start..]);
            out.nul_skipped += nuls;
            let rest = &rest[..];
            if self.partial_start.is_none() {
                self.partial_start = Some(base + start as u64);
            }
            let room = max_line_bytes.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&rest[..rest.len().min(room)]);
            self.overlong |= rest.len() > room;
        }
        self.read_offset = base + n as u64;
        Ok(out)
    }

    /// Hands over a pending multi-line record that waited `timeout` for a continuation.
    pub fn flush_stale(
        &mut self,
        now: Instant,
        timeout: std::time::Duration,
        options: &ParseOptions,
        observed: i64,
    ) -> Option<LogRecord> {
        let record = self.joiner.flush_stale(now, timeout)?;
        Some(self.record(record, options, observed))
    }

    /// Hands over everything pending, including an unfinished last line (the file is let go
    /// or its old content is gone).
    pub fn flush_all(
        &mut self,
        options: &ParseOptions,
        observed: i64,
        now: Instant,
    ) -> (Vec<LogRecord>, u64) {
        let mut records = Vec::new();
        let mut lines = 0;
        if let Some(start) = self.partial_start.take() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            let cut = self.overlong;
            lines += 1;
            if let Some(r) = self.joiner.push(&text, start, self.read_offset, cut, now) {
                records.push(self.record(r, options, observed));
            }
            self.partial.clear();
            self.overlong = false;
        }
        if let Some(r) = self.joiner.flush() {
            records.push(self.record(r, options, observed));
        }
        (records, lines)
    }

    fn record(&self, joined: MultilineRecord, options: &ParseOptions, observed: i64) -> LogRecord {
        let origin = Origin::File {
            path: self.path.clone(),
            offset: joined.start_offset,
        };
        let mut record = parse_line_with(&joined.text, origin, options, observed);
        record.truncated = joined.truncated;
        if self.service.is_some() {
            record.service.clone_from(&self.service);
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn open(path: &std::path::Path) -> TailedFile {
        let file = File::open(path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let head = Head::read(&file, 0).unwrap();
        TailedFile::new(
            file,
            "t.log".into(),
            id,
            head,
            1,
            Some("svc".into()),
            0,
            0,
            16,
            Instant::now(),
        )
    }

    #[test]
    fn lines_partial_lines_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"one\n0123456789abcdefXYZ\ntw").unwrap();
        let mut f = open(&path);
        let mut buf = Vec::new();
        let now = Instant::now();
        let opts = ParseOptions::default();
        let out = f.read(1 << 20, &mut buf, 16, &opts, 0, now).unwrap();
        assert_eq!((out.lines, out.truncated_lines), (2, 1));
        // "one" is complete; the long line waits in the joiner; "tw" is unfinished.
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].service.as_deref(), Some("svc"));
        assert_eq!(f.safe_offset(), 4);
        w.write_all(b"o\n").unwrap();
        let out = f.read(1 << 20, &mut buf, 16, &opts, 0, now).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].message, "0123456789abcdef");
        assert!(out.records[0].truncated);
        assert_eq!(f.safe_offset(), 24, "the pending line 'two' starts at 24");
        let (rest, _) = f.flush_all(&opts, 0, now);
        assert_eq!(rest[0].message, "two");
        assert_eq!(f.safe_offset(), 28);
    }

    #[test]
    fn nul_holes_are_skipped_and_the_lines_after_them_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        // copytruncate with a writer that keeps its offset: a hole, then the next line.
        let mut content = vec![0u8; 4096];
        content.extend_from_slice(b"after the hole\nsecond\n");
        std::fs::write(&path, &content).unwrap();
        let mut f = open(&path);
        let (mut records, mut nuls) = (Vec::new(), 0);
        loop {
            let out = f
                .read(
                    1 << 20,
                    &mut Vec::new(),
                    64,
                    &ParseOptions::default(),
                    0,
                    Instant::now(),
                )
                .unwrap();
            if out.bytes == 0 {
                break;
            }
            assert!(!out.became_binary);
            nuls += out.nul_skipped;
            records.extend(out.records);
        }
        // The last line may wait in the multi-line joiner for a continuation.
        records.extend(f.flush_all(&ParseOptions::default(), 0, Instant::now()).0);
        let messages: Vec<&str> = records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["after the hole", "second"]);
        assert_eq!(nuls, 4096);
        assert_eq!(f.safe_offset(), content.len() as u64);
    }

    #[test]
    fn binary_content_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        std::fs::write(&path, [1u8; 100]).unwrap();
        let mut f = open(&path);
        let out = f
            .read(
                1 << 20,
                &mut Vec::new(),
                16,
                &ParseOptions::default(),
                0,
                Instant::now(),
            )
            .unwrap();
        assert!(out.became_binary && out.records.is_empty());
        assert_eq!((out.binary_skipped, f.safe_offset()), (100, 100));
    }
}
