//! Benchmark: one anomaly pass of the diagnosis over a long, wide counter history, the full
//! detector ([`detect`]: every series, every point, each pass) against the detector kept
//! across passes ([`Detector`]: the series that need it in full, the others checked against
//! their band), measured in the same run.
//!
//! Run with `cargo bench -p faultline-diagnosis --bench pass` (add `--profile dev` for a
//! debug build's figures). The history: `GROUPS` port groups of four series each (a port's
//! ESTABLISHED sockets and its total on the listener's side, TIME-WAIT towards it and its
//! total on the callers' side), noise around their own levels, one point a second, at 2, 6
//! and 15 minutes of history (the counter store's ring). A pass is timed at each second as the
//! history slides by one point (the points are moved outside the timing); the kept detector
//! is timed after 30 passes of warm-up (its first pass judges every series it may). Figures
//! are medians (and the slowest) of the passes.

use std::time::{Duration, Instant};

use faultline_diagnosis::anomaly::cached::{Bounds, Detector};
use faultline_diagnosis::anomaly::{detect, AnomalyConfig};
use faultline_diagnosis::{CounterHistory, CounterSeries};
use faultline_series::{PortSide, SeriesKey, SocketState};

const PASSES: usize = 30;
const WARMUP: usize = 30;
const START: i64 = 1_795_638_600_000;

/// A small deterministic generator (no dependency, same points every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn around(&mut self, level: f64, spread: f64) -> Option<f64> {
        Some(
            (level + spread * (2.0 * self.next() - 1.0))
                .round()
                .max(0.0),
        )
    }
}

/// The series' keys and levels (level, spread).
fn keys(groups: u16) -> Vec<(SeriesKey, f64, f64)> {
    let mut out = Vec::new();
    for g in 0..groups {
        let port = 20_000 + g;
        let (estab, tw) = (20.0 + f64::from(g % 7), 30.0 + f64::from(g % 11));
        let state = |side, state| SeriesKey::PortState { port, side, state };
        out.push((state(PortSide::Local, SocketState::Established), estab, 4.0));
        out.push((
            SeriesKey::PortTotal {
                port,
                side: PortSide::Local,
            },
            estab,
            4.0,
        ));
        out.push((state(PortSide::Remote, SocketState::TimeWait), tw, 6.0));
        out.push((
            SeriesKey::PortTotal {
                port,
                side: PortSide::Remote,
            },
            tw,
            6.0,
        ));
    }
    out
}

fn history(keys: &[(SeriesKey, f64, f64)], len: usize, rng: &mut Lcg) -> CounterHistory {
    CounterHistory {
        start_unix_ms: START,
        step_ms: 1000,
        series: keys
            .iter()
            .map(|(key, level, spread)| CounterSeries {
                key: key.clone(),
                points: (0..len).map(|_| rng.around(*level, *spread)).collect(),
            })
            .collect(),
        ..CounterHistory::default()
    }
}

/// The history one second later: its oldest point dropped, a new one at the end.
fn slide(h: &mut CounterHistory, keys: &[(SeriesKey, f64, f64)], rng: &mut Lcg) {
    h.start_unix_ms += h.step_ms;
    for (s, (_, level, spread)) in h.series.iter_mut().zip(keys) {
        s.points.remove(0);
        s.points.push(rng.around(*level, *spread));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let config = AnomalyConfig::default();
    println!(
        "| series | history | full detector, median (slowest) | kept detector, median (slowest) | series judged in full per pass, median | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for groups in [250u16, 750] {
        let keys = keys(groups);
        for minutes in [2usize, 6, 15] {
            let mut rng = Lcg(7);
            let mut h = history(&keys, minutes * 60, &mut rng);
            let mut full = Vec::new();
            for _ in 0..PASSES.min(7) {
                slide(&mut h, &keys, &mut rng);
                let t = Instant::now();
                let report = detect(&h, &[], &[], &config);
                full.push(t.elapsed());
                assert!(report.series_judged > 0);
            }
            let mut detector = Detector::new(Bounds::default());
            for _ in 0..WARMUP {
                slide(&mut h, &keys, &mut rng);
                detector.detect(&h, &[], &[], &config);
            }
            let (mut kept, mut judged) = (Vec::new(), Vec::new());
            for _ in 0..PASSES {
                slide(&mut h, &keys, &mut rng);
                let t = Instant::now();
                let report = detector.detect(&h, &[], &[], &config);
                kept.push(t.elapsed());
                judged.push(detector.last_pass().judged);
                assert_eq!(report.series_judged as usize, keys.len());
            }
            judged.sort_unstable();
            let (full_max, kept_max) = (
                full.iter().max().copied().unwrap_or_default(),
                kept.iter().max().copied().unwrap_or_default(),
            );
            let (full_med, kept_med) = (median(full), median(kept));
            println!(
                "| {} | {minutes} min | {} ({}) | {} ({}) | {} | {:.1}× |",
                keys.len(),
                ms(full_med),
                ms(full_max),
                ms(kept_med),
                ms(kept_max),
                judged[judged.len() / 2],
                full_med.as_secs_f64() / kept_med.as_secs_f64().max(1e-9),
            );
        }
    }
}
