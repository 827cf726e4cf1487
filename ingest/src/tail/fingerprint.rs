//! File identity: which file is this, whatever its current name?
//!
//! A file is identified by its device and inode (which survive a rename) plus a checksum of
//! its first bytes (its *head*). The head tells apart two files that share an inode number
//! (the kernel reuses the inode of a deleted file) and a file truncated and rewritten in place;
//! it also recognises a byte copy of a file (copytruncate), which has another inode but the
//! same head. A head shorter than [`HEAD_BYTES`] grows with the file until it is full.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the head checksum covers at most.
pub const HEAD_BYTES: u64 = 256;

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

/// The checksum of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    /// How many bytes were hashed (0 for an empty file).
    pub len: u64,
    /// xxh3 of those bytes.
    pub hash: u64,
}

/// Reads exactly `len` bytes at offset 0, or `None` if the file is shorter now.
fn read_prefix(file: &File, len: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; len as usize];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => return Ok(None),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(buf))
}

impl Head {
    /// The head of `file`, whose size is `size`: up to [`HEAD_BYTES`] bytes.
    pub fn read(file: &File, size: u64) -> io::Result<Head> {
        let len = size.min(HEAD_BYTES);
        match read_prefix(file, len)? {
            Some(bytes) => Ok(Head {
                len,
                hash: xxhash_rust::xxh3::xxh3_64(&bytes),
            }),
            // The file shrank between the stat and the read: hash what is there.
            None => Ok(Head {
                len: 0,
                hash: xxhash_rust::xxh3::xxh3_64(&[]),
            }),
        }
    }

    /// Whether `file` still starts with this head.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        Ok(read_prefix(file, self.len)?
            .is_some_and(|bytes| xxhash_rust::xxh3::xxh3_64(&bytes) == self.hash))
    }

    /// Re-reads a head that is not full yet from a file now `size` long, if it still starts
    /// the same. `Ok(None)`: the file no longer starts with this head (replaced in place).
    pub fn grow(&self, file: &File, size: u64) -> io::Result<Option<Head>> {
        if self.len >= HEAD_BYTES || size <= self.len {
            return Ok(Some(*self));
        }
        if !self.matches(file)? {
            return Ok(None);
        }
        Head::read(file, size).map(Some)
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
}
