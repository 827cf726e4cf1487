//! Each lab service's goroutine-style task page: the tasks it really has in flight, counted
//! by guards that live exactly as long as the task, served at `/debug/pprof/goroutine` in the
//! two layouts of Go's pprof text pages:
//!
//! - `?debug=1` (the default here): `goroutine profile: total N`, then one group per place the
//!   tasks wait — what the agent's `[[tasks]]` counts;
//! - `?debug=2`: one block per task with its wait state, the function it waits in and the
//!   source line where it was counted (the real call site, from `#[track_caller]`) — what the
//!   agent reads for an incident's top blocked stack, and what the goroutine-leak hint's
//!   commands grep.

use std::panic::Location;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

/// Where a group of tasks is, as the page names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskGroup {
    /// Handling a request.
    Request,
    /// Holding an accepted connection it neither reads nor closes (the CLOSE_WAIT fault).
    HeldConnection,
    /// Waiting forever on a confirmation nobody sends (the goroutine-leak fault).
    Leaked,
}

const GROUPS: [(TaskGroup, &str); 3] = [
    (TaskGroup::Request, "serving an HTTP request"),
    (
        TaskGroup::HeldConnection,
        "holding an accepted connection, neither reading nor closing it",
    ),
    (
        TaskGroup::Leaked,
        "waiting for a reservation confirmation that nobody sends",
    ),
];

/// How a `debug=2` page shows each group's tasks: the wait state Go would print for a
/// goroutine doing the same, and the function it waits in, named as Go names a method of the
/// program (`main.(*Type).method`, the shape the demo's panic stacks have too): the real
/// functions are `faultline_agent::lab::service::Service::handle`, `…::lab::conn::FaultStream::
/// poll_read` and `…::lab::service::Service::leak_a_task`. A dump of Rust paths beside Go
/// error strings and Go-shaped panics read as another program's.
const WAITS: [(TaskGroup, &str, &str); 3] = [
    (TaskGroup::Request, "select", "main.(*Service).handle"),
    (
        TaskGroup::HeldConnection,
        "IO wait",
        "main.(*FaultStream).poll_read",
    ),
    (
        TaskGroup::Leaked,
        "chan receive",
        "main.(*Service).leak_a_task",
    ),
];

/// The function the standing tasks (the accept loop and the task page) wait in, named as
/// [`WAITS`] names theirs (`faultline_agent::lab::service::debug_router`).
const STANDING_FUNCTION: &str = "main.debug_router";

/// The tasks every service runs whatever its load: its accept loop and its task page.
const STANDING_TASKS: i64 = 2;

/// The most task blocks a `debug=2` page lists per group (the lab caps its leaked tasks and
/// held connections lower; the bound keeps a page small whatever the load).
const MAX_BLOCKS_PER_GROUP: i64 = 20_000;

/// Live task counts of one service.
#[derive(Debug, Default)]
pub struct Tasks {
    counts: [AtomicI64; 3],
    /// Where each group's tasks are counted (the first call site seen).
    sites: [OnceLock<&'static Location<'static>>; 3],
}

