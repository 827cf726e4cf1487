//! A TIME-WAIT storm on a series too young for a baseline: judged from its first points.
//!
//! [`super::detect`] gives a series that appeared after the agent started, or whose service
//! (re)started, its start-up ([`super::AnomalyConfig::warmup_ms`]) and then a baseline's
//! minimum of points before it judges it: 45 s by default, up to two minutes after a redeploy
//! whose new process was found late. A client deployed with a connection per call, or one
//! whose storm begins shortly after a restart, was silently unjudged all that time.
//!
//! A port's TIME-WAIT count is a moving sum: every connection closed first on that side stays
//! in it for 60 s, so while no socket has left the state yet, the count climbs at the close
//! rate. A start-up closes few connections (a pool settling, clients reconnecting once: a
//! step of a few dozen, or a climb of one or two a second); a storm closes one per call, for
//! as long as it lasts. So a young TIME-WAIT series is raised on its climb alone, against
//! zero — no socket of it existed before its start:
//!
//! 1. the climb starts at the last point within the noise of the series' lowest point since
//!    its start, and holds at least [`RAMP_MIN_POINTS`];
//! 2. its latest [`RAMP_MAX_POINTS`] points rise in a Mann–Kendall trend at [`RAMP_Z`], and
//!    their Theil–Sen pace is at least [`MIN_YOUNG_STORM_CLOSES`] a second;
//! 3. it does not level off: its latest point is above the one before, and the pace of the
//!    later half of those points is at least [`LEAK_PACE`] of it (a restart's step of closed
//!    connections is flat after the step);
//! 4. it climbed at least [`MIN_SOCKET_CHANGE`] and to at least [`TIME_WAIT_RATIO`] times
//!    where it started.
//!
//! What is a storm and what a pool's churn is then told by the incidents
//! ([`crate::incident`]): a connection closed per call of the port's listener, or, with the
//! calls unknown, a rise of [`crate::incident::MIN_STORM_RISE`]. The evidence says that the
//! series had no baseline yet and why.

use faultline_series::{SeriesKey, SocketState};

use super::leak::{climb_out_of, theil_sen, Climb, LEAK_PACE};
use super::{
    mann_kendall_z, number, CounterAnomaly, BAND_Z, MIN_SOCKET_CHANGE, RAMP_Z, TIME_WAIT_RATIO,
};
use crate::baseline::poisson_floor;
use crate::history::CounterHistory;

/// Fewest connections closed a second (the climb of a young TIME-WAIT count) that are judged
/// as a possible storm: the incidents' floor rate ([`crate::incident::MIN_STORM_CLOSES`], 200
/// within the minute a socket stays in TIME-WAIT). Seen on the Go lab: an edge service's
/// TIME-WAIT climbed one or two a second for the first minute after it started.
pub const MIN_YOUNG_STORM_CLOSES: f64 = crate::incident::MIN_STORM_CLOSES;

/// The storm of a young TIME-WAIT series whose life starts at `started` (its first point
/// counted, or its service's restart), if its climb is one (see the module documentation).
/// `why_young` says why it has no baseline yet ("first seen at 20:41:03 UTC, after the agent
/// started").
pub(super) fn young_storm(
    history: &CounterHistory,
    key: &SeriesKey,
    points: &[Option<f64>],
    started: usize,
    why_young: &str,
) -> Option<CounterAnomaly> {
    if !matches!(
        key,
        SeriesKey::PortState {
            state: SocketState::TimeWait,
            ..
        }
    ) {
        return None;
    }
    let known: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .skip(started)
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let lowest = known.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    if !lowest.is_finite() {
        return None;
    }
    let (climb, recent) = climb_out_of(&known, lowest + BAND_Z * poisson_floor(lowest, 1.0))?;
    let &(last_i, latest) = climb.last()?;
    // Still climbing at its latest census: a burst of closes that stopped is no storm.
    if !still_climbing(climb) {
        return None;
    }
    let reached = climb.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let before = climb[0].1;
    let step = history.step_ms.max(1) as f64;
    let pace = theil_sen(recent);
    let per_second = pace * 1000.0 / step;
    if mann_kendall_z(recent.iter().map(|p| p.1)) < RAMP_Z
        || per_second < MIN_YOUNG_STORM_CLOSES
        || theil_sen(&recent[recent.len() / 2..]) < LEAK_PACE * pace
        || latest - before < MIN_SOCKET_CHANGE
        || latest < TIME_WAIT_RATIO * before
    {
        return None;
    }
    // Dated at its first point out of the floor, as a ramp is.
    let climbed = Climb {
        before,
        noise: poisson_floor(before, 1.0),
        reached,
        latest,
        changed: climb[1].0,
        last: last_i,
        limit: None,
    };
    let why = format!(
        "{why_young}, too young for a baseline: judged on its climb, {} connections closed a \
         second",
        number(per_second)
    );
    Some(climbed.anomaly(history, key, &why))
}

