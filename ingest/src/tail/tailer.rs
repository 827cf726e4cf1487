//! The tailer's state machine, driven by [`Tailer::poll`]: find files, notice rotations and
//! truncations, read new lines, and hand them over in batches.
//!
//! It is synchronous and takes the time as an argument, so the async runner
//! ([`super::spawn`]) can run it on a blocking thread and the model test can drive it with a
//! simulated clock. Everything a restart needs lives in the shared [`Book`]; everything else
//! (open files, unfinished lines) is rebuilt from the files themselves.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::ack::{AckToken, Batch, Book, StreamEntry, StreamId};
use super::checkpointer::{FileCheckpoint, TailState};
use super::config::{LogSource, StartAt, TailConfig};
use super::file::{TailedFile, CHUNK};
use super::fingerprint::{FileId, Head};
use super::stats::{FileStats, SourceStats, TailStats};
use super::TailError;
use crate::parse::{now_unix_nanos, ParseOptions};
use crate::record::LogRecord;

/// The tailer. See the module documentation.
#[derive(Debug)]
pub struct Tailer {
    config: TailConfig,
    sources: Vec<LogSource>,
    options: ParseOptions,
    files: Vec<TailedFile>,
    book: Arc<Mutex<Book>>,
    next_stream: StreamId,
    last_scan: Option<Instant>,
    rescan: bool,
    /// Checkpoints of the previous run not matched to a file yet (only during the first scan).
    unmatched: Vec<FileCheckpoint>,
    buf: Vec<u8>,
    round_robin: usize,
    /// Files that look like a copy of a file being read, and since when.
    deferred: HashMap<FileId, Instant>,
    /// When the globs are expanded again because a source could not be read at the last
    /// expansion (see [`Retry`]); `None` while every source could be.
    retry: Option<Retry>,
}

/// The next look at sources that could not be read (a directory that cannot be listed, a
/// file that cannot be opened). File-system events do not say when they become readable: a
/// chmod of the file or of the directory watched raises one, but an ACL or a mode changed on
/// a directory above, a symbolic link's target made readable, a file system mounted over
/// the directory or a security policy reloaded do not, and the globs may be expanded
/// rarely (`glob_interval_ms`). So they are looked at again on a timer of their own, sooner
/// at first (a brief permission slip is over in a second or two) and less often the longer
/// it lasts, bounded by [`RETRY_MAX`].
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    step: Duration,
}

/// First wait before a source that could not be read is looked at again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two looks at a source that still cannot be read.
const RETRY_MAX: Duration = Duration::from_secs(30);

impl Retry {
    /// The schedule after an expansion at `now` that found a source unreadable: the first
    /// look [`RETRY_FIRST`] away; after a look that was this retry, twice the last wait (at
    /// most [`RETRY_MAX`]); after an expansion for another reason (an event, the glob
    /// interval), the schedule as it was.
    fn after(previous: Option<Retry>, now: Instant) -> Retry {
        match previous {
            None => Retry {
                at: now + RETRY_FIRST,
                step: RETRY_FIRST,
            },
            Some(r) if now < r.at => r,
            Some(r) => {
                let step = (r.step * 2).min(RETRY_MAX);
                Retry {
                    at: now + step,
                    step,
                }
            }
        }
    }
}

/// Extensions of compressed rotated generations: their content is not text lines, and the
/// lines in them are not read (a generation compressed before it was read to its end is
/// counted as lost instead).
const COMPRESSED: [&str; 8] = ["gz", "bz2", "xz", "zst", "lz4", "zip", "z", "lzma"];

fn compressed(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| COMPRESSED.iter().any(|c| e.eq_ignore_ascii_case(c)))
}

/// How much earlier than the scan a file's recorded birth may be and still count as born
/// after it: file systems stamp births with the kernel's coarse clock, which lags the clock
/// `SystemTime::now` reads by up to one scheduler tick (10 ms at HZ=100, the slowest
/// common setting). Kept small: a file born in the slack before the scan, out of the globs
/// and unknown to the state, would be read although it may be old content.
const BIRTH_SLACK_NANOS: i64 = 50_000_000;

/// Whether a file was born before `since_unix_nanos` (less the slack), or its birth is not
/// known: where the file system records no birth, its last modification stands in.
fn born_before(meta: &fs::Metadata, since_unix_nanos: i64) -> bool {
    meta.created()
        .or_else(|_| meta.modified())
        .ok()
        .and_then(unix_nanos)
        .is_none_or(|b| b < since_unix_nanos.saturating_sub(BIRTH_SLACK_NANOS))
}

fn unix_nanos(t: std::time::SystemTime) -> Option<i64> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
}

/// Offset just after the last complete line of a file of `size` bytes (where "start at the
/// end" starts, so that a half-written last line is read whole).
fn after_last_newline(file: &File, size: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let window = size.min(CHUNK as u64);
    let mut buf = vec![0u8; window as usize];
    let start = size - window;
    match file.read_at(&mut buf, start) {
        Ok(n) if n == buf.len() => memchr::memrchr(b'\n', &buf).map_or(
            // No newline in the last window: a very long line; start after it anyway.
            if window == size { 0 } else { size },
            |i| start + i as u64 + 1,
        ),
        _ => size,
    }
}

/// The directory a glob looks into: the longest leading part without wildcard characters,
/// or its parent when that part names a file (or nothing yet).
fn literal_dir(glob: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    for part in Path::new(glob).components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            break;
        }
        dir.push(part);
    }
    if dir.is_file() || !dir.is_dir() {
        dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    dir
}

