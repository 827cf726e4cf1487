//! `faultline cluster`: batch clustering of a file, one id per input line.
//!
//! Reads IN line by line (invalid UTF-8 is replaced, not refused; a line longer than 64 KiB
//! is cut), optionally runs the agent's line parser on each line and clusters the record's
//! `cluster_text()`, and writes OUT with exactly one template or cluster id per input line,
//! in the same order, empty lines included. A progress line is drawn on stderr when stderr
//! is a terminal; a one-line summary ends the run, after a line for every bound that applied.
//!
//! Execution model: the file is read in chunks of whole lines ([`CHUNK_BYTES`]). On a small
//! file, or with `--threads 1`, this thread decodes, masks and groups every line. On a large
//! file the chunks go, as bytes, to worker threads that split, decode, parse and mask them;
//! one thread adds the masked chunks to the batch in file order, so the ids are exactly those
//! of the one-thread run. The reading thread only reads and finds the last line end of each
//! chunk: when it built one `String` per line it was the bottleneck, and a second core gave
//! 0.98x. Memory: the chunks in flight (two per worker) and, per line of the file, the
//! 4 bytes of its shape index ([`faultline_clustering::batch`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use faultline_clustering::batch::{Batch, BatchIds, BlockMasker, GroupLevel, MaskedBlock};
use faultline_clustering::cluster::VectorParams;
use faultline_ingest::Origin;

/// Longest message clustered; longer lines are cut.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Flags of `faultline cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// File of messages, one per line.
    #[arg(long, value_name = "IN")]
    pub input: PathBuf,
    /// Where to write one id per input line.
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
    /// Which grouping the ids name: `cluster` (root kind of error) or `template` (masked shape).
    #[arg(long, value_enum, default_value_t = Level::Cluster)]
    pub level: Level,
    /// Parse each line as a raw log line first (logrus, zap, slog, Gin, stdlib log, ...) and
    /// cluster its error field, else its message.
    #[arg(long)]
    pub parse: bool,
    /// Most distinct message shapes kept (memory: a few hundred bytes each); lines of new
    /// shapes past it get the id ffffffffffffffff, and the summary says how many.
    #[arg(long, default_value_t = faultline_clustering::batch::MAX_BATCH_SHAPES, value_name = "N")]
    pub max_shapes: usize,
    /// Threads that mask the lines of a large file (0: automatic — one per core, at most 4,
    /// at `--level cluster`; one at `--level template`, see [`TEMPLATE_THREADS`]; 1: all the
    /// work on one thread). The ids do not depend on it.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
}

/// `--level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// Root kind of error (default).
    Cluster,
    /// Masked template.
    Template,
}

/// Threads used at `--level template` unless `--threads` says otherwise. Masking is the
/// parallel part and, at the template level, it is most of the work but not enough of it:
/// `scripts/bench/clustering.sh` measured 2 cores at 1.04x the wall time of one thread for
/// 1.88x the CPU on the 1,000,000-line Loghub file (issue #15), where the cluster level gains
/// 1.46x. A second thread there only burns the other core.
pub const TEMPLATE_THREADS: usize = 1;

/// Files at least this large are masked on every core: below it the threads cost more than
/// they save (a 2,000-line Loghub file takes milliseconds).
const PARALLEL_MIN_BYTES: u64 = 8 << 20;

/// Bytes of whole lines per chunk handed to a masking thread: about 20,000 Loghub lines,
/// ~10 ms of masking, so handing a chunk over costs nothing next to masking it, and the
/// chunks in flight (two per worker, bounded channels) stay a few MB.
const CHUNK_BYTES: usize = 2 << 20;

/// Bytes asked of the file per read.
const READ_BYTES: usize = 256 << 10;

