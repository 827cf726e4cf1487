//! Go stacks (`debug.Stack()`, a panic's goroutine dump): the top application frame, the
//! line of the service's own code where the failure happened.
//!
//! Which frame is the application's is decided by rules that hold for any Go program, not by
//! names of one: frames above the innermost `panic(...)` frame are the recovery handler that
//! printed the stack (`runtime/debug.Stack`, the deferred function); the Go runtime and the
//! standard library are packages whose import path's first element has no dot (`runtime`,
//! `net/http`, `encoding/json`; `main` is the program itself); a dependency is a frame whose
//! file lies in the module cache or a vendor tree (`…/pkg/mod/…`, `…@v1.9.1/…`,
//! `…/vendor/…`). The first frame left is the top application frame. Frames of a framework
//! built in GOPATH mode with trimmed paths (`github.com/gin-gonic/gin/context.go`) cannot be
//! told from the application's by their path; they sit below the application's frames in a
//! handler's panic (the framework calls the handler), so starting at the panic finds the
//! handler first.
//!
//! Bounds: one pass over the stack text; only the first [`MAX_FRAMES`] frames are read.

/// Frames read at most: a panic's own frames come first, and a deep recursion's thousands of
/// frames need not be walked to find them.
const MAX_FRAMES: usize = 200;

/// One frame: its function (without arguments) and its `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame<'a> {
    function: &'a str,
    file: &'a str,
}

/// The function of a frame line (`main.(*T).m(0xc000, {0x1, 0x2})` → `main.(*T).m`), or
/// `None` when the line is not one.
fn function_of(line: &str) -> Option<&str> {
    if line.is_empty() || line.starts_with([' ', '\t']) || !line.ends_with(')') {
        return None;
    }
    // The arguments are the last parenthesised group; find its opening parenthesis.
    let mut depth = 0usize;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let function = &line[..i];
                    return (!function.is_empty() && !function.contains(' ')).then_some(function);
                }
            }
            _ => {}
        }
    }
    None
}

/// The frames of a Go stack, top first.
fn frames(stack: &str) -> Vec<Frame<'_>> {
    let mut out = Vec::new();
    let mut lines = stack.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(function) = function_of(line.trim_end()) else {
            continue;
        };
        let Some(file_line) = lines.peek().filter(|l| l.starts_with('\t')) else {
            continue;
        };
        // `\t/src/app/handler.go:42 +0x1d`: the offset is not part of the place.
        let file = file_line.trim().split(' ').next().unwrap_or_default();
        lines.next();
        out.push(Frame { function, file });
        if out.len() >= MAX_FRAMES {
            break;
        }
    }
    out
}

/// The import path of a function symbol: up to the first `.` after the last `/`.
fn package_of(function: &str) -> &str {
    let last_slash = function.rfind('/').map_or(0, |i| i + 1);
    match function[last_slash..].find('.') {
        Some(dot) => &function[..last_slash + dot],
        None => function,
    }
}

fn is_standard_library(package: &str) -> bool {
    let first = package.split('/').next().unwrap_or(package);
    package != "main" && !first.contains('.')
}

fn is_dependency(file: &str) -> bool {
    file.contains("/pkg/mod/") || file.contains("/vendor/") || {
        // `github.com/x/y@v1.2.3/file.go`, as -trimpath writes a module dependency.
        file.find('@')
            .is_some_and(|at| file[at + 1..].starts_with('v'))
    }
}

/// The top application frame of a Go stack as `function file.go:line` (the file without its
/// directory: directories differ between machines, the function names the place), or `None`
/// when the text has no Go frame of the application.
pub fn top_application_frame(stack: &str) -> Option<String> {
    let frames = frames(stack);
    let after_panic = frames
        .iter()
        .rposition(|f| f.function == "panic")
        .map_or(0, |i| i + 1);
    let frame = frames[after_panic..]
        .iter()
        .find(|f| !is_standard_library(package_of(f.function)) && !is_dependency(f.file))?;
    let file = frame.file.rsplit('/').next().unwrap_or(frame.file);
    Some(format!("{} {file}", frame.function))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recovered handler panic as Go 1.19 prints it under Gin (GOPATH build).
    const RECOVERED: &str = "goroutine 26385 [running]:
runtime/debug.Stack()
\truntime/debug/stack.go:24 +0x65
main.(*service).recovery.func1.1()
\t_/srv/shop/service.go:186 +0xb1
panic({0x829760, 0xc0004c2540})
\truntime/panic.go:884 +0x212
main.(*service).priceOf(0xc000414ed0?, {0xc0004e8a50?, 0x5?})
\t_/srv/shop/service.go:245 +0xf4
main.(*service).handle(0xc0000f2d80, 0xc00032e200)
\t_/srv/shop/service.go:212 +0x2b1
github.com/gin-gonic/gin.(*Context).Next(...)
\tgithub.com/gin-gonic/gin/context.go:173
net/http.(*conn).serve(0xc0001e2000, {0x8f1e08, 0xc0001c6f60})
\tnet/http/server.go:1995 +0x612
created by net/http.(*Server).Serve
\tnet/http/server.go:3089 +0x5ed";

    #[test]
    fn the_frame_that_panicked_not_the_handler_that_recovered() {
        assert_eq!(
            top_application_frame(RECOVERED).as_deref(),
            Some("main.(*service).priceOf service.go:245")
        );
    }

    #[test]
    fn runtime_standard_library_and_dependencies_are_skipped() {
        let nil_map = "panic: assignment to entry in nil map

goroutine 1 [running]:
runtime.mapassign_faststr(0x4a1b20, 0x0, {0x4b5e1c, 0x3})
\t/usr/lib/go/src/runtime/map_faststr.go:203 +0x3ef
github.com/lib/pq.(*conn).query(0xc000010000)
\t/root/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go:800 +0x1d
example.com/shop/store.(*Store).Save(...)
\t/src/shop/store/store.go:31
main.main()
\t/src/shop/main.go:9 +0x1d
exit status 2";
        assert_eq!(
            top_application_frame(nil_map).as_deref(),
            Some("example.com/shop/store.(*Store).Save store.go:31")
        );
        // debug.Stack() written by a logger, no panic: the logger's caller.
        let logged = "goroutine 7 [running]:
runtime/debug.Stack()
\truntime/debug/stack.go:24 +0x65
main.report({0x4b5e1c, 0x3})
\t/src/app/report.go:12 +0x25";
        assert_eq!(
            top_application_frame(logged).as_deref(),
            Some("main.report report.go:12")
        );
    }

    #[test]
    fn text_without_application_frames_has_none() {
        for text in [
            "",
            "goroutine 1 [running]:",
            "runtime/debug.Stack()\n\truntime/debug/stack.go:24 +0x65",
            "\tat com.example.App.main(App.java:10)",
            "(((",
            "f(\n\t",
            "é()\n\t",
        ] {
            assert_eq!(top_application_frame(text), None, "{text:?}");
        }
    }
}
