//! Where a Go service's goroutines wait: the largest group of goroutines sharing one stack, read
//! from a pprof goroutine page.
//!
//! A goroutine leak is a count that grows; what an SRE needs next is *where* the goroutines
//! are stuck. Both pprof text pages say it:
//!
//! - `debug=1` groups goroutines by stack: `300 @ 0x43b256 ...` then one `#\t0x6708a6\t
//!   main.leak.func1+0x26\t/src/leak/main.go:13` line per frame. It has no wait state.
//! - `debug=2` prints each goroutine: `goroutine 15 [chan send, 3 minutes]:`, then per frame a
//!   function line (`main.leak.func1()`) and a tab-indented `file:line +0x27` line, ending
//!   with `created by main.leak`. Goroutines are grouped here by wait state (without its
//!   duration) and frames.
//!
//! [`top_stack`] returns the largest group, with the goroutine total and the first frame of
//! the application (the first whose package is not Go's standard library: `main.` or a module
//! path such as `github.com/...`) — the line where a leak usually is.
//!
//! Pure and bounded: one pass over the page, at most [`MAX_GROUPS`] distinct stacks kept (a
//! page of a million distinct stacks is cut, and the answer says the page was cut); nothing
//! panics on arbitrary text.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The most distinct stacks kept while reading a page.
pub const MAX_GROUPS: usize = 10_000;
/// The most frames kept per stack.
pub const MAX_FRAMES: usize = 32;

/// One frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The function (`main.leak.func1`, `net/http.(*conn).serve`), without arguments or offset.
    pub function: String,
    /// `file:line`, when the page gives it.
    pub location: Option<String>,
}

impl Frame {
    /// Whether the frame is in the application rather than Go's standard library or runtime:
    /// the package is `main`, or its import path starts with a domain (`github.com/...`).
    pub fn is_application(&self) -> bool {
        let f = self.function.as_str();
        if f.starts_with("main.") {
            return true;
        }
        // `net/http.(*conn).serve` → `net/http`; `github.com/a/b.F` → `github.com/a/b`.
        let last_slash = f.rfind('/').map_or(0, |i| i + 1);
        let package_end = f[last_slash..]
            .find('.')
            .map_or(f.len(), |i| last_slash + i);
        let first_element = f[..package_end].split('/').next().unwrap_or("");
        first_element.contains('.')
    }

    /// `main.leak.func1 (main.go:13)`: the function and the file's last path element.
    pub fn short(&self) -> String {
        match &self.location {
            Some(loc) => {
                let file = loc.rsplit('/').next().unwrap_or(loc);
                format!("{} ({file})", self.function)
            }
            None => self.function.clone(),
        }
    }
}

/// The largest group of goroutines sharing a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopStack {
    /// Goroutines in the group.
    pub count: u64,
    /// Goroutines on the page (its total, or the goroutines read).
    pub total: u64,
    /// The wait state (`chan send`, `IO wait`, `select`), on `debug=2` pages.
    pub state: Option<String>,
    /// The frames, innermost first (at most [`MAX_FRAMES`]).
    pub frames: Vec<Frame>,
    /// The function that started the goroutines (`created by main.leak`), on `debug=2` pages.
    pub created_by: Option<String>,
    /// Whether the page held more distinct stacks than [`MAX_GROUPS`] (the count is then a
    /// lower bound).
    pub cut: bool,
}

impl TopStack {
    /// The frame an SRE looks at first: the innermost application frame, else the innermost.
    pub fn top_frame(&self) -> Option<&Frame> {
        self.frames
            .iter()
            .find(|f| f.is_application())
            .or(self.frames.first())
    }

    /// One sentence: `300 of 303 goroutines wait in [chan send] at main.leak.func1 (main.go:13),
    /// started by main.leak`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} of {} goroutines ", self.count, self.total);
        match &self.state {
            Some(s) => out.push_str(&format!("wait in [{s}]")),
            None => out.push_str("share one stack"),
        }
        if let Some(f) = self.top_frame() {
            out.push_str(" at ");
            out.push_str(&f.short());
        }
        if let Some(c) = &self.created_by {
            out.push_str(", started by ");
            out.push_str(c);
        }
        if self.cut {
            out.push_str(" (the page was cut: at least this many)");
        }
        out
    }
}

