//! The counter history as it is kept across an agent restart: what [`CounterStore::save`]
//! hands the agent to write, and what [`CounterStore::restore`] takes back at the next start.
//!
//! Why: the anomaly detector judges a counter against its own baseline. An agent restarted
//! during an outage that logs nothing (a CLOSE-WAIT leak, a TIME-WAIT storm, a goroutine leak)
//! had no baseline any more: the leak's climb became the "usual level" of a young series, and
//! nothing was raised again; the counters page lost its charts. With the history restored, the
//! baseline before the outage is there again, the downtime is a gap (unknown, never zero), and
//! the outage is raised again with its real onset.
//!
//! What is kept: the sample times and the minute times, and for each series its points at both
//! resolutions, as they were. With them, who held each listening port and the process ids of
//! each process target when the history was saved: a port that another process holds at the
//! next start (the service restarted too, or the port went to another program) has a past
//! that is not its own, and its series start afresh (see [`CounterStore::restore`]).
//!
//! Format: serialises as a versioned value of its own (`"version": "1"`), so the agent stores
//! it inside its own file and a change of the in-memory types never changes the file
//! silently. Points are run-length encoded (`[value, repeat]`, `null` for a gap): most
//! counters hold still for long stretches, and a day of minute points of an idle port is one
//! run. Series keys are the API's typed keys; a key this version does not know (written by a
//! newer version) is left out and counted, not a reason to refuse the rest. A file that
//! contradicts itself (points and times of different lengths, times going backwards) is
//! refused as a whole: the reader sets it aside.
//!
//! Bounds: a run cannot claim more points than the file has times, so a corrupt count cannot
//! make the reader allocate more than the file describes.
//!
//! The agent writes this JSON form only as format 1 of its files (an agent upgraded in place
//! still reads it); its current files lay the same points out in a binary form of their own,
//! the minutes in an append-only log (see the agent's `persist::counters`).
//!
//! [`CounterStore::save`]: super::CounterStore::save
//! [`CounterStore::restore`]: super::CounterStore::restore

use faultline_series::SeriesKey;
use serde::{Deserialize, Serialize};

/// The counters' history and what it belonged to, as saved for a restart (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "Versioned", try_from = "Versioned")]
pub struct SavedCounters {
    /// The history.
    pub history: SavedHistory,
    /// Who held each listening port when it was saved.
    pub owners: Vec<SavedOwner>,
    /// The process ids of each process target when it was saved.
    pub targets: Vec<SavedTarget>,
    /// Series the file held under keys this version does not know (read only; never
    /// written).
    pub unknown_series: usize,
}

/// The points of some series at both resolutions, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SavedHistory {
    /// Time of each sample point (Unix ms).
    pub second_times: Vec<i64>,
    /// Start of each closed minute (Unix ms).
    pub minute_times: Vec<i64>,
    /// The series, each aligned with both axes.
    pub series: Vec<SavedSeries>,
}

/// One series' points, aligned with [`SavedHistory::second_times`] and
/// [`SavedHistory::minute_times`]; `None` where it was not sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSeries {
    /// Which series.
    pub key: SeriesKey,
    /// One point per sample.
    pub seconds: Vec<Option<f32>>,
    /// One point per closed minute.
    pub minutes: Vec<Option<f32>>,
}

/// The process that held a listening port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOwner {
    /// The port.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
}

/// The process ids of one `[[counters.processes]]` target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTarget {
    /// The target's name.
    pub name: String,
    /// Its process ids.
    pub pids: Vec<u32>,
}

/// The on-disk format. New versions are added as new variants; old ones keep loading.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Versioned {
    #[serde(rename = "1")]
    V1 {
        second_times: Vec<i64>,
        minute_times: Vec<i64>,
        series: Vec<SeriesV1>,
        owners: Vec<SavedOwner>,
        targets: Vec<SavedTarget>,
    },
}

/// One series in format 1: its key as the API writes it (read on its own, so an unknown key
/// costs that series only) and its points as runs.
#[derive(Debug, Serialize, Deserialize)]
struct SeriesV1 {
    key: serde_json::Value,
    seconds: Vec<Run>,
    minutes: Vec<Run>,
}

/// `repeat` equal points (`None`: a gap).
type Run = (Option<f32>, u32);

fn runs(points: &[Option<f32>]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for p in points {
        match out.last_mut() {
            Some((v, n)) if v == p && *n < u32::MAX => *n += 1,
            _ => out.push((*p, 1)),
        }
    }
    out
}

/// The points of `runs`, which must describe exactly `len` of them.
fn points(runs: &[Run], len: usize, what: &str) -> Result<Vec<Option<f32>>, String> {
    let mut out = Vec::with_capacity(len);
    for &(v, n) in runs {
        let n = n as usize;
        if n > len - out.len() {
            return Err(format!(
                "{what}: its runs hold more points than the {len} times"
            ));
        }
        out.extend(std::iter::repeat_n(v.filter(|v| v.is_finite()), n));
    }
    if out.len() != len {
        return Err(format!("{what}: {} points for {len} times", out.len()));
    }
    Ok(out)
}