/// Whether a climb (at least two points) was still climbing at its latest census: its latest
/// value above the one counted before it. On a busy node the socket census runs only as often
/// as its CPU budget allows (`socket_cpu_budget_percent`), and the samples between repeat the
/// last count: a latest value repeated no more often than the climb's own counts were is a
/// census not yet taken again, not a climb that stopped. Seen on the demo's time-wait beside
/// other programs' churn, counted every 3 s (30,000 sockets on the node): the storm read 15,
/// 15, 15, 63, 63, 63, 112, …, two samples in three said it had stopped, and it was raised
/// 13 s after it began, then only every third second.
fn still_climbing(climb: &[(usize, f64)]) -> bool {
    let Some(&(_, latest)) = climb.last() else {
        return false;
    };
    let repeats = climb.iter().rev().take_while(|p| p.1 == latest).count();
    let Some(&(_, before)) = climb.iter().rev().nth(repeats) else {
        return false;
    };
    // The longest run of one count within the climb before its latest value.
    let counted_every = climb[..climb.len() - repeats]
        .chunk_by(|a, b| a.1 == b.1)
        .map(<[_]>::len)
        .max()
        .unwrap_or(1);
    latest > before && repeats <= counted_every
}

#[cfg(test)]
mod tests {
    use faultline_series::PortSide;

    use super::super::tests::{assert_no_break, at, history, noisy, raised_within, START};
    use super::super::{detect, AnomalyConfig, ServiceStart};
    use super::*;

    fn port(port: u16, side: PortSide, state: SocketState) -> SeriesKey {
        SeriesKey::PortState { port, side, state }
    }

    /// A service that started `from` seconds after the agent: its port group counted from
    /// then (a listener and a pooled connection or two), its TIME-WAIT `tw(seconds since)`.
    fn started_at(
        len: usize,
        from: usize,
        tw: impl Fn(usize) -> f64,
    ) -> (SeriesKey, CounterHistory) {
        let key = port(7000, PortSide::Local, SocketState::TimeWait);
        let total = SeriesKey::PortTotal {
            port: 7000,
            side: PortSide::Local,
        };
        let tws: Vec<Option<f64>> = (0..len)
            .map(|i| (i >= from).then(|| tw(i - from)).filter(|v| *v > 0.0))
            .collect();
        let group: Vec<Option<f64>> = (0..len)
            .map(|i| (i >= from).then(|| 3.0 + tws[i].unwrap_or(0.0)))
            .collect();
        (key.clone(), history(vec![(key, tws), (total, group)]))
    }

    #[test]
    fn a_storm_that_begins_with_its_service_is_raised_within_seconds_against_zero() {
        // The service starts at 100 s; 10 s later its caller opens a connection per call, 25
        // a second: its TIME-WAIT climbs 25 a second from nothing. Its start-up (15 s) and
        // baseline (30 points) would have kept it unjudged until 145 s.
        let storm_at = 110;
        let (key, h) = started_at(200, 100, |t| {
            (25.0 * (t as f64 + 100.0 - storm_at as f64 + 1.0)).clamp(0.0, 1_500.0)
        });
        let raised = raised_within(&h, &key, storm_at, 8, 199);
        let report = detect(&at(&h, raised), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == key).unwrap();
        assert_eq!(a.before, 0.0, "{a:#?}");
        assert_eq!(a.changed_at_unix_ms, START + storm_at as i64 * 1000);
        assert!(
            a.evidence.starts_with("TIME-WAIT :7000 is climbing 0 → ")
                && a.evidence.contains(
                    "first seen at 20:31:40 UTC, after the agent started, too young for a \
                     baseline: judged on its climb, 25 connections closed a second"
                ),
            "{}",
            a.evidence
        );
        assert!(!report.unjudged.iter().any(|u| u.key == key));
    }

