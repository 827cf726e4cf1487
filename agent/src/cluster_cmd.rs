//! `faultline cluster`: batch clustering of a file, one id per input line.
//!
//! Reads IN line by line (invalid UTF-8 is replaced, not refused; a line longer than 64 KiB
//! is cut), optionally runs the agent's line parser on each line and clusters the record's
//! `cluster_text()`, and writes OUT with exactly one template or cluster id per input line,
//! in the same order, empty lines included. A progress line is drawn on stderr when stderr
//! is a terminal; a one-line summary ends the run.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use faultline_clustering::batch::{Batch, GroupLevel};
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
}

/// `--level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// Root kind of error (default).
    Cluster,
    /// Masked template.
    Template,
}

/// Runs the command.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = File::open(&args.input)
        .with_context(|| format!("cannot open the input {}", args.input.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let level = match args.level {
        Level::Cluster => GroupLevel::Cluster,
        Level::Template => GroupLevel::Template,
    };
    let mut batch = Batch::new(level, 5, MAX_MESSAGE_BYTES, VectorParams::default());
    let progress = std::io::stderr().is_terminal();
    let mut line = Vec::with_capacity(4096);
    let mut read: u64 = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        if n == 0 {
            break;
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
        let text = String::from_utf8_lossy(bytes);
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
    }
    if progress {
        eprint!("\r\x1b[K");
    }
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
