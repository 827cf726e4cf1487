//! File identity: which file is this, whatever its current name?
//!
//! A file is identified by its device and inode (which survive a rename) plus a checksum of
//! its first bytes (its *head*). The head tells apart two files that share an inode number
//! (the kernel reuses the inode of a deleted file) and a file truncated and rewritten in place;
//! it also recognises a byte copy of a file (copytruncate), which has another inode but the
//! same head. A head shorter than [`HEAD_BYTES`] grows with the file until it is full.
//!
//! NUL bytes are left out of the head: a file that begins with a hole of NULs (copytruncate
//! with a writer that keeps its offset) is identified by the text after the hole, so that
//! two such files are not taken for copies of each other, and the hole written over a
//! truncated file is seen as new content. The head starts at the first non-NUL byte (found
//! once, when the head is read: holes are as long as the file was, megabytes) and covers raw
//! bytes from there until it holds [`HEAD_BYTES`] non-NUL bytes, at most [`HEAD_SCAN_BYTES`]
//! of them; comparing it later reads only that range.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading non-NUL bytes the head checksum covers at most.
pub const HEAD_BYTES: u64 = 256;

/// How far after its first non-NUL byte the head looks for its [`HEAD_BYTES`] non-NUL bytes.
pub const HEAD_SCAN_BYTES: u64 = 64 * 1024;

/// How far into a file the first non-NUL byte is looked for: a copytruncate hole is as long
/// as the file was when it was truncated (2.6 MB after 4 s at 20,000 lines/s in the long
/// reliability run). A file whose first this-many bytes are all NUL has a blank head.
pub const HOLE_SCAN_BYTES: u64 = 256 * 1024 * 1024;

/// The hash of no bytes: the head of an empty file or of a file of NULs only.
fn blank_hash() -> u64 {
    xxhash_rust::xxh3::xxh3_64(&[])
}

/// The raw length that holds `HEAD_BYTES` non-NUL bytes of `bytes` (all of it if fewer),
/// the hash of those non-NUL bytes, and whether the head is full.
fn head_of(bytes: &[u8]) -> (u64, u64, bool) {
    let mut kept = Vec::with_capacity(HEAD_BYTES as usize);
    let mut raw = 0u64;
    for &b in bytes {
        if kept.len() as u64 == HEAD_BYTES {
            break;
        }
        raw += 1;
        if b != 0 {
            kept.push(b);
        }
    }
    let full = kept.len() as u64 == HEAD_BYTES || raw >= HEAD_SCAN_BYTES;
    (raw, xxhash_rust::xxh3::xxh3_64(&kept), full)
}

/// Device, inode and birth time: what a rename does not change.
///
/// The birth time (`statx`'s btime, where the file system records it: ext4, xfs, btrfs,
/// tmpfs) tells a reused inode number from the file that had it before, even when neither
/// has content to compare yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Birth time in Unix nanoseconds, when the file system knows it.
    pub born: Option<u64>,
}

impl FileId {
    /// The id of an open file or of file metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            born,
        }
    }
}

/// The checksum of a file's first bytes after any leading NULs, NUL bytes left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    /// Offset of the first non-NUL byte (0 for a file without a leading hole).
    pub start: u64,
    /// Where the bytes the head covers end (0 for an empty file): it covers `start..len`.
    pub len: u64,
    /// xxh3 of the non-NUL bytes among them.
    pub hash: u64,
}

/// Offset of the first non-NUL byte of `file` (whose size is `size`), `size` when there is
/// none within [`HOLE_SCAN_BYTES`].
fn first_non_nul(file: &File, size: u64) -> io::Result<u64> {
    let end = size.min(HOLE_SCAN_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Ok(at + i as u64);
        }
        at += n as u64;
    }
    Ok(size)
}

/// Reads exactly `start..end`, or `None` if the file is shorter now.
fn read_range(file: &File, start: u64, end: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; end.saturating_sub(start) as usize];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], start + done as u64) {
            Ok(0) => return Ok(None),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(buf))
}

