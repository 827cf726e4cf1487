//! Reading a file a person named, with a bound: the agent's config file and the files it
//! names (a CA bundle, hint rules) are read through [`read_bounded`], so that a path such as
//! `/dev/zero` or a FIFO fails at start instead of hanging it or filling memory. It lives
//! here, in the lowest crate that reads such a file, so the agent's config reader shares it.

use std::io::Read;
use std::path::Path;

/// Reads the regular file at `path`, refusing one larger than `limit` bytes: it reads no
/// further than that, so an endless file ends too, and a directory, device or FIFO is
/// refused before any read.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        let size = if limit.is_multiple_of(1 << 20) {
            format!("{} MiB", limit >> 20)
        } else {
            format!("{limit} bytes")
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is larger than {size}"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_up_to_the_limit_is_read_a_larger_one_or_a_device_is_refused() {
        let dir = std::env::temp_dir().join(format!("faultline-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("f");
        std::fs::write(&path, vec![b'x'; 1 << 20]).expect("write");
        assert_eq!(
            read_bounded(&path, 1 << 20).expect("at the limit").len(),
            1 << 20
        );
        let err = read_bounded(&path, (1 << 20) - 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            format!("is larger than {} bytes", (1 << 20) - 1)
        );
        std::fs::write(&path, vec![b'x'; (1 << 20) + 1]).expect("write");
        let err = read_bounded(&path, 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "is larger than 1 MiB");
        let err = read_bounded(&dir, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        if Path::new("/dev/zero").exists() {
            let err = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
            assert_eq!(err.to_string(), "is not a regular file");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