/// Counts one task of a group while it lives.
#[derive(Debug)]
pub struct TaskGuard {
    tasks: Arc<Tasks>,
    slot: usize,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.tasks.counts[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tasks {
    /// Counts a task of `group` until the guard is dropped.
    #[track_caller]
    pub fn enter(self: &Arc<Self>, group: TaskGroup) -> TaskGuard {
        let slot = slot_of(group);
        let site = Location::caller();
        self.sites[slot].get_or_init(|| site);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        TaskGuard {
            tasks: self.clone(),
            slot,
        }
    }

    /// How many tasks of `group` live now.
    pub fn count(&self, group: TaskGroup) -> i64 {
        self.counts[slot_of(group)].load(Ordering::Relaxed).max(0)
    }

    /// The pprof `debug=1` text page of `service`.
    pub fn page(&self, service: &str) -> String {
        let groups: Vec<(i64, &str)> = GROUPS
            .iter()
            .map(|(group, what)| (self.count(*group), *what))
            .filter(|(count, _)| *count > 0)
            .collect();
        let total = STANDING_TASKS + groups.iter().map(|(count, _)| count).sum::<i64>();
        let mut page = format!("goroutine profile: total {total}\n");
        for (count, what) in groups {
            page.push_str(&format!("{count} @\n#\t{service}: {what}\n\n"));
        }
        page.push_str(&format!(
            "{STANDING_TASKS} @\n#\t{service}: accept loop and this page\n\n"
        ));
        page
    }

    /// The pprof `debug=2` text page: one block per live task, numbered in page order (the
    /// lab's tasks have no ids of their own), the standing tasks last.
    pub fn stacks_page(&self) -> String {
        let mut page = String::new();
        let mut number = 0u64;
        let mut block = |page: &mut String, state: &str, function: &str, site: Option<String>| {
            number += 1;
            page.push_str(&format!("goroutine {number} [{state}]:\n{function}(...)\n"));
            if let Some(site) = site {
                page.push_str(&format!("\t{site}\n"));
            }
            page.push('\n');
        };
        for (group, state, function) in WAITS {
            let slot = slot_of(group);
            let site = self.sites[slot]
                .get()
                .map(|at| format!("{}:{}", at.file(), at.line()));
            for _ in 0..self.count(group).min(MAX_BLOCKS_PER_GROUP) {
                block(&mut page, state, function, site.clone());
            }
        }
        for _ in 0..STANDING_TASKS {
            block(&mut page, "IO wait", STANDING_FUNCTION, None);
        }
        page
    }
}

fn slot_of(group: TaskGroup) -> usize {
    GROUPS
        .iter()
        .position(|(g, _)| *g == group)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_ingest::counters::stacks::top_stack;

    #[test]
    fn the_page_counts_live_guards_only() {
        let tasks = Arc::new(Tasks::default());
        let leaked: Vec<TaskGuard> = (0..5).map(|_| tasks.enter(TaskGroup::Leaked)).collect();
        let request = tasks.enter(TaskGroup::Request);
        let page = tasks.page("inventory");
        assert!(page.starts_with("goroutine profile: total 8\n"), "{page}");
        assert!(page.contains("5 @\n#\tinventory: waiting"), "{page}");
        drop(leaked);
        drop(request);
        assert!(tasks
            .page("inventory")
            .starts_with("goroutine profile: total 2\n"));
    }

    #[test]
    fn the_stacks_page_shows_where_the_leaked_tasks_wait_as_the_agent_reads_it() {
        let tasks = Arc::new(Tasks::default());
        let leaked: Vec<TaskGuard> = (0..7).map(|_| tasks.enter(TaskGroup::Leaked)).collect();
        let line = line!() - 1;
        let request = tasks.enter(TaskGroup::Request);
        let page = tasks.stacks_page();
        let top = top_stack(&page).expect("a top stack");
        assert_eq!((top.count, top.total), (7, 10), "{page}");
        assert_eq!(top.state.as_deref(), Some("chan receive"), "{page}");
        let frame = top.top_frame().expect("a frame");
        // Named as Go names a method of the program, so the agent reads it as the
        // application's frame, as it reads the demo's Go-shaped panic stacks.
        assert_eq!(frame.function, "main.(*Service).leak_a_task");
        assert!(frame.is_application(), "{frame:?}");
        assert!(
            top.describe()
                .starts_with("7 of 10 goroutines wait in [chan receive] at main.(*Service).leak_a_task (tasks.rs:"),
            "{}",
            top.describe()
        );
        // The location is where the tasks were counted: this test's line.
        let at = frame.location.as_deref().unwrap_or_default();
        assert!(at.ends_with(&format!("tasks.rs:{line}")), "{page}");
        drop(leaked);
        drop(request);
        let top = top_stack(&tasks.stacks_page()).expect("the standing tasks");
        assert_eq!((top.count, top.total), (2, 2));
    }
}
