//! Multi-line joining: Go panics and `debug.Stack()` dumps, Java stack traces, Python
//! tracebacks and Gin's `Error #01:` lines become one record.
//!
//! The joiner is fed complete lines in file order and holds at most one pending record. A line
//! that continues the pending record (an indented line, a `goroutine N [running]:` header, a Go
//! stack frame in a panic, `Caused by:`, Gin's `Error #NN:` after a request line, the last line
//! of a Python traceback) is appended; any other line completes the pending record and becomes
//! the new pending one. Because the next line decides, the last record of a quiet file would
//! wait forever: the owner calls [`Multiline::flush_stale`] with its timeout so it is released.
//!
//! Offsets travel with the text: a joined record knows the byte offset of its first line and
//! the offset just past its last line, which is what the tailer may checkpoint once the record
//! is processed. Pending lines are never behind a checkpoint.

use std::time::{Duration, Instant};

/// A complete record: one or more joined lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultilineRecord {
    /// The lines, joined with `\n`.
    pub text: String,
    /// Byte offset of the first line.
    pub start_offset: u64,
    /// Byte offset just past the last line's terminator.
    pub end_offset: u64,
    /// A line was cut at the line limit, or lines were dropped at the record limit.
    pub truncated: bool,
    /// How many physical lines were joined.
    pub lines: u32,
}

/// What kind of block the pending record is, which decides what may continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// An ordinary line: only indented lines, `Caused by:` or a goroutine header continue it.
    Line,
    /// A Go panic or stack dump: frames, blank lines and `goroutine` headers continue it.
    GoStack,
    /// A Python traceback, open until its exception line.
    Python,
    /// A Python traceback whose exception line has been seen.
    PythonDone,
    /// A Gin request line, continued by `Error #NN:` lines.
    Gin,
}

#[derive(Debug)]
struct Pending {
    record: MultilineRecord,
    block: Block,
    last_push: Instant,
}

/// Joins physical lines into records. See the module documentation.
#[derive(Debug)]
pub struct Multiline {
    max_bytes: usize,
    pending: Option<Pending>,
}

fn starts_go_block(line: &str) -> bool {
    line.starts_with("panic: ")
        || line.starts_with("fatal error: ")
        || line.contains("http: panic serving")
        || line.trim_end().ends_with("[recovered]")
        || is_goroutine_header(line)
}

fn is_goroutine_header(line: &str) -> bool {
    line.strip_prefix("goroutine ").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(" [")
    })
}

/// A Go stack frame line: `pkg/path.(*T).Method(0xc000, ...)` or `main.main()`.
fn is_go_frame(line: &str) -> bool {
    let Some(open) = line.find('(') else {
        return false;
    };
    let head = &line[..open];
    !head.is_empty()
        && !head.contains(' ')
        && line.trim_end().ends_with(')')
        && line.as_bytes()[0].is_ascii_alphabetic()
}

impl Multiline {
    /// A joiner whose records are cut at `max_bytes` (further lines are consumed but dropped,
    /// and the record is marked truncated).
    pub fn new(max_bytes: usize) -> Self {
        Multiline {
            max_bytes: max_bytes.max(1),
            pending: None,
        }
    }