fn non_decreasing(times: &[i64], what: &str) -> Result<(), String> {
    match times.windows(2).find(|w| w[1] < w[0]) {
        Some(w) => Err(format!("its {what} go backwards ({} then {})", w[0], w[1])),
        None => Ok(()),
    }
}

impl From<SavedCounters> for Versioned {
    fn from(saved: SavedCounters) -> Versioned {
        let h = saved.history;
        Versioned::V1 {
            series: h
                .series
                .iter()
                .map(|s| SeriesV1 {
                    key: serde_json::to_value(&s.key).unwrap_or(serde_json::Value::Null),
                    seconds: runs(&s.seconds),
                    minutes: runs(&s.minutes),
                })
                .collect(),
            second_times: h.second_times,
            minute_times: h.minute_times,
            owners: saved.owners,
            targets: saved.targets,
        }
    }
}

impl TryFrom<Versioned> for SavedCounters {
    type Error = String;

    fn try_from(file: Versioned) -> Result<SavedCounters, String> {
        match file {
            Versioned::V1 {
                second_times,
                minute_times,
                series,
                owners,
                targets,
            } => {
                non_decreasing(&second_times, "sample times")?;
                non_decreasing(&minute_times, "minute times")?;
                let mut unknown_series = 0;
                let mut out = Vec::with_capacity(series.len());
                for s in series {
                    let Ok(key) = serde_json::from_value::<SeriesKey>(s.key) else {
                        unknown_series += 1;
                        continue;
                    };
                    let what = key.label();
                    out.push(SavedSeries {
                        seconds: points(&s.seconds, second_times.len(), &what)?,
                        minutes: points(&s.minutes, minute_times.len(), &what)?,
                        key,
                    });
                }
                Ok(SavedCounters {
                    history: SavedHistory {
                        second_times,
                        minute_times,
                        series: out,
                    },
                    owners,
                    targets,
                    unknown_series,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_series::{PortSide, SocketState};

    fn close_wait(port: u16) -> SeriesKey {
        SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        }
    }

    #[test]
    fn round_trips_through_json_with_runs_and_gaps() {
        let saved = SavedCounters {
            history: SavedHistory {
                second_times: vec![1_000, 2_000, 3_000, 9_000],
                minute_times: vec![0],
                series: vec![SavedSeries {
                    key: close_wait(8080),
                    seconds: vec![Some(3.0), Some(3.0), None, Some(41.5)],
                    minutes: vec![Some(3.0)],
                }],
            },
            owners: vec![SavedOwner {
                port: 8080,
                pid: 42,
            }],
            targets: vec![SavedTarget {
                name: "orders".into(),
                pids: vec![42],
            }],
            unknown_series: 0,
        };
        let json = serde_json::to_string(&saved).unwrap();
        assert!(json.starts_with(r#"{"version":"1","#), "{json}");
        // Two equal points are one run.
        assert!(json.contains("[[3.0,2],[null,1],[41.5,1]]"), "{json}");
        let back: SavedCounters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, saved);
    }

    #[test]
    fn a_key_of_a_newer_version_costs_its_series_only() {
        let json = r#"{"version":"1","second_times":[1000],"minute_times":[],
            "series":[
              {"key":{"series":"quantum_flux","port":1},"seconds":[[1.0,1]],"minutes":[]},
              {"key":{"series":"listen_queue","port":80},"seconds":[[2.0,1]],"minutes":[]}
            ],"owners":[],"targets":[]}"#;
        let saved: SavedCounters = serde_json::from_str(json).unwrap();
        assert_eq!(saved.unknown_series, 1);
        assert_eq!(saved.history.series.len(), 1);
        assert_eq!(saved.history.series[0].seconds, vec![Some(2.0)]);
    }

    #[test]
    fn a_file_that_contradicts_itself_is_refused() {
        let series = |runs: &str| {
            format!(
                r#"{{"version":"1","second_times":[1000,2000],"minute_times":[],
                "series":[{{"key":{{"series":"listen_queue","port":80}},"seconds":{runs},
                "minutes":[]}}],"owners":[],"targets":[]}}"#
            )
        };
        // Too few points, too many (a huge count allocates nothing), times backwards.
        for (json, why) in [
            (series("[[1.0,1]]"), "1 points for 2 times"),
            (series("[[1.0,4000000000]]"), "more points than the 2 times"),
            (
                r#"{"version":"1","second_times":[2000,1000],"minute_times":[],"series":[],
                "owners":[],"targets":[]}"#
                    .to_owned(),
                "go backwards",
            ),
        ] {
            let err = serde_json::from_str::<SavedCounters>(&json).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        assert!(serde_json::from_str::<SavedCounters>(r#"{"version":"2"}"#).is_err());
    }
}
