//! Freed heap memory handed back to the kernel.
//!
//! The agent binary's Rust heap is jemalloc (`main.rs`), which hands freed pages back on its
//! own (after 2 s, its `dirty_decay_ms`). glibc's malloc still serves the C libraries, and the
//! whole heap of the library's other users (tests, fuzz targets); it keeps the pages of freed
//! chunks inside its heaps: it returns memory to the kernel only from the top of the main heap
//! (and from the end of its other arenas), so the pages freed in the middle, after a burst of
//! short-lived allocations, stay in RSS for good (with glibc as the agent's heap, the live heap
//! stayed near two thirds of RSS at 1,000 lines/s + 1,000 spans/s). [`release_freed`] asks
//! glibc to give back every whole free page of every arena (`malloc_trim(0)`, which uses
//! `MADV_DONTNEED` on them); the agent calls it on its maintenance tick every
//! [`RELEASE_EVERY`]. Other libcs: nothing to do.

use std::time::Duration;

/// How often freed pages are handed back: often enough that RSS follows the live heap within
/// seconds, rarely enough that the walk over the free lists costs nothing measurable.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Hands the whole free pages of every malloc arena back to the kernel. Blocking (it walks
/// the free lists under the arenas' locks): call it from a blocking thread.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks and
    // advises the kernel about pages no live allocation holds; it may run at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