impl Head {
    /// The head of `file`, whose size is `size`: up to [`HEAD_BYTES`] non-NUL bytes after any
    /// leading hole.
    pub fn read(file: &File, size: u64) -> io::Result<Head> {
        let start = first_non_nul(file, size)?;
        let end = size.min(start.saturating_add(HEAD_SCAN_BYTES));
        match read_range(file, start, end)? {
            Some(bytes) => {
                let (raw, hash, _) = head_of(&bytes);
                Ok(Head {
                    start,
                    len: start + raw,
                    hash,
                })
            }
            // The file shrank between the stat and the read: hash what is there.
            None => Ok(Head {
                start: 0,
                len: 0,
                hash: blank_hash(),
            }),
        }
    }

    /// Whether the head says nothing about the content (an empty file, or NULs only): no file
    /// can be recognised as a copy of another by such a head.
    pub fn is_blank(&self) -> bool {
        self.len == 0 || self.hash == blank_hash()
    }

    /// Whether `file` still starts with this head.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        Ok(read_range(file, self.start, self.len)?
            .is_some_and(|bytes| head_of(&bytes).1 == self.hash))
    }

    /// Re-reads a head that is not full yet from a file now `size` long, if it still starts
    /// the same. `Ok(None)`: the file no longer starts with this head (replaced in place).
    pub fn grow(&self, file: &File, size: u64) -> io::Result<Option<Head>> {
        if size <= self.len {
            return Ok(Some(*self));
        }
        if self.is_blank() {
            // Nothing to compare: NULs so far (a hole still being written over) or empty.
            return Head::read(file, size).map(Some);
        }
        let Some(bytes) = read_range(file, self.start, self.len)? else {
            return Ok(None);
        };
        let (_, hash, full) = head_of(&bytes);
        if hash != self.hash {
            return Ok(None);
        }
        if full {
            return Ok(Some(*self));
        }
        let end = size.min(self.start.saturating_add(HEAD_SCAN_BYTES));
        Ok(read_range(file, self.start, end)?.map(|bytes| {
            let (raw, hash, _) = head_of(&bytes);
            Head {
                start: self.start,
                len: self.start + raw,
                hash,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn head_grows_and_detects_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"first\n").unwrap();
        let r = File::open(&path).unwrap();
        let head = Head::read(&r, 6).unwrap();
        assert_eq!(head.len, 6);
        f.write_all(&[b'x'; 400]).unwrap();
        let grown = head.grow(&r, 406).unwrap().unwrap();
        assert_eq!(grown.len, HEAD_BYTES);
        assert!(grown.matches(&r).unwrap());
        std::fs::write(&path, b"other\nxxxxxxxxx").unwrap();
        assert!(!head.matches(&r).unwrap());
        assert_eq!(head.grow(&r, 15).unwrap(), None);
        assert!(
            !grown.matches(&r).unwrap(),
            "shorter file cannot match a full head"
        );
    }

    #[test]
    fn a_leading_hole_of_nuls_is_not_content() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let mut hole_then_a = vec![0u8; 1000];
        hole_then_a.extend_from_slice(b"first line of a\n");
        let mut hole_then_b = vec![0u8; 1000];
        // Hole longer than the head's scan: found all the same.
        hole_then_a.splice(0..0, vec![0u8; 3 * HEAD_SCAN_BYTES as usize]);
        hole_then_b.extend_from_slice(b"first line of b\n");
        std::fs::write(&a, &hole_then_a).unwrap();
        std::fs::write(&b, &hole_then_b).unwrap();
        let size_a = hole_then_a.len() as u64;
        let head_a = Head::read(&File::open(&a).unwrap(), size_a).unwrap();
        assert!(!head_a.is_blank());
        assert_eq!(head_a.start, size_a - 16);
        assert!(head_a.matches(&File::open(&a).unwrap()).unwrap());
        assert!(!head_a.matches(&File::open(&b).unwrap()).unwrap());
        std::fs::write(&b, [0u8; 600]).unwrap();
        assert!(Head::read(&File::open(&b).unwrap(), 600)
            .unwrap()
            .is_blank());
    }
}
