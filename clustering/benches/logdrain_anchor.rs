//! Speed anchor for `scripts/bench/clustering.sh`: the `logdrain` crate (an independent Rust
//! Drain implementation) over the same file, end to end like `faultline cluster`: read the
//! file line by line, mine each line, write one cluster id per line.
//!
//! Usage: `cargo bench -p faultline-clustering --bench logdrain_anchor -- IN OUT`
//! (prints one line: lines, seconds, lines/s).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

use logdrain::{builtin_masks, Miner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: logdrain_anchor IN OUT");
        return Ok(());
    };
    let started = Instant::now();
    let miner = Miner::builder()
        .masks([
            builtin_masks::uuid(),
            builtin_masks::hex32(),
            builtin_masks::email(),
            builtin_masks::ipv4(),
        ])
        .build()?;
    let mut reader = BufReader::with_capacity(1 << 20, File::open(input)?);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(output)?);
    let mut line = Vec::new();
    let mut lines = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.ends_with(b"\n") {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        let id = miner.add(&text).cluster_id;
        writeln!(out, "{id}")?;
        lines += 1;
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "logdrain: {lines} lines, {secs:.3} s, {:.0} lines/s",
        lines as f64 / secs
    );
    Ok(())
}
