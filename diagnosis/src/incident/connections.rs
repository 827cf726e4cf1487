//! Whether a service's goroutines or open fds rose with its connections: its callers opening
//! more (a burst of load, keep-alive pools growing, a node stalling), not a leak of its own.
//!
//! A count is judged against a model of its service's connections, point by point:
//!
//! - **Goroutines:** [`GOROUTINES_PER_SERVED`] per connection it serves (the established
//!   sockets on its own side of its listening ports: Go's server runs `conn.serve` per
//!   connection) plus [`GOROUTINES_PER_HELD`] per connection it holds to a port it calls (the
//!   established sockets towards its callees' ports, its own CLIENT spans' peer ports: Go's
//!   HTTP client runs a `readLoop` and a `writeLoop` per keep-alive connection). Its process's
//!   open fds are a second model, one goroutine per fd: every connection either way is one.
//! - **Open fds:** one per connection either way.
//!
//! What the model does not explain (the count less the model, at each point both are known)
//! is what a leak adds: goroutines blocked on a channel, fds of files or sockets of no
//! connection. The count follows its connections when that unexplained part rose less than
//! half the count's rise *and* less than the smallest rise of its kind raised at all
//! ([`MIN_PROCESS_CHANGE`]). Both are measured the same way on the same points (the median
//! of up to [`MIN_BASELINE_POINTS`] points before the change, the median of the latest
//! [`PERSIST`]), so a spike of one sample, or a level quoted from long before, moves neither.
//!
//! Seen in 5 of 5 lived-in runs of the Go lab (agent with ten minutes of history): the
//! healthy edge's goroutines wobbled 39 → 56 as the driver's 48 keep-alive workers'
//! connections to it came and went (goroutines = its served connections + 14 at every
//! point), and the leak rule read a climb "28 → 62" from its lowest point since its restart
//! to a one-sample spike. Compared with its fds' rise over the last half minute (14 against
//! half of 34), that was an incident "Goroutines grow without bound" on a healthy node.
//! Ports called by another known service too are left out of the model (their sockets are
//! not this service's alone), so a model can only explain less, never more.

use faultline_series::{PortSide, ProcessMetric, SeriesKey, SocketState};

use super::services::{port_callers, process_owner, task_owner};
use super::ServiceFacts;
use crate::anomaly::{CounterAnomaly, Direction, MIN_PROCESS_CHANGE, PERSIST};
use crate::baseline::{median, MIN_BASELINE_POINTS};
use crate::history::CounterHistory;
use crate::text::number;

/// Goroutines a Go server runs per connection it serves (`net/http`'s `conn.serve`).
pub const GOROUTINES_PER_SERVED: f64 = 1.0;
/// Goroutines a Go HTTP client runs per keep-alive connection it holds (`persistConn`'s
/// `readLoop` and `writeLoop`).
pub const GOROUTINES_PER_HELD: f64 = 2.0;

/// One series of a model and its weight (units of the count per unit of the series).
struct Term<'h> {
    points: &'h [Option<f64>],
    weight: f64,
}

/// What a count is judged against: weighted series, and how to say them.
struct Model<'h> {
    terms: Vec<Term<'h>>,
    /// Whether its terms are socket counts, taken by the census (which a loaded agent runs
    /// less often than every sample), not read every sample like the count.
    census: bool,
    /// "its connections (1 goroutine per connection it serves on :8080, 2 per one it holds
    /// to :8081)", "its open fds".
    what: String,
}

/// The count and its model, measured the same way before its change and now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measured {
    model_before: f64,
    model_now: f64,
    /// The count less the model.
    unexplained_before: f64,
    unexplained_now: f64,
}