/// Whether `path` names a generation of a file a glob of `patterns` matches: its name is such
/// a file's name, a separator (`.`, `-`, `_`) and anything after it, as rotation tools and
/// people name generations (`app.log.3`, `app.log-20261206`, `app.log.2026-12-06`,
/// `app.log.old`, `app.log-backup`). A name the globs match is no generation of another.
fn generation_of_globbed(path: &Path, patterns: &[glob::Pattern]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.match_indices(['.', '-', '_'])
        .filter(|&(cut, _)| cut > 0 && cut + 1 < name.len())
        .any(|(cut, _)| {
            let stem = path.with_file_name(&name[..cut]);
            patterns.iter().any(|p| p.matches_path(&stem))
        })
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Tailer {
    /// A tailer over `sources`. `initial` is the state of the previous run (`None` on the very
    /// first start, when present files start at `config.start_at`). Files are found and opened
    /// here, so "present at the first start" means present now.
    pub fn new(
        config: TailConfig,
        sources: Vec<LogSource>,
        initial: Option<TailState>,
        now: Instant,
    ) -> Result<Self, TailError> {
        for source in &sources {
            glob::Pattern::new(&source.path).map_err(|e| TailError::BadGlob {
                pattern: source.path.clone(),
                message: e.to_string(),
            })?;
        }
        let first_start = initial.is_none();
        let scanned_before = initial.as_ref().and_then(|s| s.scanned_unix_nanos);
        let (remembered, active): (Vec<FileCheckpoint>, Vec<FileCheckpoint>) = initial
            .map(|s| s.files)
            .unwrap_or_default()
            .into_iter()
            .partition(|f| f.released_unix_secs.is_some());
        let checkpoint_ids: Vec<FileId> = active.iter().map(|c| c.id).collect();
        let checkpoint_dirs: Vec<PathBuf> = active
            .iter()
            .chain(remembered.iter())
            .filter_map(|c| Path::new(&c.path).parent().map(Path::to_path_buf))
            .collect();
        let mut book = Book::default();
        for file in remembered {
            book.remember(file);
        }
        let options = ParseOptions {
            naive_utc_offset_secs: config.naive_utc_offset_secs,
        };
        let mut tailer = Tailer {
            config,
            sources,
            options,
            files: Vec::new(),
            book: Arc::new(Mutex::new(book)),
            next_stream: 1,
            last_scan: None,
            rescan: false,
            unmatched: active,
            buf: Vec::new(),
            round_robin: 0,
            deferred: HashMap::new(),
            retry: None,
        };
        tailer.scan(
            now,
            if first_start {
                Some(tailer.config.start_at)
            } else {
                None
            },
        );
        tailer.last_scan = Some(now);
        // Checkpointed files no glob found: renamed away (rotation while we were down) or
        // copied by copytruncate. Find them in their directory and read them to their end.
        for checkpoint in std::mem::take(&mut tailer.unmatched) {
            tailer.find_rotated(&checkpoint, now);
        }
        // Generations born after the last state was taken, renamed out of the globs while we
        // were down: nothing in the state names them, their birth says they are unread.
        if let Some(since) = scanned_before {
            tailer.adopt_newborns(since, &checkpoint_dirs, &checkpoint_ids, now);
        }
        Ok(tailer)
    }

    /// The shared book (checkpoint offsets and statistics), for the async handle.
    pub(crate) fn book(&self) -> Arc<Mutex<Book>> {
        Arc::clone(&self.book)
    }

    /// The acknowledged state: what a restart would resume from.
    pub fn checkpoint_state(&self) -> TailState {
        self.book.lock().state()
    }

    /// Statistics of the files and totals.
    pub fn stats(&self) -> TailStats {
        self.book.lock().stats()
    }

    /// Asks for the globs to be expanded at the next poll (a file-system event arrived).
    pub fn request_rescan(&mut self) {
        self.rescan = true;
    }

    fn new_stream(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        id
    }

    fn register(&mut self, file: &TailedFile) {
        let entry = StreamEntry {
            id: file.id,
            head: file.head,
            path: file.path.clone(),
            acked: file.read_offset,
            retire_at: None,
            stats: FileStats {
                path: file.path.clone(),
                offset: file.read_offset,
                acked_offset: file.read_offset,
                size: file.last_size,
                lag_bytes: file.last_size.saturating_sub(file.read_offset),
                ..FileStats::default()
            },
        };
        self.book.lock().streams.insert(file.stream, entry);
    }

    /// Opens `path` at `offset` as a new stream.
    #[allow(clippy::too_many_arguments)]
    fn open_at(
        &mut self,
        file: File,
        path: String,
        id: FileId,
        head: Head,
        offset: u64,
        size: u64,
        service: Option<String>,
        now: Instant,
    ) {
        let stream = self.new_stream();
        let tailed = TailedFile::new(
            file,
            path,
            id,
            head,
            stream,
            service,
            offset,
            size,
            self.config.max_line_bytes,
            now,
        );
        self.register(&tailed);
        self.files.push(tailed);
    }

    /// Expands the globs; opens new files. `first`: the very first scan, with its start rule.
    fn scan(&mut self, now: Instant, first: Option<StartAt>) {
        self.book.lock().scanned_unix_nanos = unix_nanos(std::time::SystemTime::now());
        // Each path with its service and the index of the first source that matched it.
        let mut seen: Vec<(PathBuf, Option<String>, usize)> = Vec::new();
        let mut sources = Vec::with_capacity(self.sources.len());
        for (index, source) in self.sources.iter().enumerate() {
            let mut stats = SourceStats {
                path: source.path.clone(),
                ..SourceStats::default()
            };
            // A directory that cannot be listed yields no file and no error from the glob's
            // point of view unless asked: say which one and why, per source.
            let dir = literal_dir(&source.path);
            if let Err(e) = fs::read_dir(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    stats.error = Some(format!("cannot read {}: {e}", dir.display()));
                }
            }
            if let Ok(paths) = glob::glob(&source.path) {
                for entry in paths {
                    match entry {
                        Ok(path) => {
                            stats.files += 1;
                            if !seen.iter().any(|(p, ..)| *p == path) {
                                seen.push((path, source.service.clone(), index));
                            }
                        }
                        Err(e) if e.error().kind() != std::io::ErrorKind::NotFound => {
                            stats.error.get_or_insert_with(|| {
                                format!("cannot read {}: {}", e.path().display(), e.error())
                            });
                        }
                        Err(_) => {}
                    }
                }
            }
            sources.push(stats);
        }
        let mut found = Vec::new();
        for (path, service, source) in seen {
            // A stat first: files already tracked are not opened again at every scan. It
            // follows a symbolic link: a target the agent may not reach (a directory on its
            // way it may not search) is said like a file it may not open.
            // A file gone since the listing is no error; any other failure is said once per
            // source (its first).
            let mut unreadable = |e: std::io::Error| {
                if e.kind() != std::io::ErrorKind::NotFound {
                    sources[source]
                        .error
                        .get_or_insert_with(|| format!("cannot open {}: {e}", path.display()));
                }
            };
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    unreadable(e);
                    continue;
                }
            };
            if !meta.is_file() {
                continue;
            }
            let seen_id = FileId::of(&meta);
            if let Some(known) = self.files.iter_mut().find(|f| f.id == seen_id) {
                // A rotated file that a glob still matches is live at its new path.
                if known.path.as_str() != path.as_os_str() {
                    known.path = path_string(&path);
                }
                known.orphan_since = None;
                continue;
            }
            let file = match File::open(&path) {
                Ok(file) => file,
                // A file the agent may not read (its mode, an ACL, a security label) is said
                // per source like an unreadable directory; readable again, it is found at the
                // next scan and resumes at its remembered offset.
                Err(e) => {
                    unreadable(e);
                    continue;
                }
            };
            // The path may have been replaced between the stat and the open: use the opened
            // file's own metadata from here on.
            let Ok(meta) = file.metadata() else { continue };
            let id = FileId::of(&meta);
            if self.files.iter().any(|f| f.id == id) {
                continue;
            }
            let path_text = path_string(&path);
            let size = meta.len();
            let Ok(head) = Head::read(&file, size) else {
                continue;
            };
            found.push(Some((file, path_text, id, head, size, service)));
        }
        let unreadable = sources.iter().any(|s| s.error.is_some());
        self.retry = unreadable.then(|| Retry::after(self.retry, now));
        self.book.lock().totals.sources = sources;
        // First the files that are exactly a checkpointed file (same inode, same first
        // bytes), then the rest: a checkpoint whose inode is gone but whose content is here
        // under another inode is a copytruncate copy made while we were down.
        for pass in [true, false] {
            for slot in found.iter_mut() {
                let Some((file, _, id, head, size, _)) = slot.as_ref() else {
                    continue;
                };
                let resumed = self.unmatched.iter().position(|c| {
                    (c.id == *id) == pass
                        && (pass || !c.head.is_blank())
                        && c.offset <= *size
                        && c.head.matches(file).unwrap_or(false)
                });
                let (id, head, size) = (*id, *head, *size);
                if let Some(i) = resumed {
                    let checkpoint = self.unmatched.swap_remove(i);
                    let Some((file, path, ..)) = slot.take() else {
                        continue;
                    };
                    let service = self.service_for(&path);
                    let head = if checkpoint.head.len > head.len {
                        checkpoint.head
                    } else {
                        head
                    };
                    self.open_at(file, path, id, head, checkpoint.offset, size, service, now);
                }
            }
        }
        // Copy candidates adopted meanwhile, or gone, need no waiting entry any more.
        let candidates: Vec<FileId> = found.iter().flatten().map(|c| c.2).collect();
        self.deferred.retain(|id, _| candidates.contains(id));
        for (file, path, id, head, size, service) in found.into_iter().flatten() {
            if self.files.len() >= self.config.max_open_files {
                self.book.lock().totals.files_over_limit += 1;
                continue;
            }
            // A byte copy of a file being read (copytruncate's copy, matched by the glob) is
            // adopted when the original is found truncated, not read twice. It waits for that
            // at most the rotation grace period; after that it is a file of its own that
            // merely starts like another one.
            if self.copy_of_live(&head, &file, size) {
                let since = *self.deferred.entry(id).or_insert(now);
                if now.saturating_duration_since(since)
                    < Duration::from_millis(self.config.rotated_grace_ms)
                {
                    continue;
                }
            }
            self.deferred.remove(&id);
            // A file let go earlier (it left the globs or could not be read for a while) that
            // is back: it goes on where it was, not from its beginning.
            let resumed = self.book.lock().resume_remembered(&file, id, size, false);
            let offset = match (resumed, first) {
                (Some(offset), _) => offset,
                (None, Some(StartAt::End)) => after_last_newline(&file, size),
                (None, _) => 0,
            };
            self.open_at(file, path, id, head, offset, size, service, now);
        }
    }

    /// Opens, from their beginning, the files in `dirs` (and the globs' directories) that no
    /// glob matches, nobody tails, are not compressed, and were born at or after
    /// `since_unix_nanos` (the start of the scan before the state the tailer started from):
    /// generations created since that state and renamed out of the globs before a restart.
    /// They are read to their end and let go like any rotated file. Where the file system
    /// does not record birth times, the last modification stands in for it. A file that is
    /// one of `checkpointed` (same inode and birth) but was not resumed has been truncated and
    /// rewritten in place since: its content is new, whatever its birth.
    fn adopt_newborns(
        &mut self,
        since_unix_nanos: i64,
        dirs: &[PathBuf],
        checkpointed: &[FileId],
        now: Instant,
    ) {
        let mut all: Vec<PathBuf> = dirs.to_vec();
        all.extend(self.watch_dirs());
        all.extend(
            self.files
                .iter()
                .filter_map(|f| Path::new(&f.path).parent().map(Path::to_path_buf)),
        );
        all.sort();
        all.dedup();
        let patterns = self.glob_patterns();
        for dir in all {
            for (path, file, meta, id) in self.untailed_outside_globs(&dir, &patterns, |_| true) {
                // Another name of a file adopted above (a hard link) is that file.
                if self.files.iter().any(|f| f.id == id) {
                    continue;
                }
                let size = meta.len();
                // A file let go earlier goes on at its offset (if it grew since), whatever its
                // birth.
                let remembered = self.book.lock().resume_remembered(&file, id, size, true);
                let offset = match remembered {
                    Some(offset) if offset < size => offset,
                    Some(_) => continue,
                    None if checkpointed.contains(&id) => 0,
                    None if born_before(&meta, since_unix_nanos) => continue,
                    None => 0,
                };
                let Ok(head) = Head::read(&file, size) else {
                    continue;
                };
                self.adopt(file, &path, &dir, id, head, offset, size, now);
            }
        }
    }

    /// Opens, from their beginning, the rotated generations that came and left a globbed name
    /// between two scans, so that no scan saw them under it: files in the globs' directories
    /// that no glob matches but whose name is a globbed name followed by a separator and
    /// anything ([`generation_of_globbed`]: `app.log.3`, `app.log-20261206`,
    /// `app.log.2026-12-06`, `app.log.old`), that nobody tails, born at or after
    /// `since_unix_nanos` (the start of the previous scan), and that are not a byte copy of a
    /// file being read (copytruncate's copy of a known file is [`Tailer::find_rotated`]'s). A
    /// generation made, copytruncated and renamed away within one scan interval was lost
    /// otherwise: its copy and its renamed self are outside the globs, and only known files'
    /// rotated names are looked for. Nothing but the name and the birth tells such a file
    /// from one made beside the log under a log's name plus a suffix: that one is read too.
    /// Only names that pass the name test are opened, so a scan costs one directory listing
    /// more (measured in release: see BENCHMARKS.md, "Tailer scan").
    fn adopt_passers_by(&mut self, since_unix_nanos: i64, now: Instant) {
        let patterns = self.glob_patterns();
        let mut dirs: Vec<PathBuf> = self.sources.iter().map(|s| literal_dir(&s.path)).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            // Named like a generation and born since: the old generations a directory keeps
            // (`rotate 30`) cost a stat each, not an open.
            let rotated = |path: &Path| {
                generation_of_globbed(path, &patterns)
                    && fs::metadata(path).is_ok_and(|m| !born_before(&m, since_unix_nanos))
            };
            for (path, file, meta, id) in self.untailed_outside_globs(&dir, &patterns, rotated) {
                // Another name of a file adopted above (a hard link) is that file.
                if born_before(&meta, since_unix_nanos) || self.files.iter().any(|f| f.id == id) {
                    continue;
                }
                let size = meta.len();
                let Ok(head) = Head::read(&file, size) else {
                    continue;
                };
                if self.copy_of_live(&head, &file, size) {
                    continue;
                }
                let offset = match self.book.lock().resume_remembered(&file, id, size, true) {
                    Some(offset) if offset < size => offset,
                    Some(_) => continue,
                    None => 0,
                };
                self.adopt(file, &path, &dir, id, head, offset, size, now);
            }
        }
    }

    /// The sources' globs, those that parse.
    /// Whether `file` (`size` bytes, its head `head`) starts as a file being read does: a
    /// byte copy of it (copytruncate's copy). Compared over the live file's head length: its
    /// head may be shorter than the copy's if the file grew since the head was last read.
    fn copy_of_live(&self, head: &Head, file: &File, size: u64) -> bool {
        !head.is_blank()
            && self.files.iter().any(|f| {
                !f.head.is_blank() && f.head.len <= size && f.head.matches(file).unwrap_or(false)
            })
    }

    fn glob_patterns(&self) -> Vec<glob::Pattern> {
        self.sources
            .iter()
            .filter_map(|s| glob::Pattern::new(&s.path).ok())
            .collect()
    }

    /// The regular files in `dir` that no glob of `patterns` matches, are not compressed, pass
    /// `keep` (asked before a file is opened) and nobody tails now: each opened, with its
    /// metadata and identity.
    fn untailed_outside_globs(
        &self,
        dir: &Path,
        patterns: &[glob::Pattern],
        keep: impl Fn(&Path) -> bool,
    ) -> Vec<(PathBuf, File, fs::Metadata, FileId)> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                !compressed(path) && !patterns.iter().any(|p| p.matches_path(path)) && keep(path)
            })
            .filter_map(|path| {
                let file = File::open(&path).ok()?;
                let meta = file.metadata().ok()?;
                let id = FileId::of(&meta);
                (meta.is_file() && !self.files.iter().any(|f| f.id == id))
                    .then_some((path, file, meta, id))
            })
            .collect()
    }

    /// Reads a rotated generation outside the globs from `offset` as an orphan (read to its
    /// end, then let go), counted as adopted and as a rotation.
    #[allow(clippy::too_many_arguments)]
    fn adopt(
        &mut self,
        file: File,
        path: &Path,
        dir: &Path,
        id: FileId,
        head: Head,
        offset: u64,
        size: u64,
        now: Instant,
    ) {
        let service = self.service_for_dir(dir);
        self.open_at(
            file,
            path_string(path),
            id,
            head,
            offset,
            size,
            service,
            now,
        );
        if let Some(f) = self.files.last_mut() {
            f.orphan_since = Some(now);
        }
        let mut book = self.book.lock();
        book.totals.adopted_files += 1;
        book.totals.rotations += 1;
    }

    /// The service of the first source whose glob looks into `dir`.
    fn service_for_dir(&self, dir: &Path) -> Option<String> {
        self.sources
            .iter()
            .find(|s| Path::new(&s.path).parent() == Some(dir) || literal_dir(&s.path) == dir)
            .and_then(|s| s.service.clone())
    }

    /// Looks for a checkpointed file that no glob matched in its directory: the same inode
    /// under another name (renamed), or a copy with the same first bytes (copytruncate).
    fn find_rotated(&mut self, checkpoint: &FileCheckpoint, now: Instant) {
        let dir = Path::new(&checkpoint.path).parent().map(Path::to_path_buf);
        let Some(dir) = dir else { return };
        let Some((file, path, id, size)) =
            self.search_dir(&dir, checkpoint.id, &checkpoint.head, checkpoint.offset)
        else {
            // Still there but not readable by the agent (its mode, or its directory's): not
            // gone. Remembered like a file let go, it resumes at its offset once it can be
            // read again, instead of being read from its beginning then.
            if self.unreadable_but_there(checkpoint) {
                tracing::warn!(
                    path = %checkpoint.path,
                    offset = checkpoint.offset,
                    "a log file of the state cannot be read: it resumes at its offset once it \
                     can"
                );
                let unix_secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.book.lock().remember(FileCheckpoint {
                    released_unix_secs: Some(unix_secs),
                    ..checkpoint.clone()
                });
                return;
            }
            // Deleted or compressed while we were down. Said so when it had lines not read.
            if checkpoint.size.is_none_or(|size| checkpoint.offset < size) {
                tracing::warn!(
                    path = %checkpoint.path,
                    offset = checkpoint.offset,
                    "a rotated log file is gone (deleted or compressed) before it was read to \
                     its end: its remaining lines are lost"
                );
                self.book.lock().totals.lost_files += 1;
            }
            return;
        };
        let service = self.service_for(&checkpoint.path);
        self.open_at(
            file,
            path,
            id,
            checkpoint.head,
            checkpoint.offset,
            size,
            service,
            now,
        );
        if let Some(f) = self.files.last_mut() {
            f.orphan_since = Some(now);
        }
        self.book.lock().totals.rotations += 1;
    }

    /// Whether the file of `checkpoint` is still at its path (or may be: its directory
    /// cannot be looked into) but the agent may not open it, and nobody tails it.
    fn unreadable_but_there(&self, checkpoint: &FileCheckpoint) -> bool {
        let denied = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
        if self.files.iter().any(|f| f.id == checkpoint.id) {
            return false;
        }
        match fs::metadata(&checkpoint.path) {
            Ok(meta) => {
                FileId::of(&meta) == checkpoint.id
                    && File::open(&checkpoint.path).is_err_and(|e| denied(&e))
            }
            Err(e) => denied(&e),
        }
    }

    fn service_for(&self, path: &str) -> Option<String> {
        self.sources
            .iter()
            .find(|s| glob::Pattern::new(&s.path).is_ok_and(|p| p.matches(path)))
            .and_then(|s| s.service.clone())
    }

    /// A file in `dir`, not tracked yet, that is `id` with `head`, or else a copy of it at
    /// least `min_size` long (the most recently modified one).
    fn search_dir(
        &self,
        dir: &Path,
        id: FileId,
        head: &Head,
        min_size: u64,
    ) -> Option<(File, String, FileId, u64)> {
        let entries = fs::read_dir(dir).ok()?;
        let mut copy: Option<(std::time::SystemTime, File, String, FileId, u64)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let this = FileId::of(&meta);
            if !meta.is_file() || self.files.iter().any(|f| f.id == this) || meta.len() < min_size {
                continue;
            }
            if !head.matches(&file).unwrap_or(false) {
                continue;
            }
            if this == id {
                return Some((file, path_string(&path), this, meta.len()));
            }
            if head.is_blank() {
                // An empty head says nothing about content: no file is its copy.
                continue;
            }
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if copy.as_ref().is_none_or(|(m, ..)| modified > *m) {
                copy = Some((modified, file, path_string(&path), this, meta.len()));
            }
        }
        copy.map(|(_, file, path, id, size)| (file, path, id, size))
    }

    /// Checks every file: renamed away or deleted (orphan), truncated or rewritten in place.
    fn check_identities(
        &mut self,
        now: Instant,
        records: &mut Vec<LogRecord>,
        marks: &mut Vec<(StreamId, u64)>,
    ) {
        let observed = now_unix_nanos();
        let mut i = 0;
        while i < self.files.len() {
            let f = &mut self.files[i];
            if f.orphan_since.is_none() {
                let same = fs::metadata(&f.path).is_ok_and(|m| FileId::of(&m) == f.id);
                if !same {
                    // The grace period starts now, not at the last growth: a writer that still
                    // holds the renamed file gets the whole period to finish with it.
                    f.orphan_since = Some(now);
                    f.last_growth = now;
                    self.book.lock().totals.rotations += 1;
                }
            }
            let Ok(meta) = f.file.metadata() else {
                i += 1;
                continue;
            };
            let size = meta.len();
            let mtime = meta.modified().ok();
            // Any write since the last look (size or mtime moved) gets the head compared: a
            // truncation followed by writes can bring the size back to exactly where it was.
            let touched = size != f.last_size || mtime != f.last_mtime;
            f.last_mtime = mtime;
            let mut replaced = size < f.read_offset;
            if !replaced && touched {
                match f.head.grow(&f.file, size) {
                    Ok(Some(head)) if head == f.head => {}
                    Ok(Some(head)) => {
                        f.head = head;
                        if let Some(e) = self.book.lock().streams.get_mut(&f.stream) {
                            e.head = head;
                        }
                    }
                    Ok(None) => replaced = true,
                    Err(_) => {}
                }
                if !replaced && f.head.len > 0 && !f.head.matches(&f.file).unwrap_or(true) {
                    replaced = true;
                }
            }
            if replaced {
                self.replaced(i, size, now, observed, records, marks);
            }
            i += 1;
        }
    }

    /// File `i` no longer holds what was read from it. If a copy of the old content exists
    /// (copytruncate), the stream moves to the copy and goes on from where it was; otherwise
    /// the old stream ends here. Either way the file itself is read again from 0 as a new
    /// stream.
    fn replaced(
        &mut self,
        i: usize,
        size: u64,
        now: Instant,
        observed: i64,
        records: &mut Vec<LogRecord>,
        marks: &mut Vec<(StreamId, u64)>,
    ) {
        self.book.lock().totals.truncations += 1;
        let dir = Path::new(&self.files[i].path)
            .parent()
            .map(Path::to_path_buf);
        let (old_id, old_head, min) = (
            self.files[i].id,
            self.files[i].head,
            self.files[i].read_offset,
        );
        let copy = dir.filter(|_| !old_head.is_blank()).and_then(|d| {
            self.search_dir(
                &d,
                FileId {
                    dev: u64::MAX,
                    ino: u64::MAX,
                    born: None,
                },
                &old_head,
                min,
            )
        });
        let Ok(fresh) = self.files[i].file.try_clone() else {
            return;
        };
        let fresh_head = Head::read(&fresh, size).unwrap_or(Head {
            start: 0,
            len: 0,
            hash: 0,
        });
        let path = self.files[i].path.clone();
        let service = self.files[i].service.clone();
        match copy {
            Some((copy_file, copy_path, copy_id, copy_size)) => {
                let f = &mut self.files[i];
                f.file = copy_file;
                f.id = copy_id;
                f.path = copy_path.clone();
                f.last_size = copy_size;
                f.orphan_since = Some(now);
                f.last_growth = now;
                if let Some(e) = self.book.lock().streams.get_mut(&f.stream) {
                    e.id = copy_id;
                    e.path = copy_path;
                }
                self.book.lock().totals.rotations += 1;
                self.open_at(fresh, path, old_id, fresh_head, 0, size, service, now);
            }
            None => {
                let stream = self.new_stream();
                let f = &mut self.files[i];
                let (flushed, lines) = f.flush_all(&self.options, observed, now);
                let end = f.read_offset;
                let old_stream = f.stream;
                f.restart(stream, fresh_head, size, now);
                records.extend(flushed);
                marks.push((old_stream, end));
                let mut book = self.book.lock();
                book.totals.lines_read += lines;
                if let Some(e) = book.streams.get_mut(&old_stream) {
                    e.retire_at = Some(end);
                }
                drop(book);
                let tailed = &self.files[i];
                self.register_ref(
                    tailed.stream,
                    tailed.id,
                    tailed.head,
                    tailed.path.clone(),
                    size,
                );
            }
        }
    }

    fn register_ref(&self, stream: StreamId, id: FileId, head: Head, path: String, size: u64) {
        let entry = StreamEntry {
            id,
            head,
            path: path.clone(),
            acked: 0,
            retire_at: None,
            stats: FileStats {
                path,
                size,
                lag_bytes: size,
                ..FileStats::default()
            },
        };
        self.book.lock().streams.insert(stream, entry);
    }

    /// One step: scan if due, check identities, read up to one batch, release drained
    /// rotated files. Returns `None` when there is nothing new to hand over.
    pub fn poll(&mut self, now: Instant) -> Option<Batch> {
        let glob_due = self.last_scan.is_none_or(|t| {
            now.saturating_duration_since(t) >= Duration::from_millis(self.config.glob_interval_ms)
        });
        let retry_due = self.retry.is_some_and(|r| now >= r.at);
        if self.rescan || glob_due || retry_due {
            self.rescan = false;
            self.last_scan = Some(now);
            let since = self.book.lock().scanned_unix_nanos;
            self.scan(now, None);
            if let Some(since) = since {
                self.adopt_passers_by(since, now);
            }
        }
        let mut records = Vec::new();
        let mut marks = Vec::new();
        self.check_identities(now, &mut records, &mut marks);
        self.read_all(now, &mut records);
        self.release(now, &mut records, &mut marks);
        for f in &mut self.files {
            let safe = f.safe_offset();
            if safe != f.marked {
                f.marked = safe;
                marks.push((f.stream, safe));
            }
        }
        self.update_stats(records.len() as u64);
        if records.is_empty() && marks.is_empty() {
            return None;
        }
        Some(Batch {
            records,
            ack: AckToken::new(self.book(), marks),
        })
    }

    fn read_all(&mut self, now: Instant, records: &mut Vec<LogRecord>) {
        let observed = now_unix_nanos();
        let timeout = Duration::from_millis(self.config.multiline_timeout_ms);
        let mut budget = self.config.max_batch_bytes.max(1);
        let n = self.files.len();
        if n == 0 {
            return;
        }
        self.round_robin = (self.round_robin + 1) % n;
        for k in 0..n {
            let i = (self.round_robin + k) % n;
            let f = &mut self.files[i];
            while budget > 0 && records.len() < self.config.max_batch_records {
                let out = match f.read(
                    budget,
                    &mut self.buf,
                    self.config.max_line_bytes,
                    &self.options,
                    observed,
                    now,
                ) {
                    Ok(out) => out,
                    Err(e) => {
                        tracing::warn!(path = %f.path, error = %e, "cannot read log file");
                        self.book.lock().totals.read_errors += 1;
                        break;
                    }
                };
                if out.bytes == 0 {
                    break;
                }
                budget = budget.saturating_sub(out.bytes as usize);
                if out.became_binary {
                    tracing::warn!(path = %f.path, "log file turned binary; skipping its content");
                }
                let mut book = self.book.lock();
                book.totals.bytes_read += out.bytes;
                book.totals.lines_read += out.lines;
                book.totals.truncated_lines += out.truncated_lines;
                book.totals.binary_files += u64::from(out.became_binary);
                book.totals.binary_skipped_bytes += out.binary_skipped;
                book.totals.nul_skipped_bytes += out.nul_skipped;
                if let Some(e) = book.streams.get_mut(&f.stream) {
                    e.stats.nul_skipped_bytes += out.nul_skipped;
                    e.stats.lines_read += out.lines;
                    e.stats.truncated_lines += out.truncated_lines;
                    e.stats.binary = f.binary;
                    e.stats.binary_skipped_bytes += out.binary_skipped;
                    e.stats.records += out.records.len() as u64;
                }
                drop(book);
                records.extend(out.records);
            }
            if let Some(r) = f.flush_stale(now, timeout, &self.options, observed) {
                records.push(r);
            }
        }
    }

    /// Lets go of rotated files that are read to their end and have not grown for the grace
    /// period: their last records are handed over and their checkpoint entry is dropped once
    /// acknowledged.
    fn release(
        &mut self,
        now: Instant,
        records: &mut Vec<LogRecord>,
        marks: &mut Vec<(StreamId, u64)>,
    ) {
        let grace = Duration::from_millis(self.config.rotated_grace_ms);
        let observed = now_unix_nanos();
        let mut i = 0;
        while i < self.files.len() {
            let f = &self.files[i];
            // The size is asked again: bytes written since the last read keep the file open.
            let done = f.orphan_since.is_some()
                && now.saturating_duration_since(f.last_growth) >= grace
                && f.file.metadata().is_ok_and(|m| f.read_offset >= m.len());
            if !done {
                i += 1;
                continue;
            }
            let mut f = self.files.swap_remove(i);
            let (flushed, lines) = f.flush_all(&self.options, observed, now);
            records.extend(flushed);
            let end = f.read_offset;
            marks.push((f.stream, end));
            let mut book = self.book.lock();
            book.totals.lines_read += lines;
            if let Some(e) = book.streams.get_mut(&f.stream) {
                e.retire_at = Some(end);
            }
            book.retire_done();
        }
    }

    fn update_stats(&mut self, records: u64) {
        let mut book = self.book.lock();
        book.totals.records += records;
        for f in &self.files {
            if let Some(e) = book.streams.get_mut(&f.stream) {
                e.stats.path.clone_from(&f.path);
                e.stats.offset = f.read_offset;
                e.stats.size = f.last_size;
                e.stats.lag_bytes = f.last_size.saturating_sub(f.read_offset);
                e.stats.rotated = f.orphan_since.is_some();
                e.stats.acked_offset = e.acked;
            }
        }
    }

    /// Paths of the directories to watch for file-system events: those the globs look into,
    /// and those of the files being read (a glob with wildcards in its directories, a rotated
    /// file renamed into another directory).
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let globs = self.sources.iter().map(|s| literal_dir(&s.path));
        let files = self
            .files
            .iter()
            .filter_map(|f| Path::new(&f.path).parent().map(Path::to_path_buf));
        for dir in globs.chain(files) {
            if !dir.as_os_str().is_empty() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// Whether a file is read with a blank head (empty so far, or NULs only): nothing of it
    /// is known yet, so if it were written and then truncated (copytruncate) before the
    /// next read, the truncation could not be told and the lines, copied elsewhere, would
    /// be lost. Such a file is read as soon as it is written, not after a read gap.
    pub fn has_blank_head(&self) -> bool {
        self.files.iter().any(|f| f.head.is_blank())
    }

    /// Whether the next step is due at a time rather than on a file-system event: a pending
    /// multi-line record or a rotated file waits for its timeout, a copy candidate for the
    /// rotation grace, a glob with wildcards in its directories for the next expansion (a new
    /// directory's files have no watch yet), a source directory that cannot be read for the
    /// next look. When this is false and every directory is watched, an idle tailer sleeps
    /// until an event.
    pub fn waits_for_time(&self) -> bool {
        !self.deferred.is_empty()
            || self.files.iter().any(TailedFile::waits_for_time)
            || self.sources.iter().any(|s| {
                let dir = literal_dir(&s.path);
                Path::new(&s.path)
                    .parent()
                    .is_some_and(|glob_dir| glob_dir != dir)
                    || !dir.is_dir()
            })
    }
}

