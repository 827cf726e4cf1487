//! `faultline cluster`: batch clustering of a file, one id per input line.
//!
//! Reads IN line by line (invalid UTF-8 is replaced, not refused; a line longer than 64 KiB
//! is cut), optionally runs the agent's line parser on each line and clusters the record's
//! `cluster_text()`, and writes OUT with exactly one template or cluster id per input line,
//! in the same order, empty lines included. A progress line is drawn on stderr when stderr
//! is a terminal; a one-line summary ends the run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use faultline_clustering::batch::{Batch, GroupLevel, MaskedBlock};
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
    /// Threads that mask at the cluster level on large files (0: one per core, at most 4).
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

/// Files at least this large are masked on every core at the cluster level: below it the
/// threads cost more than they save (a 2,000-line Loghub file takes milliseconds).
const PARALLEL_MIN_BYTES: u64 = 8 << 20;

/// Lines per block handed to a masking thread: large enough that handing over costs nothing
/// next to masking it (~5 ms of work), small enough that the blocks in flight (a few per
/// thread, bounded channels) stay a few MB.
const BLOCK_LINES: usize = 16_384;

/// Runs the command.
///
/// At the template level, and for small files, one thread reads, masks and groups. At the
/// cluster level on a large file, the masking (and `--parse`) runs on every core: this thread
/// reads blocks of lines into a bounded channel, worker threads mask them, and one thread
/// adds the masked blocks to the batch in input order, so the ids are exactly those of the
/// one-thread run.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = File::open(&args.input)
        .with_context(|| format!("cannot open the input {}", args.input.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = BufReader::with_capacity(1 << 20, file);
    let level = match args.level {
        Level::Cluster => GroupLevel::Cluster,
        Level::Template => GroupLevel::Template,
    };
    let batch = Batch::new(level, 5, MAX_MESSAGE_BYTES, VectorParams::default());
    let workers = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    let batch = if level == GroupLevel::Cluster && total >= PARALLEL_MIN_BYTES && workers > 1 {
        run_parallel(args, reader, batch, workers)?
    } else {
        run_sequential(args, reader, batch, total)?
    };
    let ids = batch.finish();
    let out = File::create(&args.output)
        .with_context(|| format!("cannot create the output {}", args.output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    ids.write_to(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if ids.other_lines > 0 {
        eprintln!(
            "faultline cluster: bound applied: {} lines of new shapes past the first {} distinct shapes got the id ffffffffffffffff (other)",
            ids.other_lines,
            faultline_clustering::batch::MAX_BATCH_SHAPES
        );
    }
    if ids.searches_cut > 0 {
        eprintln!(
            "faultline cluster: bound applied: the neighbour search of {} roots stopped after {} candidates; they may miss a cluster",
            ids.searches_cut,
            faultline_clustering::cluster::MAX_CANDIDATES
        );
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

/// Calls `each` with every line of `reader`: line ends removed, cut to
/// [`MAX_MESSAGE_BYTES`], invalid UTF-8 replaced. Returns the bytes read.
fn for_each_line(
    args: &ClusterArgs,
    mut reader: impl BufRead,
    mut each: impl FnMut(std::borrow::Cow<'_, str>, u64) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut line = Vec::with_capacity(4096);
    let mut read: u64 = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
        let mut end = line.len();
        if line[..end].ends_with(b"\n") {
            end -= 1;
        }
        if line[..end].ends_with(b"\r") {
            end -= 1;
        }
        let bytes = &line[..end.min(MAX_MESSAGE_BYTES)];
        each(String::from_utf8_lossy(bytes), read)?;
    }
}

/// The text clustered for one input line.
fn cluster_text(args: &ClusterArgs, line: &str) -> String {
    if args.parse {
        faultline_ingest::parse::parse_line(line, Origin::OtlpLog)
            .cluster_text()
            .to_string()
    } else {
        line.to_string()
    }
}

fn run_sequential(
    args: &ClusterArgs,
    reader: impl BufRead,
    mut batch: Batch,
    total: u64,
) -> anyhow::Result<Batch> {
    let progress = std::io::stderr().is_terminal();
    for_each_line(args, reader, |text, read| {
        if args.parse {
            let record = faultline_ingest::parse::parse_line(&text, Origin::OtlpLog);
            batch.push(record.cluster_text());
        } else {
            batch.push(&text);
        }
        if progress && batch.len().is_multiple_of(1 << 16) {
            let pct = (read * 100).checked_div(total).unwrap_or(0);
            eprint!("\rfaultline cluster: {pct:3}%  {} lines", batch.len());
        }
        Ok(())
    })?;
    if progress {
        eprint!("\r\x1b[K");
    }
    Ok(batch)
}

fn run_parallel(
    args: &ClusterArgs,
    reader: impl BufRead,
    mut batch: Batch,
    workers: usize,
) -> anyhow::Result<Batch> {
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<(usize, Vec<String>)>(workers);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = sync_channel::<(usize, MaskedBlock)>(workers * 2);
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let job = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((seq, lines)) = job else { return };
                let texts: Vec<String> = if args.parse {
                    lines.iter().map(|l| cluster_text(args, l)).collect()
                } else {
                    lines
                };
                let block = MaskedBlock::mask(texts.iter().map(String::as_str), MAX_MESSAGE_BYTES);
                if done_tx.send((seq, block)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // Blocks finish out of order; they join the batch in order. At most the blocks in
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
        let mut block: Vec<String> = Vec::with_capacity(BLOCK_LINES);
        let read = for_each_line(args, reader, |text, _| {
            block.push(text.into_owned());
            if block.len() == BLOCK_LINES {
                let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK_LINES));
                work_tx
                    .send((seq, full))
                    .map_err(|_| anyhow::anyhow!("a masking thread stopped"))?;
                seq += 1;
            }
            Ok(())
        });
        if read.is_ok() && !block.is_empty() {
            let _ = work_tx.send((seq, block));
        }
        drop(work_tx);
        let batch = assembler
            .join()
            .map_err(|_| anyhow::anyhow!("the thread that joins the masked blocks panicked"))?;
        read.map(|_| batch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_on_several_threads_gives_the_ids_of_one_thread_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.log");
        // Three blocks and a partial one, with shapes first seen in late blocks.
        let lines: Vec<String> = (0..3 * BLOCK_LINES + 123)
            .map(|i| match i % 4 {
                0 => format!(
                    r#"{{"level":"error","msg":"call failed","error":"GetUser({i}): EOF"}}"#
                ),
                1 => format!(
                    "dial tcp 10.0.{}.{}:5432: connect: connection refused",
                    i % 7,
                    i % 5
                ),
                2 if i > 2 * BLOCK_LINES => format!("late kind {} of failure", i % 3),
                _ => String::new(),
            })
            .collect();
        std::fs::write(&input, lines.join("\n")).expect("written");
        let args = ClusterArgs {
            input: input.clone(),
            output: dir.path().join("out"),
            level: Level::Cluster,
            parse: true,
            threads: 2,
        };
        let open = || BufReader::new(File::open(&input).expect("open"));
        let new = || {
            Batch::new(
                GroupLevel::Cluster,
                5,
                MAX_MESSAGE_BYTES,
                VectorParams::default(),
            )
        };
        let one = run_sequential(&args, open(), new(), 0)
            .expect("sequential")
            .finish();
        let many = run_parallel(&args, open(), new(), 2)
            .expect("parallel")
            .finish();
        assert_eq!(one.len(), lines.len());
        assert_eq!(many.len(), lines.len());
        for i in 0..one.len() {
            assert_eq!(one.id(i), many.id(i), "line {i}");
        }
        assert!(one.clusters >= 3);
    }
}
