//! Per-service process counters: open file descriptors against the limit, threads and RSS —
//! the continuous form of `lsof -p PID | wc -l` and `cat /proc/PID/status`.
//!
//! A target names its process by exactly one of pid file, process name or listening port.
//! Resolving a name or a port walks `/proc`, so resolutions are cached and redone only when a
//! cached process is gone or every [`RESOLVE_EVERY`]. All matching processes are summed (a
//! service run as several workers is one target); the fd limit is the lowest of theirs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::ProcessTarget;
use super::error::CounterError;
use super::sockets::SocketEntry;
use faultline_series::SocketState;

/// How long a resolved pid list is trusted while its processes live.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// The counters of one process target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessCounters {
    /// The processes summed.
    pub pids: Vec<u32>,
    /// Open file descriptors (sockets included).
    pub open_fds: u64,
    /// The soft `RLIMIT_NOFILE` ("Max open files"), the lowest among the processes; `None`
    /// when unlimited or unreadable.
    pub fd_limit: Option<u64>,
    /// Threads.
    pub threads: u64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
}

/// Reads the counters of one process.
pub fn read_process(proc_root: &Path, pid: u32) -> Result<ProcessCounters, CounterError> {
    let dir = proc_root.join(pid.to_string());
    let fd_dir = dir.join("fd");
    let open_fds = std::fs::read_dir(&fd_dir)
        .map_err(|source| CounterError::Read {
            path: fd_dir.clone(),
            source,
        })?
        .count() as u64;
    let status_path = dir.join("status");
    let status = std::fs::read_to_string(&status_path).map_err(|source| CounterError::Read {
        path: status_path.clone(),
        source,
    })?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let threads = field("Threads:").unwrap_or(0);
    // Kernel threads have no VmRSS line: zero resident user memory.
    let rss_bytes = field("VmRSS:").unwrap_or(0).saturating_mul(1024);
    let fd_limit = std::fs::read_to_string(dir.join("limits"))
        .ok()
        .and_then(|text| parse_open_files_limit(&text));
    Ok(ProcessCounters {
        pids: vec![pid],
        open_fds,
        fd_limit,
        threads,
        rss_bytes,
    })
}

/// The soft limit on the "Max open files" line of `/proc/PID/limits`.
fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The pid written in a pid file.
pub fn read_pid_file(path: &Path) -> Result<u32, CounterError> {
    let text = std::fs::read_to_string(path).map_err(|source| CounterError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.trim().parse().map_err(|_| CounterError::Format {
        path: path.to_path_buf(),
        why: "not a pid".into(),
    })
}

/// Every numeric entry of `/proc`.
fn all_pids(proc_root: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// Processes whose `comm` or `argv[0]` file name is `name`.
pub fn find_by_name(proc_root: &Path, name: &str) -> Vec<u32> {
    all_pids(proc_root)
        .into_iter()
        .filter(|pid| {
            let dir = proc_root.join(pid.to_string());
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end_matches('\n') == name {
                return true;
            }
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or(&[]);
            let argv0 = String::from_utf8_lossy(argv0);
            Path::new(argv0.as_ref())
                .file_name()
                .is_some_and(|f| f.to_str() == Some(name))
        })
        .collect()
}

/// Processes holding a socket listening on `port`, found through the socket inodes of
/// `sockets` and the `/proc/PID/fd` links (`socket:[INODE]`).
pub fn find_by_listen_port(proc_root: &Path, port: u16, sockets: &[SocketEntry]) -> Vec<u32> {
    let inodes: Vec<u64> = sockets
        .iter()
        .filter(|s| s.state == SocketState::Listen && s.local.port() == port && s.inode != 0)
        .map(|s| s.inode)
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    all_pids(proc_root)
        .into_iter()
        .filter(|pid| {
            let fd_dir = proc_root.join(pid.to_string()).join("fd");
            let Ok(entries) = std::fs::read_dir(fd_dir) else {
                return false;
            };
            entries.filter_map(Result::ok).any(|e| {
                std::fs::read_link(e.path())
                    .ok()
                    .and_then(|target| target.to_str().map(|t| wanted.iter().any(|w| w == t)))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// Resolves process targets to pids, with a cache, and reads their counters.
#[derive(Debug)]
pub struct ProcessWatcher {
    proc_root: PathBuf,
    resolved: HashMap<String, (Vec<u32>, Instant)>,
}

impl ProcessWatcher {
    /// A watcher reading under `proc_root`.
    pub fn new(proc_root: impl Into<PathBuf>) -> ProcessWatcher {
        ProcessWatcher {
            proc_root: proc_root.into(),
            resolved: HashMap::new(),
        }
    }

    /// The counters of `target`, summed over its processes. `sockets` is the latest socket list
    /// (used by port targets; may be empty).
    pub fn read(
        &mut self,
        target: &ProcessTarget,
        sockets: &[SocketEntry],
    ) -> Result<ProcessCounters, CounterError> {
        let pids = self.resolve(target, sockets)?;
        let mut total: Option<ProcessCounters> = None;
        let mut last_error = None;
        for pid in pids {
            match read_process(&self.proc_root, pid) {
                Ok(c) => {
                    total = Some(match total {
                        None => c,
                        Some(mut t) => {
                            t.pids.extend(c.pids);
                            t.open_fds += c.open_fds;
                            t.threads += c.threads;
                            t.rss_bytes += c.rss_bytes;
                            t.fd_limit = match (t.fd_limit, c.fd_limit) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                            t
                        }
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (total, last_error) {
            (Some(t), _) => Ok(t),
            (None, Some(e)) => {
                // A process vanished between resolution and read: resolve again next time.
                self.resolved.remove(&target.name);
                Err(e)
            }
            (None, None) => Err(CounterError::NoProcess(describe(target))),
        }
    }

    fn resolve(
        &mut self,
        target: &ProcessTarget,
        sockets: &[SocketEntry],
    ) -> Result<Vec<u32>, CounterError> {
        if let Some(path) = &target.pid_file {
            // Cheap, and a restarted service rewrites it: read it every time.
            return read_pid_file(path).map(|pid| vec![pid]);
        }
        if let Some((pids, at)) = self.resolved.get(&target.name) {
            let alive = pids
                .iter()
                .all(|pid| self.proc_root.join(pid.to_string()).exists());
            if alive && at.elapsed() < RESOLVE_EVERY && !pids.is_empty() {
                return Ok(pids.clone());
            }
        }
        let pids = if let Some(name) = &target.process_name {
            find_by_name(&self.proc_root, name)
        } else if let Some(port) = target.listen_port {
            find_by_listen_port(&self.proc_root, port, sockets)
        } else {
            Vec::new()
        };
        if pids.is_empty() {
            self.resolved.remove(&target.name);
            return Err(CounterError::NoProcess(describe(target)));
        }
        self.resolved
            .insert(target.name.clone(), (pids.clone(), Instant::now()));
        Ok(pids)
    }
}

fn describe(target: &ProcessTarget) -> String {
    if let Some(p) = &target.pid_file {
        format!("pid file {}", p.display())
    } else if let Some(n) = &target.process_name {
        format!("process name {n:?}")
    } else if let Some(port) = target.listen_port {
        format!("listening port {port}")
    } else {
        format!("target {:?}", target.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let c = read_process(Path::new("/proc"), me);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.open_fds >= 3 && c.threads >= 1 && c.rss_bytes > 0);
        assert!(c.fd_limit.is_some());
        assert_eq!(
            parse_open_files_limit(
                "Max open files            1024                 4096                 files\n"
            ),
            Some(1024)
        );
        assert_eq!(
            parse_open_files_limit(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }
}
