//! A/B of the tailer's wake-up split: the same loop (entry events read within 5 ms, writes
//! batched with a 100 ms gap, 20 ms coalesce after a quiet period) woken either by two raw
//! inotify descriptors (faultline's watcher.rs) or by notify's RecommendedWatcher (one
//! callback per event on notify's thread, as the tailer of 57762a0 did). Each wake reads the
//! new bytes of every *.log in DIR and computes, per line, the delay from the writer's stamp
//! (the line's first field, CLOCK_REALTIME ns) to the read.
//!
//! Usage: tail-watch-ab inotify|notify DIR SECONDS  -> prints one JSON line.
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ENTRY_COALESCE: Duration = Duration::from_millis(5);
const EVENT_COALESCE: Duration = Duration::from_millis(20);
const READ_GAP: Duration = Duration::from_millis(100);
const IDLE_LOOK: Duration = Duration::from_secs(5);

struct Files {
    dir: PathBuf,
    open: HashMap<PathBuf, (File, u64, Vec<u8>)>,
    lines: u64,
    delays_us: Vec<u64>,
    reads: u64,
}

impl Files {
    fn read(&mut self) {
        self.reads += 1;
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") && !self.open.contains_key(&path) {
                let f = File::open(&path).unwrap();
                self.open.insert(path, (f, 0, Vec::new()));
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut buf = vec![0u8; 1 << 16];
        for (file, offset, partial) in self.open.values_mut() {
            file.seek(SeekFrom::Start(*offset)).unwrap();
            loop {
                let n = file.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                *offset += n as u64;
                partial.extend_from_slice(&buf[..n]);
            }
            let mut start = 0;
            while let Some(nl) = partial[start..].iter().position(|&b| b == b'\n') {
                let line = &partial[start..start + nl];
                let stamp = line.split(|&b| b == b' ').next().unwrap_or(b"");
                if let Some(t) = std::str::from_utf8(stamp)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    self.delays_us.push(now.saturating_sub(t) / 1000);
                }
                self.lines += 1;
                start += nl + 1;
            }
            partial.drain(..start);
        }
    }
}

enum Change {
    Entries,
    Writes,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, dir, secs) = (
        args[1].clone(),
        PathBuf::from(&args[2]),
        args[3].parse::<f64>().unwrap(),
    );
    let mut files = Files {
        dir: dir.clone(),
        open: HashMap::new(),
        lines: 0,
        delays_us: Vec::new(),
        reads: 0,
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    files.read();
    let start_lines = files.lines;
    files.delays_us.clear();
    match mode.as_str() {
        "inotify" => run(&mut files, end, &mut RawInotify::new(&dir)),
        "notify" => run(&mut files, end, &mut Notify::new(&dir)),
        _ => panic!("mode"),
    }
    let mut d = files.delays_us.clone();
    d.sort_unstable();
    let q = |p: f64| {
        if d.is_empty() {
            0
        } else {
            d[((d.len() - 1) as f64 * p) as usize]
        }
    };
    // SAFETY: rusage is plain old data (all-zero is valid) and getrusage only writes it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `usage` lives for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    println!(
        "{{\"mode\":\"{mode}\",\"seconds\":{secs},\"lines\":{},\"reads\":{},\"cpu_s\":{cpu:.4},\"delay_ms_p50\":{:.2},\"delay_ms_p99\":{:.2},\"delay_ms_max\":{:.2}}}",
        files.lines - start_lines,
        files.reads,
        q(0.5) as f64 / 1000.0,
        q(0.99) as f64 / 1000.0,
        q(1.0) as f64 / 1000.0
    );
}

fn poll_fds(fds: &[i32], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `p` is a live array of `p.len()` pollfds.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    p.iter().map(|p| p.revents & libc::POLLIN != 0).collect()
}

fn drain(i: &mut inotify::Inotify, buf: &mut [u8]) -> (usize, bool) {
    let (mut n, mut other) = (0, false);
    loop {
        match i.read_events(buf) {
            Ok(events) => {
                for e in events {
                    n += 1;
                    other |= e.mask != inotify::EventMask::MODIFY;
                }
            }
            Err(_) => return (n, other),
        }
    }
}

/// A wake-up mechanism of the loop in [`run`].
trait Wake {
    /// Waits up to `timeout` for a change; what it was, `None` when nothing came.
    fn next(&mut self, timeout: Duration) -> Option<Change>;
    /// Waits up to `timeout` for an entry change only (writes wait for the read): whether
    /// one came.
    fn entry_within(&mut self, timeout: Duration) -> bool;
    /// Forgets every change so far (the read about to come sees them all).
    fn clear(&mut self);
}

