//! `atomic_write`: the one way faultline replaces a file on disk.
//!
//! Why it lives here: the agent is the only part of faultline that writes durable state (the
//! libraries hand it versioned values — the tail offsets, the cluster store — and it stores
//! them together in one file, see [`super`]). A tiny module in the crate that persists keeps
//! the libraries free of file-system policy and of each other's insides; should a library
//! ever persist on its own, this module moves into a small shared crate instead of being
//! copied.
//!
//! Execution model: blocking calls (run them on a blocking thread); one writer per target
//! file. Bounds: one temporary file per call, removed again when any step fails.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What failed, at which step, on which file.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {path}: {source}")]
pub struct AtomicWriteError {
    /// The step that failed, in words ("write", "fsync", "rename to", ...).
    pub step: &'static str,
    /// The file the step worked on.
    pub path: PathBuf,
    /// The file system's answer.
    #[source]
    pub source: io::Error,
}

/// Distinguishes temporary files of one process, so that two writes in flight (or a write
/// racing the clean-up of an earlier one) never share a name.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Prefix of the temporary files of `path`: `.<name>.tmp-`. Hidden, so that a glob over the
/// data directory does not pick them up, and recognisable by [`remove_stale_temps`].
fn tmp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` so that after a crash at any instant (process or machine) the
/// file holds either its complete old content or the complete new one, never a mix, and
/// reports every failure (a full disk included) instead of half-succeeding.
///
/// With `keep_previous`, the content being replaced stays available under that name (one
/// older generation), so that a current file found broken later does not cost everything.
pub fn atomic_write(
    path: &Path,
    bytes: &[u8],
    keep_previous: Option<&Path>,
) -> Result<(), AtomicWriteError> {
    let dir = dir_of(path);
    // A temporary file in the same directory: rename(2) is atomic only within one file
    // system. The process id and a counter make the name unique, so a second agent started
    // on the same data directory by mistake, or a leftover of a crashed run, is never
    // overwritten half-way by this write.
    let tmp = dir.join(format!(
        "{}{}-{}",
        tmp_prefix(path),
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let fail = |step, path: &Path, source| AtomicWriteError {
        step,
        path: path.to_path_buf(),
        source,
    };
    let written = (|| {
        let mut file = File::create(&tmp).map_err(|e| fail("create", &tmp, e))?;
        file.write_all(bytes).map_err(|e| fail("write", &tmp, e))?;
        // The data must be on disk before the rename makes it visible under the real name:
        // otherwise a machine crash can leave the new name pointing at an empty or partial
        // file (ext4 with delayed allocation does exactly that), and the old content gone.
        file.sync_all().map_err(|e| fail("fsync", &tmp, e))?;
        if let Some(previous) = keep_previous {
            keep_generation(path, previous).map_err(|e| fail("keep the previous", path, e))?;
        }
        // The atomic step: the name now points at the complete new file, or (if we crash
        // before) still at the complete old one.
        fs::rename(&tmp, path).map_err(|e| fail("rename into place", path, e))
    })();
    if let Err(err) = written {
        // A full disk leaves a partial temporary file behind: it would hold the space that the
        // next attempt needs, and pile up one per attempt.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    // The rename is a change of the directory, durable only once the directory is: without
    // this fsync a machine crash can bring back the old name (and the old state) although the
    // caller was told the new one is stored. Its failure is reported like any other.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync the directory of", path, e))
}

/// Makes the current content of `path` (if any) the content of `previous`, without a moment
/// at which `path` is missing: a second name (hard link) for the current file, renamed over
/// the old `previous`. The link costs no data blocks, so it works on a full disk too.
fn keep_generation(path: &Path, previous: &Path) -> io::Result<()> {
    let link = dir_of(previous).join(format!(
        "{}{}-{}",
        tmp_prefix(previous),
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    ));
    match fs::hard_link(path, &link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    fs::rename(&link, previous).inspect_err(|_| {
        let _ = fs::remove_file(&link);
    })
}

/// Removes temporary files of `path` that earlier runs left behind (a crash between creating
/// and renaming one). Call it before the first write, when no write of this process is in
/// flight. Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let prefix = tmp_prefix(path);
    let mut removed = 0;
    for entry in fs::read_dir(dir_of(path))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        atomic_write(&path, b"one", None).unwrap();
        atomic_write(&path, b"two", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_failure_is_reported_with_its_step_and_the_old_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        atomic_write(&path, b"old", None).unwrap();
        // A directory where the file should go: the rename fails after the temporary file
        // was written, which must be removed again.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        let err = atomic_write(&blocked, b"new", None).unwrap_err();
        assert_eq!(err.step, "rename into place");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")));
    }

    #[test]
    fn the_previous_generation_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let previous = dir.path().join("state.prev.json");
        atomic_write(&path, b"1", Some(&previous)).unwrap();
        assert!(!previous.exists(), "no generation before the first");
        atomic_write(&path, b"2", Some(&previous)).unwrap();
        atomic_write(&path, b"3", Some(&previous)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"3");
        assert_eq!(fs::read(&previous).unwrap(), b"2");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn stale_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(dir.path().join(".state.json.tmp-1-0"), b"partial").unwrap();
        fs::write(dir.path().join(".state.json.tmp-99-7"), b"").unwrap();
        fs::write(dir.path().join("other.json"), b"{}").unwrap();
        assert_eq!(remove_stale_temps(&path).unwrap(), 2);
        assert!(dir.path().join("other.json").exists());
    }
}