/// The models of the count of `a` (goroutines or open fds), with its service and the count
/// in words; `None` for any other series or an unknown service.
fn models<'a, 'h>(
    a: &'a CounterAnomaly,
    services: &'a [ServiceFacts],
    history: &'h CounterHistory,
) -> Option<(&'a str, &'static str, Vec<Model<'h>>)> {
    let (service, what, models) = match &a.key {
        SeriesKey::Task { target, .. } => {
            let service = task_owner(target, services);
            let facts = services.iter().find(|s| s.service == service);
            let mut models = Vec::new();
            if let Some(f) = facts {
                models.extend(connections(
                    f,
                    services,
                    history,
                    "goroutine",
                    GOROUTINES_PER_SERVED,
                    GOROUTINES_PER_HELD,
                ));
            }
            let processes = facts.map_or(&[][..], |s| s.processes.as_slice());
            models.extend(
                history
                    .series
                    .iter()
                    .find(|s| {
                        matches!(&s.key, SeriesKey::Process { name, metric: ProcessMetric::OpenFds }
                            if name == service || processes.contains(name))
                    })
                    .map(|fds| Model {
                        terms: vec![Term {
                            points: &fds.points,
                            weight: 1.0,
                        }],
                        census: false,
                        what: "its open fds".to_owned(),
                    }),
            );
            (service, "goroutines", models)
        }
        SeriesKey::Process {
            name,
            metric: ProcessMetric::OpenFds,
        } => {
            let service = process_owner(name, services);
            let facts = services.iter().find(|s| s.service == service)?;
            let models = connections(facts, services, history, "fd", 1.0, 1.0)
                .into_iter()
                .collect();
            (service, "open fds", models)
        }
        _ => return None,
    };
    Some((service, what, models))
}

/// The count of `a` (goroutines or open fds) less what its service's connections explain
/// (its first model, see the module documentation), point by point, each set against the
/// connections counted when it was read; `None` when no model applies. A leak's count that
/// still climbs climbs here too; one that only follows its clients' connections (a
/// keep-alive pool growing after a heal) stays flat.
pub(super) fn beyond_connections(
    a: &CounterAnomaly,
    services: &[ServiceFacts],
    history: &CounterHistory,
) -> Option<Vec<Option<f64>>> {
    let (_, _, models) = models(a, services, history)?;
    let model = models.first()?;
    let count = &history.get(&a.key)?.points;
    Some(
        (0..count.len())
            .map(|i| {
                let (_, rest) = explained(count, model, i, history)?;
                Some(rest)
            })
            .collect(),
    )
}

/// The service whose goroutines or open fds rose in `a` with its connections, with the two
/// rises in words (see the module documentation); `None` when they did not, or when nothing
/// known could say.
pub(super) fn follows_connections(
    a: &CounterAnomaly,
    services: &[ServiceFacts],
    history: &CounterHistory,
) -> Option<(String, String)> {
    if a.direction != Direction::Rise {
        return None;
    }
    let (service, what, models) = models(a, services, history)?;
    let count = &history.get(&a.key)?.points;
    let rise = a.reached - a.before;
    models.iter().find_map(|m| {
        let r = measure(count, m, a.changed_at_unix_ms, history)?;
        let unexplained = r.unexplained_now - r.unexplained_before;
        (unexplained < MIN_PROCESS_CHANGE && unexplained <= rise / 2.0).then(|| {
            (
                service.to_owned(),
                format!(
                    "its {what} rose {} → {} with {} {} → {} (the rest {} → {})",
                    number(a.before),
                    number(a.reached),
                    m.what,
                    number(r.model_before),
                    number(r.model_now),
                    number(r.unexplained_before),
                    number(r.unexplained_now),
                ),
            )
        })
    })
}

/// The connections of `service` as a model of a count of `unit`s: `served` per established
/// socket on its own side of its listening ports, `held` per established socket towards the
/// ports it calls that no other known service calls. `None` when the history holds none of those series.
fn connections<'h>(
    service: &ServiceFacts,
    services: &[ServiceFacts],
    history: &'h CounterHistory,
    unit: &str,
    served: f64,
    held: f64,
) -> Option<Model<'h>> {
    let mut terms = Vec::new();
    let mut own = Vec::new();
    for &port in &service.listen_ports {
        if let Some(s) = history.get(&SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::Established,
        }) {
            terms.push(Term {
                points: &s.points,
                weight: served,
            });
            own.push(format!(":{port}"));
        }
    }
    let mut called = Vec::new();
    for port in called_ports(service, services) {
        if let Some(s) = history.get(&SeriesKey::PortState {
            port,
            side: PortSide::Remote,
            state: SocketState::Established,
        }) {
            terms.push(Term {
                points: &s.points,
                weight: held,
            });
            called.push(format!(":{port}"));
        }
    }
    if terms.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !own.is_empty() {
        parts.push(format!(
            "{} {unit} per connection it serves on {}",
            number(served),
            own.join(", ")
        ));
    }
    if !called.is_empty() {
        let per = if parts.is_empty() {
            format!("{} {unit} per connection", number(held))
        } else {
            format!("{} per one", number(held))
        };
        parts.push(format!("{per} it holds to {}", called.join(", ")));
    }
    Some(Model {
        terms,
        census: true,
        what: format!("its connections ({})", parts.join(", ")),
    })
}