/// The tailer's loop, the same around both wake-ups: read, wait for a change, wait out its
/// coalescing (an entry change brings the read forward), read again.
fn run(files: &mut Files, end: Instant, wake: &mut impl Wake) {
    while Instant::now() < end {
        files.read();
        let read_at = Instant::now();
        let Some(change) = wake.next(IDLE_LOOK) else {
            continue;
        };
        let now = Instant::now();
        let mut due = match change {
            Change::Entries => now + ENTRY_COALESCE,
            Change::Writes => (now + EVENT_COALESCE).max(read_at + READ_GAP),
        };
        loop {
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if wake.entry_within(left) {
                due = due.min(Instant::now() + ENTRY_COALESCE);
            }
        }
        wake.clear();
    }
}

/// faultline's watcher.rs: two raw inotify descriptors, entries and writes.
struct RawInotify {
    entries: inotify::Inotify,
    writes: inotify::Inotify,
    buf: Vec<u8>,
}

impl RawInotify {
    fn new(dir: &Path) -> RawInotify {
        use inotify::{Inotify, WatchMask};
        let entries = Inotify::init().unwrap();
        let writes = Inotify::init().unwrap();
        entries
            .watches()
            .add(
                dir,
                WatchMask::CREATE
                    | WatchMask::MOVED_FROM
                    | WatchMask::MOVED_TO
                    | WatchMask::DELETE
                    | WatchMask::ATTRIB
                    | WatchMask::DELETE_SELF
                    | WatchMask::MOVE_SELF,
            )
            .unwrap();
        writes.watches().add(dir, WatchMask::MODIFY).unwrap();
        for i in [&entries, &writes] {
            // SAFETY: the descriptor is the open inotify instance's own.
            unsafe { libc::fcntl(i.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        }
        RawInotify {
            entries,
            writes,
            buf: vec![0u8; 16 * 1024],
        }
    }
}

impl Wake for RawInotify {
    fn next(&mut self, timeout: Duration) -> Option<Change> {
        let ready = poll_fds(
            &[self.entries.as_raw_fd(), self.writes.as_raw_fd()],
            timeout,
        );
        if ready[0] {
            drain(&mut self.entries, &mut self.buf);
            Some(Change::Entries)
        } else if ready[1] {
            let (_, other) = drain(&mut self.writes, &mut self.buf);
            Some(if other {
                Change::Entries
            } else {
                Change::Writes
            })
        } else {
            None
        }
    }

    fn entry_within(&mut self, timeout: Duration) -> bool {
        let ready = poll_fds(&[self.entries.as_raw_fd()], timeout)[0];
        if ready {
            drain(&mut self.entries, &mut self.buf);
        }
        ready
    }

    fn clear(&mut self) {
        drain(&mut self.entries, &mut self.buf);
        drain(&mut self.writes, &mut self.buf);
    }
}

/// (entries, writes) seen since the last take, and a condvar to wake the loop.
type Seen = Arc<(Mutex<(bool, bool)>, Condvar)>;

/// notify's RecommendedWatcher: one callback per event on notify's thread.
struct Notify {
    seen: Seen,
    _watcher: notify::RecommendedWatcher,
}

impl Notify {
    fn new(dir: &Path) -> Notify {
        use notify::Watcher;
        let seen: Seen = Arc::new((Mutex::new((false, false)), Condvar::new()));
        let s = seen.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                use notify::event::ModifyKind;
                use notify::EventKind;
                // As the notify tailer of 57762a0: opening and reading a file (the loop's own
                // reads) are events too and are dropped; writes only wake; anything else asks
                // for a rescan.
                let entry = match &event {
                    Ok(e) if matches!(e.kind, EventKind::Access(_)) => return,
                    Ok(e) => !matches!(
                        e.kind,
                        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any)
                    ),
                    Err(_) => true,
                };
                let (lock, cv) = &*s;
                let mut g = lock.lock().unwrap();
                if entry {
                    g.0 = true
                } else {
                    g.1 = true
                }
                cv.notify_one();
            })
            .unwrap();
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .unwrap();
        Notify {
            seen,
            _watcher: watcher,
        }
    }
}

impl Wake for Notify {
    fn next(&mut self, timeout: Duration) -> Option<Change> {
        let (lock, cv) = &*self.seen;
        let mut g = lock.lock().unwrap();
        if !g.0 && !g.1 {
            g = cv.wait_timeout(g, timeout).unwrap().0;
        }
        let change = if g.0 {
            Change::Entries
        } else if g.1 {
            Change::Writes
        } else {
            return None;
        };
        *g = (false, false);
        Some(change)
    }

    fn entry_within(&mut self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.seen;
        let mut g = lock.lock().unwrap();
        if !g.0 {
            g = cv.wait_timeout(g, timeout).unwrap().0;
        }
        std::mem::take(&mut g.0)
    }

    fn clear(&mut self) {
        *self.seen.0.lock().unwrap() = (false, false);
    }
}