/// The largest group of goroutines sharing a stack on a pprof goroutine page (`debug=1` or
/// `debug=2`); none for a page of another kind or with no goroutine.
pub fn top_stack(page: &str) -> Option<TopStack> {
    if page.trim_start().starts_with("goroutine profile:") {
        grouped(page)
    } else {
        per_goroutine(page)
    }
}

/// `debug=1`: groups are given with their counts.
fn grouped(page: &str) -> Option<TopStack> {
    let mut lines = page.lines();
    let total = lines
        .next()?
        .trim()
        .strip_prefix("goroutine profile: total ")?
        .trim()
        .parse::<u64>()
        .ok()?;
    let mut best: Option<(u64, Vec<Frame>)> = None;
    let mut current: Option<(u64, Vec<Frame>)> = None;
    let finish = |group: Option<(u64, Vec<Frame>)>, best: &mut Option<(u64, Vec<Frame>)>| {
        if let Some((n, frames)) = group {
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                *best = Some((n, frames));
            }
        }
    };
    for line in lines {
        if let Some((count, _)) = line.split_once(" @ ") {
            finish(current.take(), &mut best);
            current = count.trim().parse::<u64>().ok().map(|n| (n, Vec::new()));
        } else if let Some(frame) = line.strip_prefix("#\t") {
            // `0x6708a6\tmain.leak.func1+0x26\t/src/leak/main.go:13`
            let mut fields = frame.split('\t').filter(|f| !f.is_empty());
            let (_, Some(function), location) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if let Some((_, frames)) = current.as_mut() {
                if frames.len() < MAX_FRAMES {
                    frames.push(Frame {
                        function: function
                            .rsplit_once("+0x")
                            .map_or(function, |(f, _)| f)
                            .to_owned(),
                        location: location.map(|l| l.trim().to_owned()),
                    });
                }
            }
        }
    }
    finish(current.take(), &mut best);
    let (count, frames) = best?;
    Some(TopStack {
        count,
        total,
        state: None,
        frames,
        created_by: None,
        cut: false,
    })
}

/// The identity of a `debug=2` goroutine's group: its state and frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    state: String,
    frames: Vec<Frame>,
    created_by: Option<String>,
}

/// `debug=2`: one block per goroutine, grouped here.
fn per_goroutine(page: &str) -> Option<TopStack> {
    let mut groups: HashMap<Group, u64> = HashMap::new();
    let mut total = 0u64;
    let mut cut = false;
    let mut current: Option<Group> = None;
    let mut add = |g: Option<Group>, groups: &mut HashMap<Group, u64>| {
        let Some(g) = g else { return };
        if let Some(n) = groups.get_mut(&g) {
            *n += 1;
        } else if groups.len() < MAX_GROUPS {
            groups.insert(g, 1);
        } else {
            cut = true;
        }
    };
    for line in page.lines() {
        if let Some(state) = header_state(line) {
            add(current.take(), &mut groups);
            total += 1;
            current = Some(Group {
                state,
                frames: Vec::new(),
                created_by: None,
            });
            continue;
        }
        let Some(g) = current.as_mut() else { continue };
        if line.is_empty() {
            add(current.take(), &mut groups);
        } else if let Some(location) = line.strip_prefix('\t') {
            // `\t/src/leak/main.go:13 +0x27`: the location of the frame above.
            let location = location.split(" +0x").next().unwrap_or(location).trim();
            if g.created_by.is_none() {
                if let Some(last) = g.frames.last_mut() {
                    if last.location.is_none() {
                        last.location = Some(location.to_owned());
                    }
                }
            }
        } else if let Some(creator) = line.strip_prefix("created by ") {
            // Go 1.21 adds ` in goroutine N`: not part of the identity.
            let creator = creator.split(" in goroutine ").next().unwrap_or(creator);
            g.created_by = Some(creator.trim().to_owned());
        } else if g.created_by.is_none() && g.frames.len() < MAX_FRAMES {
            // `main.leak.func1()`, `net/http.(*conn).serve(0xc0001fdf40, {...})`: the
            // function is everything before the argument list's opening parenthesis, which is
            // the last `(` not part of a receiver like `(*conn)`.
            let function = match line.rfind('(') {
                Some(i) if line.ends_with(')') || line.ends_with("...)") => &line[..i],
                _ => line,
            };
            g.frames.push(Frame {
                function: function.trim().to_owned(),
                location: None,
            });
        }
    }
    add(current.take(), &mut groups);
    let (group, count) = groups
        .into_iter()
        // The most goroutines; equal counts by state and frames, so the answer is the same
        // for the same page.
        .max_by(|(a, n), (b, m)| {
            n.cmp(m)
                .then_with(|| b.state.cmp(&a.state))
                .then_with(|| b.frames.len().cmp(&a.frames.len()))
        })?;
    Some(TopStack {
        count,
        total,
        state: Some(group.state),
        frames: group.frames,
        created_by: group.created_by,
        cut,
    })
}