impl Tailer {
    /// Whether a file has bytes not read yet (as of the last read): the next poll has work.
    pub fn has_backlog(&self) -> bool {
        self.files.iter().any(|f| f.last_size > f.read_offset)
    }

    /// How long an idle tailer may sleep while [`Tailer::waits_for_time`]: the poll interval,
    /// or less when a multi-line or rotation timeout is shorter (a pending record is handed
    /// over on time even with a long poll interval).
    pub(crate) fn timer_step_ms(&self) -> u64 {
        self.config
            .poll_interval_ms
            .min(self.config.multiline_timeout_ms)
            .min(self.config.rotated_grace_ms)
            .max(1)
    }

    /// How long until a source that could not be read is looked at again (zero when due):
    /// the runner sleeps at most this long, whatever its file-system events say (see
    /// [`Retry`]). `None` while every source could be read.
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        self.retry.map(|r| r.at.saturating_duration_since(now))
    }

    /// How many files are open (live and rotated ones being drained).
    pub fn open_files(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_a_globbed_name_a_separator_and_anything() {
        let patterns = [glob::Pattern::new("/l/*.log").unwrap()];
        let generation = |name: &str| generation_of_globbed(Path::new(name), &patterns);
        for name in [
            "/l/app.log.3",
            "/l/app.log-20261206",
            "/l/app.log.2026-12-06",
            "/l/app.log.old",
            "/l/app.log-backup",
            "/l/app.log_1",
            "/l/app.log.1.bak",
        ] {
            assert!(generation(name), "{name}");
        }
        for name in [
            "/l/app.log",
            "/l/app.log.",
            "/l/app.logs.1",
            "/l/app.log~",
            "/l/notes.txt",
            "/l/other.1",
            "/m/app.log.1",
        ] {
            assert!(!generation(name), "{name}");
        }
    }

    /// A file that cannot be opened (here a symbolic link to itself: ELOOP, which holds under
    /// root too) is named in its source's statistics and looked at again 1 s later, then
    /// after 2, 4, 8, 16 and 30 s, never more than 30 s, with the globs expanded only every
    /// 10 minutes and no event; polls in between are no retry. Readable again, it is read at
    /// the next look and the timer stops.
    #[test]
    fn an_unreadable_file_is_looked_at_again_on_a_backoff_timer() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::os::unix::fs::symlink(&log, &log).unwrap();
        let config = TailConfig {
            glob_interval_ms: 600_000,
            start_at: StartAt::Beginning,
            ..TailConfig::default()
        };
        let sources = vec![LogSource {
            path: format!("{}/*.log", dir.path().display()),
            service: Some("svc".into()),
        }];
        let t0 = Instant::now();
        let mut tailer = Tailer::new(config, sources, None, t0).unwrap();
        let error = tailer.stats().sources[0].error.clone().unwrap_or_default();
        assert!(error.contains("app.log"), "{error:?}");
        let secs = Duration::from_secs;
        assert_eq!(tailer.retry_in(t0), Some(secs(1)));
        assert!(tailer.poll(t0 + Duration::from_millis(400)).is_none());
        assert_eq!(
            tailer.retry_in(t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        let mut at = t0 + secs(1);
        for next in [2, 4, 8, 16, 30, 30] {
            assert!(tailer.poll(at).is_none());
            assert_eq!(tailer.retry_in(at), Some(secs(next)));
            at += secs(next);
        }
        fs::remove_file(&log).unwrap();
        fs::write(&log, "level=error msg=\"one\"\nlevel=error msg=\"two\"\n").unwrap();
        let batch = tailer.poll(at).expect("read at the next look");
        assert!(!batch.records.is_empty());
        assert_eq!(tailer.retry_in(at), None);
        // The last record waits for a continuation line until the multi-line timeout.
        let rest = tailer.poll(at + secs(2)).map_or(0, |b| b.records.len());
        assert_eq!(batch.records.len() + rest, 2);
        assert_eq!(tailer.stats().sources[0].error, None);
    }
}