/// Runs the command.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = File::open(&args.input)
        .with_context(|| format!("cannot open the input {}", args.input.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let level = match args.level {
        Level::Cluster => GroupLevel::Cluster,
        Level::Template => GroupLevel::Template,
    };
    let batch = Batch::new(level, 5, MAX_MESSAGE_BYTES, VectorParams::default())
        .with_max_shapes(args.max_shapes);
    let cut_lines = AtomicU64::new(0);
    let workers = match (args.threads, args.level) {
        (0, Level::Template) => TEMPLATE_THREADS,
        (0, Level::Cluster) => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        (n, _) => n,
    };
    let batch = if total >= PARALLEL_MIN_BYTES && workers > 1 {
        run_parallel(args, file, batch, workers, CHUNK_BYTES, &cut_lines)?
    } else {
        run_sequential(args, file, batch, total, &cut_lines)?
    };
    let ids = batch.finish();
    let out = File::create(&args.output)
        .with_context(|| format!("cannot create the output {}", args.output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    ids.write_to(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    for note in bound_notes(&ids, cut_lines.into_inner()) {
        eprintln!("faultline cluster: bound applied: {note}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "faultline cluster: {} lines, {} templates, {} clusters, {:.3} s, {:.0} lines/s",
        ids.len(),
        ids.templates,
        ids.clusters,
        secs,
        ids.len() as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// One sentence per bound that changed the output: lines cut, lines past the shape bound,
/// neighbour searches cut short. Empty when none applied.
fn bound_notes(ids: &BatchIds, cut_lines: u64) -> Vec<String> {
    let mut notes = Vec::new();
    if cut_lines > 0 {
        notes.push(format!(
            "{cut_lines} lines longer than {MAX_MESSAGE_BYTES} bytes were clustered by their first {MAX_MESSAGE_BYTES} bytes"
        ));
    }
    if ids.other_lines > 0 {
        notes.push(format!(
            "{} lines of new shapes past the first {} distinct shapes got the id ffffffffffffffff (other); --max-shapes raises the bound",
            ids.other_lines, ids.max_shapes
        ));
    }
    if ids.searches_cut > 0 {
        notes.push(format!(
            "the neighbour search of {} roots stopped after {} candidates; they may miss a cluster",
            ids.searches_cut,
            faultline_clustering::cluster::MAX_CANDIDATES
        ));
    }
    notes
}

/// Reads `reader` to its end and calls `each` with chunks of whole lines in order, each
/// about `chunk_bytes` long and ending with `\n` (but the file's last, when the file does
/// not end with one). A line longer than [`MAX_MESSAGE_BYTES`] keeps only its first
/// [`MAX_MESSAGE_BYTES`]` + 1` bytes (the rest is skipped as it is read, so one endless line
/// cannot fill memory; the extra byte tells [`line_text`] that it was cut). Returns the
/// bytes read.
fn read_chunks(
    args: &ClusterArgs,
    mut reader: impl Read,
    chunk_bytes: usize,
    mut each: impl FnMut(Vec<u8>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + READ_BYTES);
    let mut scratch = vec![0u8; READ_BYTES];
    let mut read: u64 = 0;
    // Where the last, unfinished line of `buf` begins.
    let mut line_start = 0;
    // Inside a line cut at MAX_MESSAGE_BYTES: bytes are dropped up to its end.
    let mut skipping = false;
    loop {
        let n = match reader.read(&mut scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", args.input.display()))
            }
        };
        if n == 0 {
            if !buf.is_empty() {
                each(buf)?;
            }
            return Ok(read);
        }
        read += n as u64;
        let mut fresh = &scratch[..n];
        if skipping {
            match memchr::memchr(b'\n', fresh) {
                None => continue,
                Some(at) => {
                    fresh = &fresh[at..];
                    skipping = false;
                }
            }
        }
        let start = buf.len();
        buf.extend_from_slice(fresh);
        if let Some(at) = memchr::memrchr(b'\n', fresh) {
            line_start = start + at + 1;
        }
        if buf.len() - line_start > MAX_MESSAGE_BYTES + 1 {
            buf.truncate(line_start + MAX_MESSAGE_BYTES + 1);
            skipping = true;
        }
        if buf.len() >= chunk_bytes && line_start > 0 {
            let mut next = Vec::with_capacity(chunk_bytes + READ_BYTES);
            next.extend_from_slice(&buf[line_start..]);
            buf.truncate(line_start);
            each(std::mem::replace(&mut buf, next))?;
            line_start = 0;
        }
    }
}

/// The lines of a chunk from [`read_chunks`], without their `\n`.
fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let mut from = 0;
    let mut ends = memchr::memchr_iter(b'\n', body);
    let mut done = chunk.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let line = match ends.next() {
            Some(end) => &body[from..end],
            None => {
                done = true;
                &body[from..]
            }
        };
        from += line.len() + 1;
        Some(line)
    })
}

/// The text of one line: a `\r` before its end removed, cut to [`MAX_MESSAGE_BYTES`],
/// invalid UTF-8 replaced; and whether it was cut.
fn line_text(line: &[u8]) -> (Cow<'_, str>, bool) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let cut = line.len() > MAX_MESSAGE_BYTES;
    (
        String::from_utf8_lossy(&line[..line.len().min(MAX_MESSAGE_BYTES)]),
        cut,
    )
}

/// Calls `each` with the text clustered for every line of `chunk`; counts the lines cut.
fn each_text(args: &ClusterArgs, chunk: &[u8], cut_lines: &AtomicU64, mut each: impl FnMut(&str)) {
    for line in lines(chunk) {
        let (text, cut) = line_text(line);
        if cut {
            cut_lines.fetch_add(1, Ordering::Relaxed);
        }
        if args.parse {
            let record = faultline_ingest::parse::parse_line(&text, Origin::OtlpLog);
            each(record.cluster_text());
        } else {
            each(&text);
        }
    }
}

/// Every line on this thread.
fn run_sequential(
    args: &ClusterArgs,
    reader: impl Read,
    mut batch: Batch,
    total: u64,
    cut_lines: &AtomicU64,
) -> anyhow::Result<Batch> {
    let progress = std::io::stderr().is_terminal();
    let mut done: u64 = 0;
    read_chunks(args, reader, CHUNK_BYTES, |chunk| {
        done += chunk.len() as u64;
        each_text(args, &chunk, cut_lines, |text| batch.push(text));
        if progress {
            let pct = (done * 100).checked_div(total).unwrap_or(0);
            eprint!("\rfaultline cluster: {pct:3}%  {} lines", batch.len());
        }
        Ok(())
    })?;
    if progress {
        eprint!("\r\x1b[K");
    }
    Ok(batch)
}

/// Chunks of `chunk_bytes` masked on `workers` threads (see the module documentation).
fn run_parallel(
    args: &ClusterArgs,
    reader: impl Read,
    mut batch: Batch,
    workers: usize,
    chunk_bytes: usize,
    cut_lines: &AtomicU64,
) -> anyhow::Result<Batch> {
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<(usize, Vec<u8>)>(workers);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = sync_channel::<(usize, MaskedBlock)>(workers * 2);
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut masker = BlockMasker::new(MAX_MESSAGE_BYTES);
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, chunk)) = job else { return };
                    each_text(args, &chunk, cut_lines, |text| masker.push(text));
                    if done_tx.send((seq, masker.take())).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Chunks finish out of order; they join the batch in order. At most the chunks in
        // flight (both channels and the workers) wait here.
        let assembler = scope.spawn(move || {
            let mut waiting: BTreeMap<usize, MaskedBlock> = BTreeMap::new();
            let mut next = 0;
            for (seq, block) in done_rx {
                waiting.insert(seq, block);
                while let Some(block) = waiting.remove(&next) {
                    batch.push_block(&block);
                    next += 1;
                }
            }
            batch
        });
        let mut seq = 0;
        let read = read_chunks(args, reader, chunk_bytes, |chunk| {
            work_tx
                .send((seq, chunk))
                .map_err(|_| anyhow::anyhow!("a masking thread stopped"))?;
            seq += 1;
            Ok(())
        });
        drop(work_tx);
        let batch = assembler
            .join()
            .map_err(|_| anyhow::anyhow!("the thread that joins the masked chunks panicked"))?;
        read.map(|_| batch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: PathBuf, level: Level, parse: bool) -> ClusterArgs {
        ClusterArgs {
            output: input.with_extension("out"),
            input,
            level,
            parse,
            max_shapes: faultline_clustering::batch::MAX_BATCH_SHAPES,
            threads: 2,
        }
    }

    /// A reader that hands out at most `step` bytes a read, as a pipe or a slow disk can.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.len().min(self.step).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The lines as `BufRead::read_until` gives them (what the command did before it read
    /// chunks): `\n` and then `\r` removed, cut to the message limit, UTF-8 repaired.
    fn reference_lines(data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let mut line = &rest[..end];
            rest = &rest[end..];
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            let cut = &line[..line.len().min(MAX_MESSAGE_BYTES)];
            out.push(String::from_utf8_lossy(cut).into_owned());
        }
        out
    }

    /// The lines `read_chunks` and `line_text` give, and how many were cut.
    fn chunked_lines(data: &[u8], step: usize, chunk_bytes: usize) -> (Vec<String>, usize) {
        let a = args(PathBuf::from("in.log"), Level::Template, false);
        let mut out = Vec::new();
        let mut cut = 0;
        let read = read_chunks(&a, Trickle { data, step }, chunk_bytes, |chunk| {
            assert!(chunk.len() <= chunk_bytes + READ_BYTES + MAX_MESSAGE_BYTES + 1);
            for line in lines(&chunk) {
                let (text, was_cut) = line_text(line);
                out.push(text.into_owned());
                cut += usize::from(was_cut);
            }
            Ok(())
        })
        .expect("read");
        assert_eq!(read, data.len() as u64);
        (out, cut)
    }

    #[test]
    fn chunks_cut_lines_as_reading_line_by_line_did() {
        let mut data = Vec::new();
        data.extend_from_slice(b"first\r\n\n\nsecond line\r\n\xff\xfe broken utf-8 \xc3\n");
        // A line far past the limit, then more lines: only its first 64 KiB count, the rest
        // is skipped as it arrives, and it counts as cut; the lines at the limit do not.
        data.extend(std::iter::repeat_n(b'x', 3 * MAX_MESSAGE_BYTES + 17));
        data.extend_from_slice(b"\r\nafter the long one\n");
        data.extend(std::iter::repeat_n(b'y', MAX_MESSAGE_BYTES));
        data.extend_from_slice(b"\r\n");
        data.extend(std::iter::repeat_n(b'z', MAX_MESSAGE_BYTES - 1));
        data.extend_from_slice(b"\r\nr\xc3\xa9sum\xc3\xa9\nno newline at the end");
        let expected = reference_lines(&data);
        assert_eq!(expected.len(), 11);
        for (step, chunk_bytes) in [(1 << 20, CHUNK_BYTES), (1_000, 64), (7, 10), (65_536, 1)] {
            assert_eq!(
                chunked_lines(&data, step, chunk_bytes),
                (expected.clone(), 1),
                "{step} bytes a read, chunks of {chunk_bytes}"
            );
        }
        assert_eq!(chunked_lines(b"", 10, 10).0, Vec::<String>::new());
        assert_eq!(chunked_lines(b"\n", 10, 10).0, [""]);
        assert_eq!(chunked_lines(b"a\n\n", 1, 1).0, ["a", ""]);
    }

    #[test]
    fn masking_on_several_threads_gives_the_ids_of_one_thread_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.log");
        // Many chunks, with shapes first seen in late ones.
        let lines: Vec<String> = (0..6_001)
            .map(|i| match i % 4 {
                0 => format!(
                    r#"{{"level":"error","msg":"call failed","error":"GetUser({i}): EOF"}}"#
                ),
                1 => format!(
                    "dial tcp 10.0.{}.{}:5432: connect: connection refused",
                    i % 7,
                    i % 5
                ),
                2 if i > 4_000 => format!("late kind {} of failure\r", i % 3),
                _ => String::new(),
            })
            .collect();
        std::fs::write(&input, lines.join("\n")).expect("written");
        let open = || File::open(&input).expect("open");
        for (level, group, parse) in [
            (Level::Cluster, GroupLevel::Cluster, true),
            (Level::Cluster, GroupLevel::Cluster, false),
            (Level::Template, GroupLevel::Template, false),
        ] {
            let a = args(input.clone(), level, parse);
            let new = || Batch::new(group, 5, MAX_MESSAGE_BYTES, VectorParams::default());
            let cut = AtomicU64::new(0);
            let one = run_sequential(&a, open(), new(), 0, &cut)
                .expect("sequential")
                .finish();
            let many = run_parallel(&a, open(), new(), 2, 16 << 10, &cut)
                .expect("parallel")
                .finish();
            assert_eq!(one.len(), lines.len());
            assert_eq!(many.len(), lines.len());
            for i in 0..one.len() {
                assert_eq!(one.id(i), many.id(i), "line {i} at {level:?}");
            }
            if group == GroupLevel::Cluster {
                assert!(one.clusters >= 3);
            }
        }
    }
}