/// The ports `service` calls whose client sockets on the node are its own: its CLIENT spans'
/// peer ports and its callees' listening ports, less its own ports and those another known
/// service calls too.
fn called_ports(service: &ServiceFacts, services: &[ServiceFacts]) -> Vec<u16> {
    let mut ports: Vec<u16> = service.called_ports.clone();
    for callee in &service.callees {
        if let Some(c) = services.iter().find(|s| &s.service == callee) {
            ports.extend(&c.listen_ports);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports.retain(|p| {
        !service.listen_ports.contains(p)
            && port_callers(*p, services)
                .iter()
                .all(|c| *c == service.service)
    });
    ports
}

/// `count` and its model at the change `at` and now (see the module documentation), over
/// the points where the count and every term are known. Before: the median of those among
/// the [`MIN_BASELINE_POINTS`] points before `at` (a change dated at its series' start has
/// none: its first [`PERSIST`] points from `at` on); now: the median of the latest
/// [`PERSIST`] from `at` on. A model of sockets is set against the count as it was when the
/// sockets were counted ([`CounterHistory::counted_at`]): seen on the unseen lab under load,
/// a callee's fds, read every second, rose 11 → 27 → 52 → 70 with the connections a leaking
/// caller opened while the census, taken every 2–3 s, still said 2 and then 41 — the
/// "unexplained" part rose by 20 for two seconds and "open fds rose 11 → 76" was an incident
/// of its own.
fn measure(
    count: &[Option<f64>],
    model: &Model<'_>,
    at: i64,
    history: &CounterHistory,
) -> Option<Measured> {
    let at = history.point_at(at)?;
    let point = |i: usize| explained(count, model, i, history);
    let mut before: Vec<(f64, f64)> = (at.saturating_sub(MIN_BASELINE_POINTS)..at)
        .filter_map(point)
        .collect();
    let after: Vec<(f64, f64)> = (at..count.len()).filter_map(point).collect();
    if after.is_empty() {
        return None;
    }
    if before.is_empty() {
        before = after.iter().take(PERSIST).copied().collect();
    }
    let now = &after[after.len().saturating_sub(PERSIST)..];
    let medians = |points: &[(f64, f64)]| -> (f64, f64) {
        let mut model: Vec<f64> = points.iter().map(|p| p.0).collect();
        let mut rest: Vec<f64> = points.iter().map(|p| p.1).collect();
        (median(&mut model), median(&mut rest))
    };
    let (model_before, unexplained_before) = medians(&before);
    let (model_now, unexplained_now) = medians(now);
    Some(Measured {
        model_before,
        model_now,
        unexplained_before,
        unexplained_now,
    })
}

/// The model of `count` at point `i` and the count less it, the count read as it stood when
/// the model's sockets were counted ([`CounterHistory::counted_at`]); `None` where either is
/// unknown.
fn explained(
    count: &[Option<f64>],
    model: &Model<'_>,
    i: usize,
    history: &CounterHistory,
) -> Option<(f64, f64)> {
    let counted = if model.census {
        history
            .point_at(history.counted_at(i))
            .map_or(i, |c| c.min(i))
    } else {
        i
    };
    let v = count.get(counted).copied().flatten()?;
    let mut m = 0.0;
    for t in &model.terms {
        m += t.weight * t.points.get(i).copied().flatten()?;
    }
    Some((m, v - m))
}
