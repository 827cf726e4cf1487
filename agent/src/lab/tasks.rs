//! Each lab service's goroutine-style task page: the tasks it really has in flight, counted
//! by guards that live exactly as long as the task, served at `/debug/pprof/goroutine?debug=1`
//! in the layout of Go's pprof text profile (`goroutine profile: total N`, then one group per
//! place the tasks wait), which the agent scrapes through `[[tasks]]`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

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

/// The tasks every service runs whatever its load: its accept loop and its task page.
const STANDING_TASKS: i64 = 2;

/// Live task counts of one service.
#[derive(Debug, Default)]
pub struct Tasks {
    counts: [AtomicI64; 3],
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
    pub fn enter(self: &Arc<Self>, group: TaskGroup) -> TaskGuard {
        let slot = slot_of(group);
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
}