    /// Offset of the first line still pending, if any: nothing from here on may be
    /// checkpointed yet.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.record.start_offset)
    }

    /// Feeds one line (without terminator) that spans `start..end` in the file. Returns the
    /// record this line completed, if any.
    pub fn push(
        &mut self,
        line: &str,
        start: u64,
        end: u64,
        truncated: bool,
        now: Instant,
    ) -> Option<MultilineRecord> {
        if let Some(pending) = &mut self.pending {
            if Self::continues(pending.block, line) {
                let record = &mut pending.record;
                if record.text.len() + 1 + line.len() <= self.max_bytes {
                    record.text.push('\n');
                    record.text.push_str(line);
                } else {
                    record.truncated = true;
                }
                record.truncated |= truncated;
                record.end_offset = end;
                record.lines += 1;
                pending.last_push = now;
                pending.block = match pending.block {
                    Block::Line if is_goroutine_header(line) => Block::GoStack,
                    Block::Python if !line.starts_with([' ', '\t']) && !line.is_empty() => {
                        Block::PythonDone
                    }
                    other => other,
                };
                return None;
            }
        }
        let done = self.pending.take().map(|p| p.record);
        if line.trim().is_empty() {
            // A blank line outside a block is no record. If nothing is pending it is simply
            // consumed; otherwise the pending record was completed above.
            return done;
        }
        let block = if line.starts_with("Traceback (most recent call last):") {
            Block::Python
        } else if starts_go_block(line) {
            Block::GoStack
        } else if line.starts_with("[GIN]") {
            Block::Gin
        } else {
            Block::Line
        };
        let mut text = line.to_string();
        let mut cut = truncated;
        if text.len() > self.max_bytes {
            let mut at = self.max_bytes;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.truncate(at);
            cut = true;
        }
        self.pending = Some(Pending {
            record: MultilineRecord {
                text,
                start_offset: start,
                end_offset: end,
                truncated: cut,
                lines: 1,
            },
            block,
            last_push: now,
        });
        done
    }

    fn continues(block: Block, line: &str) -> bool {
        let indented = line.starts_with([' ', '\t']) && !line.trim().is_empty();
        match block {
            Block::Line => {
                indented
                    || line.starts_with("Caused by: ")
                    || line.starts_with("Suppressed: ")
                    || is_goroutine_header(line)
            }
            Block::GoStack => {
                indented
                    || line.is_empty()
                    || is_goroutine_header(line)
                    || line.starts_with("created by ")
                    || line.starts_with("[signal ")
                    || line.starts_with("exit status ")
                    || is_go_frame(line)
            }
            Block::Python => true,
            Block::PythonDone => false,
            Block::Gin => line.starts_with("Error #"),
        }
    }

    /// Releases the pending record if no line was added to it for `timeout`.
    pub fn flush_stale(&mut self, now: Instant, timeout: Duration) -> Option<MultilineRecord> {
        let stale = self
            .pending
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.last_push) >= timeout);
        if stale {
            self.flush()
        } else {
            None
        }
    }

    /// Releases the pending record now (end of a file that is let go, shutdown).
    pub fn flush(&mut self) -> Option<MultilineRecord> {
        self.pending.take().map(|p| p.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(lines: &[&str]) -> Vec<String> {
        let now = Instant::now();
        let mut m = Multiline::new(1 << 16);
        let mut out = Vec::new();
        let mut offset = 0u64;
        for line in lines {
            let end = offset + line.len() as u64 + 1;
            out.extend(m.push(line, offset, end, false, now).map(|r| r.text));
            offset = end;
        }
        out.extend(m.flush().map(|r| r.text));
        out
    }

    #[test]
    fn go_panic_is_one_record() {
        let out = join(&[
            "starting",
            "panic: runtime error: index out of range [3] with length 2",
            "",
            "goroutine 6 [running]:",
            "example.com/shop.parseRoute({0xc00001e250?, 0x7f87ccca34b8?})",
            "\texample.com/shop/shop.go:93 +0x85",
            "created by example.com/shop.(*Consumer).Start",
            "\texample.com/shop/shop.go:264 +0x72",
            "exit status 2",
            "2024/03/11 08:22:20 next",
        ]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[1].starts_with("panic: runtime error") && out[1].ends_with("exit status 2"));
    }

    #[test]
    fn java_python_and_gin_blocks() {
        let out = join(&[
            "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            "\tat com.example.App.main(App.java:10)",
            "Caused by: java.io.IOException: reset",
            "\t... 3 more",
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "ValueError: bad value",
            "[GIN] 2024/01/02 - 15:04:05 | 500 | 1ms | 127.0.0.1 | GET \"/a\"",
            "Error #01: boom",
            "plain",
        ]);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(out[0].ends_with("... 3 more"));
        assert!(out[1].ends_with("ValueError: bad value"));
        assert!(out[2].ends_with("Error #01: boom"));
    }

    #[test]
    fn stale_pending_record_is_released_and_offsets_hold() {
        let t0 = Instant::now();
        let mut m = Multiline::new(8);
        assert!(m.push("0123456789", 0, 11, false, t0).is_none());
        assert_eq!(m.pending_start(), Some(0));
        assert!(m.flush_stale(t0, Duration::from_secs(1)).is_none());
        let r = m
            .flush_stale(t0 + Duration::from_secs(1), Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            (r.text.as_str(), r.start_offset, r.end_offset, r.truncated),
            ("01234567", 0, 11, true)
        );
        assert_eq!(m.pending_start(), None);
    }
}
