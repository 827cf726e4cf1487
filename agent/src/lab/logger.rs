//! The lab services' log files, written in the styles of the loggers Go services use: Gin's
//! request log (with its `Error #01:` lines), zap's JSON lines (with `trace_id` / `span_id`)
//! and the standard `log` package's dated lines.
//!
//! Every record is written with one `write` call of whole lines to a file opened for append,
//! as those loggers do, so the agent tailing the file never sees half a record. Times are UTC,
//! the zone the agent assumes for the formats that name none.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// A value of a zap field.
pub enum Field<'a> {
    /// A JSON string.
    Str(&'a str),
}

/// One service's log file.
pub struct Logger {
    path: PathBuf,
    file: Mutex<File>,
}

impl Logger {
    /// Creates (or appends to) the file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot create the lab's log file {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gin's request line (`gin.Logger()`), followed by the request's errors as Gin prints
    /// `c.Errors`: one `Error #NN: ...` line each.
    pub fn gin_request(
        &self,
        status: u16,
        latency: Duration,
        client_ip: &str,
        method: &str,
        path: &str,
        errors: &[String],
    ) {
        let (date, time) = wall_clock(SystemTime::now());
        let mut text = format!(
            "[GIN] {date} - {} | {status:>3} | {:>13} | {client_ip:>15} | {method:<7} {path:?}\n",
            &time[..8],
            format!("{latency:?}"),
        );
        for (i, error) in errors.iter().enumerate() {
            text.push_str(&format!("Error #{:02}: {error}\n", i + 1));
        }
        self.write(&text);
    }

    /// A `[GIN-debug]` line, as Gin writes at start in debug mode.
    pub fn gin_debug(&self, message: &str) {
        self.write(&format!("[GIN-debug] {message}\n"));
    }

    /// A line of Go's `log` package with `Lmicroseconds | Lshortfile`.
    #[track_caller]
    pub fn stdlog(&self, message: &str) {
        let (date, time) = wall_clock(SystemTime::now());
        let caller = short_file(Location::caller());
        self.write(&format!("{date} {time} {caller}: {message}\n"));
    }

    /// A zap production-style JSON line: level, ts (Unix seconds), caller, msg, then `fields`
    /// in order. `stack`, when given, is written raw after the line, as a Go service writes
    /// `debug.Stack()` after logging a recovered panic.
    #[track_caller]
    pub fn zap(
        &self,
        level: &str,
        message: &str,
        fields: &[(&str, Field<'_>)],
        stack: Option<&str>,
    ) {
        let caller = Location::caller();
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut line = format!(
            "{{\"level\":{},\"ts\":{ts:.6},\"caller\":{},\"msg\":{}",
            json_string(level),
            json_string(&format!("{}:{}", caller.file(), caller.line())),
            json_string(message)
        );
        for (key, value) in fields {
            line.push(',');
            line.push_str(&json_string(key));
            line.push(':');
            match value {
                Field::Str(text) => line.push_str(&json_string(text)),
            }
        }
        line.push_str("}\n");
        if let Some(stack) = stack {
            line.push_str(stack.trim_end());
            line.push('\n');
        }
        self.write(&line);
    }

    fn write(&self, text: &str) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk loses the lab's own log lines, nothing else; the demo goes on.
        let _ = file.write_all(text.as_bytes());
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `file.rs:LINE` as Go's `Lshortfile` writes it.
fn short_file(location: &Location<'_>) -> String {
    let file = location.file();
    let short = file.rsplit('/').next().unwrap_or(file);
    format!("{short}:{}", location.line())
}

/// (`2026/12/05`, `01:40:00.123456`) in UTC, as Go's `log` and Gin write dates.
fn wall_clock(now: SystemTime) -> (String, String) {
    // humantime gives `2026-12-05T01:40:00.123456Z`; Go's layouts are a rearrangement.
    let rfc3339 = humantime::format_rfc3339_micros(now).to_string();
    let date = rfc3339.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    let time = rfc3339
        .get(11..rfc3339.len().saturating_sub(1))
        .unwrap_or("00:00:00.000000")
        .to_owned();
    (date, time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_ingest::parse::parse_line;
    use faultline_ingest::Origin;

    fn origin() -> Origin {
        Origin::File {
            path: "x.log".into(),
            offset: 0,
        }
    }

    fn lines_of(write: impl FnOnce(&Logger)) -> String {
        let dir = tempfile::tempdir().unwrap();
        let logger = Logger::create(&dir.path().join("x.log")).unwrap();
        write(&logger);
        std::fs::read_to_string(logger.path()).unwrap()
    }

    #[test]
    fn the_agent_reads_each_style_back() {
        let gin = lines_of(|log| {
            log.gin_request(
                502,
                Duration::from_micros(1234),
                "127.0.0.1",
                "GET",
                "/api/orders/7",
                &["GET http://127.0.0.1:1/v1/orders/7: 502 Bad Gateway".into()],
            )
        });
        let record = parse_line(gin.trim_end(), origin());
        assert_eq!(record.http_status, Some(502), "{gin}");
        assert!(record.cluster_text().contains("502 Bad Gateway"), "{gin}");

        let zap = lines_of(|log| {
            log.zap(
                "error",
                "inventory call failed",
                &[
                    ("trace_id", Field::Str("4bf92f3577b34da6a3ce929d0e0e4736")),
                    ("error", Field::Str("connection closed \"early\"")),
                ],
                None,
            )
        });
        let record = parse_line(zap.trim_end(), origin());
        assert_eq!(
            record.trace_id.map(|id| id.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{zap}"
        );
        assert_eq!(record.cluster_text(), "connection closed \"early\"");

        let std = lines_of(|log| log.stdlog("inventory listening on 127.0.0.1:1"));
        assert!(std.contains("logger.rs:"), "{std}");
        let record = parse_line(std.trim_end(), origin());
        assert!(record.time_unix_nanos.is_some(), "{std}");
    }
}