/// The wait state of a `goroutine N [state, 3 minutes]:` header, without its duration or
/// `locked to thread`; none for any other line.
fn header_state(line: &str) -> Option<String> {
    let rest = line.strip_prefix("goroutine ")?;
    let (id, rest) = rest.split_once(' ')?;
    id.parse::<u64>().ok()?;
    let inner = rest.strip_prefix('[')?.strip_suffix("]:")?;
    let state = inner
        .split(", ")
        .filter(|p| !p.ends_with("minutes") && !p.ends_with("minute") && *p != "locked to thread")
        .collect::<Vec<_>>()
        .join(", ");
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let path = format!("{}/tests/data/pprof/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("test data {path} is missing ({e}); it is in the repo"))
    }

    #[test]
    fn a_real_debug1_page_names_the_leaking_frame() {
        let top = top_stack(&page("goroutine-debug1.txt")).expect("a top stack");
        assert_eq!((top.count, top.total), (300, 303));
        assert_eq!(top.state, None);
        let frame = top.top_frame().unwrap();
        assert_eq!(frame.function, "main.leak.func1");
        assert_eq!(frame.location.as_deref(), Some("/src/leak/main.go:13"));
        assert_eq!(
            top.describe(),
            "300 of 303 goroutines share one stack at main.leak.func1 (main.go:13)"
        );
    }

    #[test]
    fn a_real_debug2_page_groups_goroutines_by_state_and_stack() {
        let top = top_stack(&page("goroutine-debug2.txt")).expect("a top stack");
        assert_eq!((top.count, top.total), (17, 19));
        assert_eq!(top.state.as_deref(), Some("chan send"));
        assert_eq!(top.created_by.as_deref(), Some("main.leak"));
        assert_eq!(
            top.describe(),
            "17 of 19 goroutines wait in [chan send] at main.leak.func1 (main.go:13), started by \
             main.leak"
        );
    }

    #[test]
    fn the_application_frame_is_told_from_the_standard_library() {
        let f = |function: &str| Frame {
            function: function.into(),
            location: None,
        };
        assert!(f("main.leak.func1").is_application());
        assert!(f("github.com/gin-gonic/gin.(*Context).Next").is_application());
        assert!(!f("net/http.(*conn).serve").is_application());
        assert!(!f("runtime.gopark").is_application());
        assert!(!f("internal/poll.runtime_pollWait").is_application());
        // A stack of the standard library only: its innermost frame.
        let top = top_stack(
            "goroutine 7 [IO wait, 5 minutes]:\ninternal/poll.runtime_pollWait(0x7f, 0x72)\n\t/usr/lib/go/src/runtime/netpoll.go:305 +0x89\n",
        )
        .unwrap();
        assert_eq!(top.state.as_deref(), Some("IO wait"));
        assert_eq!(
            top.top_frame().unwrap().short(),
            "internal/poll.runtime_pollWait (netpoll.go:305)"
        );
    }

    #[test]
    fn pages_without_goroutines_have_no_top_stack() {
        assert_eq!(top_stack(""), None);
        assert_eq!(top_stack("go_goroutines 12\n"), None);
        assert_eq!(top_stack("goroutine profile: total x\n"), None);
        assert_eq!(top_stack("<html>goroutine 5 [x]</html>"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_never_panic(body in "(goroutine [0-9]{1,3} \\[[a-z ,0-9]{0,12}\\]:\n|[a-z./()*]{0,20}\n|\t/[a-z/.]{0,10}:[0-9]{1,3} \\+0x1\n|[0-9]{1,3} @ 0x1\n|#\t0x1\t[a-z.]{0,8}\\+0x1\t/a.go:1\n|created by [a-z.]{0,8}\n|\n|.{0,20}){0,40}") {
            let _ = top_stack(&body);
            let _ = top_stack(&format!("goroutine profile: total 3\n{body}"));
        }
    }
}