    #[test]
    fn a_storm_soon_after_its_service_restarted_is_raised_within_seconds() {
        // A steady port since the agent started; its service restarts at 300 s (its stop
        // leaves its clients' connections in TIME-WAIT: a step of 40), and the new version
        // opens a connection per call from 320 s.
        let key = port(7000, PortSide::Remote, SocketState::TimeWait);
        let mut tw = noisy(420, 6.0, 2.0, 4);
        for (i, p) in tw.iter_mut().enumerate().skip(300) {
            let stop = if i < 360 { 40.0 } else { 0.0 };
            *p = Some(6.0 + stop + 20.0 * (i as f64 - 319.0).max(0.0));
        }
        let h = history(vec![(key.clone(), tw)]);
        let restart = ServiceStart {
            service: "api".into(),
            at_unix_ms: START + 300_000,
            ports: vec![7000],
            ..ServiceStart::default()
        };
        let starts = [restart];
        let raised = (300..420)
            .find(|&end| {
                detect(&at(&h, end), &[], &starts, &AnomalyConfig::default())
                    .anomalies
                    .iter()
                    .any(|a| a.key == key)
            })
            .expect("raised");
        assert!(
            (320..=328).contains(&raised),
            "raised at {raised} s, the storm began at 320 s"
        );
        let report = detect(&at(&h, raised), &[], &starts, &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == key).unwrap();
        assert!(
            a.evidence.contains("api (re)started at 20:35:00 UTC"),
            "{}",
            a.evidence
        );
    }

    #[test]
    fn a_storm_counted_every_few_seconds_is_raised_at_every_sample_while_it_climbs() {
        // The service starts at 100 s; from 110 s its caller opens a connection per call, 16
        // a second. The node is busy: its sockets are counted every 3 s, and the samples
        // between repeat the last count: its first count comes up to 3 s late.
        let storm_at = 110;
        let (key, h) = started_at(200, 100, |t| {
            let counted = t - t % 3;
            (16.0 * (counted as f64 + 100.0 - storm_at as f64 + 1.0)).clamp(0.0, 960.0)
        });
        let raised = raised_within(&h, &key, storm_at, 10, 199);
        for end in raised..storm_at + 50 {
            let report = detect(&at(&h, end), &[], &[], &AnomalyConfig::default());
            assert!(
                report.anomalies.iter().any(|a| a.key == key),
                "not raised at {end}: {:?}",
                report.unjudged
            );
        }
        // Once the storm stops, the level holds: not a storm still climbing past the
        // repeats of one count.
        let (key, h) = started_at(200, 100, |t| {
            let counted = (t - t % 3).min(40);
            (16.0 * (counted as f64 + 100.0 - storm_at as f64 + 1.0)).max(0.0)
        });
        let report = detect(&at(&h, 160), &[], &[], &AnomalyConfig::default());
        assert!(
            !report.anomalies.iter().any(|a| a.key == key),
            "{:?}",
            report.anomalies
        );
    }

    #[test]
    fn a_young_ports_pool_churn_and_a_restarts_closed_connections_raise_nothing() {
        let config = AnomalyConfig::default();
        // A pool settling after its service started: its TIME-WAIT climbs two a second with
        // noise for its first minute, then holds (a minute's closes).
        let (_, h) = started_at(300, 100, |t| {
            let t = t as f64;
            (2.0 * t.min(60.0) + 3.0 * ((t * 1.7).sin()))
                .max(0.0)
                .round()
        });
        assert_no_break(&h, 100..=300, &[], &config);
        // Its clients reconnecting after it started: 40 connections closed within 4 s, then
        // none.
        let (_, h) = started_at(300, 100, |t| (10.0 * t.min(4) as f64).min(40.0));
        assert_no_break(&h, 100..=300, &[], &config);
    }
}
